//go:build integration

package proxmox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/lab/pve"
)

// inventory100 writes a lab inventory with the seed's nodes, users and
// storages and n containers (vmid 1000+i, hostname bench-i) alternating
// between the two nodes, each with the firewall of a typical service.
func inventory100(tb testing.TB, n int) string {
	tb.Helper()
	raw, err := os.ReadFile("../../internal/lab/pve/inventory.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	head, _, ok := strings.Cut(string(raw), "\ncontainers:\n")
	if !ok {
		tb.Fatal("inventory.yaml has no containers section")
	}
	var b strings.Builder
	b.WriteString(head + "\ncontainers:\n")
	for i := range n {
		node := []string{"pve1", "pve2"}[i%2]
		fmt.Fprintf(&b, `  - vmid: %d
    node: %s
    status: running
    config:
      hostname: bench-%d
      arch: amd64
      ostype: debian
      cores: "1"
      memory: "512"
      rootfs: local-lvm:vm-%d-disk-0,size=4G
      net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:%02X:%02X,ip=10.30.%d.%d/16,type=veth
      tags: bench
      description: benchmark container %d
    firewall:
      options: {enable: "1", policy_in: DROP, policy_out: ACCEPT}
      rules:
        - {type: in, action: ACCEPT, proto: tcp, dport: "443", enable: "1", comment: "https"}
`, 1000+i, node, i, 1000+i, i/256, i%256, i/250, i%250+1, i)
	}
	p := filepath.Join(tb.TempDir(), "inventory.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// isolateAndSnapshot runs the containment of one container as the
// playbooks do: isolate and evidence snapshot in parallel.
func isolateAndSnapshot(tb testing.TB, a *Activities, asset string) error {
	in := input(activities.PVEIsolate, asset, map[string]string{"allow": "10.10.0.0/24"})
	sn := input(activities.PVESnapshot, asset, nil)
	errs := make(chan error, 2)
	go func() { _, err := run(tb, a, in); errs <- err }()
	go func() { _, err := run(tb, a, sn); errs <- err }()
	return firstErr(<-errs, <-errs)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// prepareGroup makes the quarantine security group of allow stand as it
// would on a cluster where an isolation with that allow list was made
// before (the group outlives isolations; a lab reset removes it).
func prepareGroup(tb testing.TB, a *Activities, allow string) {
	tb.Helper()
	list, err := activities.ParseCIDRList(allow)
	if err != nil {
		tb.Fatal(err)
	}
	cidrs := a.allowList(list)
	x := a.call("prepare")
	gs, err := x.readGroup(context.Background(), groupName(cidrs))
	if err == nil {
		err = x.ensureGroup(context.Background(), cidrs, gs)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkContainment measures isolate + evidence snapshot against the lab
// (tasks take 20 ms, polled every 10 ms): of one container, and of 100
// containers at once. calls/op counts the API requests of one operation.
// The -legacy runs isolate as releases before the security group did (own
// rules disabled one by one, allow rules added): the same-run baseline.
// The quarantine group exists, as it does after the first isolation with
// the allow list (TestIsolateCalls counts that first one).
//
//	go test -tags integration -run '^$' -bench Containment -benchtime 20x ./activities/proxmox/
func BenchmarkContainment(b *testing.B) {
	for _, tc := range []struct {
		name   string
		n      int
		legacy bool
	}{{"one", 1, false}, {"one-legacy", 1, true}, {"100-concurrent", 100, false}, {"100-concurrent-legacy", 100, true}} {
		b.Run(tc.name, func(b *testing.B) {
			l := newLab(b, withInventory(inventory100(b, tc.n)), withTaskDuration(20*time.Millisecond),
				withConfig(func(c *Config) {
					c.TaskPoll, c.LockWait = 10*time.Millisecond, time.Minute
					c.HTTPTimeout = 30 * time.Second // 100 containers at once on a loaded 2-core machine
				}))
			l.acts.legacyIsolation = tc.legacy
			var calls int64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if err := l.srv.Reset(); err != nil {
					b.Fatal(err)
				}
				if !tc.legacy {
					prepareGroup(b, l.acts, "10.10.0.0/24")
				}
				start := l.count.n.Load()
				b.StartTimer()
				var wg sync.WaitGroup
				errs := make(chan error, tc.n)
				for i := range tc.n {
					wg.Go(func() { errs <- isolateAndSnapshot(b, l.acts, fmt.Sprintf("bench-%d", i)) })
				}
				wg.Wait()
				b.StopTimer()
				close(errs)
				for err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
				calls += l.count.n.Load() - start
				b.StartTimer()
			}
			b.StopTimer()
			for i := range tc.n {
				if iso, err := l.srv.EffectiveIsolation(1000 + i); err != nil || !iso.FirewallIsolated || !iso.InDrop || !iso.OutDrop || iso.AcceptRules != 4 || iso.OpenRules != 0 {
					b.Fatalf("CT %d not isolated: %+v %v", 1000+i, iso, err)
				}
			}
			b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
			b.ReportMetric(float64(calls)/float64(b.N)/float64(tc.n), "calls/CT")
		})
	}
}

// BenchmarkIsolateLatency measures the isolation of one container alone,
// as the incident workflow runs it (the asset resolved at intake), with
// every API call delayed 30 ms as in test/bench; -legacy is the model of
// releases before the security group, in the same run.
//
//	go test -tags integration -run '^$' -bench IsolateLatency -benchtime 20x ./activities/proxmox/
func BenchmarkIsolateLatency(b *testing.B) {
	for _, legacy := range []bool{false, true} {
		name := "group"
		if legacy {
			name = "legacy"
		}
		b.Run(name, func(b *testing.B) {
			l := newLab(b, withInventory(inventory100(b, 1)))
			l.acts.legacyIsolation = legacy
			in := input(activities.PVEIsolate, "bench-0", map[string]string{"allow": "10.10.0.0/24"})
			in.Resolved = &activities.AssetRef{Name: "bench-0", Node: "pve1", VMID: 1000}
			var calls int64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if err := l.srv.Reset(); err != nil {
					b.Fatal(err)
				}
				if !legacy {
					prepareGroup(b, l.acts, "10.10.0.0/24")
				}
				l.srv.SetFaults(pve.Fault{Latency: 30 * time.Millisecond})
				start := l.count.n.Load()
				b.StartTimer()
				if _, err := run(b, l.acts, in); err != nil {
					b.Fatal(err)
				}
				calls += l.count.n.Load() - start
			}
			b.StopTimer()
			if iso, err := l.srv.EffectiveIsolation(1000); err != nil || !iso.FirewallIsolated || iso.OpenRules != 0 {
				b.Fatalf("not isolated: %+v %v", iso, err)
			}
			b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
		})
	}
}
