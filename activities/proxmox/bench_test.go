//go:build integration

package proxmox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
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

// BenchmarkContainment measures isolate + evidence snapshot against the lab
// (tasks take 20 ms, polled every 10 ms): of one container, and of 100
// containers at once. calls/op counts the API requests of one operation.
//
//	go test -run '^$' -bench Containment -benchtime 20x ./activities/proxmox/
func BenchmarkContainment(b *testing.B) {
	for _, tc := range []struct {
		name string
		n    int
	}{{"one", 1}, {"100-concurrent", 100}} {
		b.Run(tc.name, func(b *testing.B) {
			l := newLab(b, withInventory(inventory100(b, tc.n)), withTaskDuration(20*time.Millisecond),
				withConfig(func(c *Config) { c.TaskPoll = 10 * time.Millisecond; c.LockWait = time.Minute }))
			var calls int64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if err := l.srv.Reset(); err != nil {
					b.Fatal(err)
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
				if iso, err := l.srv.EffectiveIsolation(1000 + i); err != nil || !iso.InDrop || !iso.OutDrop || iso.AcceptRules != 4 {
					b.Fatalf("CT %d not isolated: %+v %v", 1000+i, iso, err)
				}
			}
			b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
			b.ReportMetric(float64(calls)/float64(b.N)/float64(tc.n), "calls/CT")
		})
	}
}
