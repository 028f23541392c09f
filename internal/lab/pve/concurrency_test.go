package pve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

func TestConcurrentDifferentContainers(t *testing.T) {
	s := startSim(t, Options{TaskDuration: 5 * time.Millisecond})
	ctx := testCtx(t)
	targets := map[int]string{100: "pve1", 101: "pve1", 102: "pve2", 103: "pve2", 900: "pve1"}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for vmid, node := range targets {
		wg.Add(1)
		go func(vmid int, node string) {
			defer wg.Done()
			c := responder(s) // one client per worker, as separate processes would
			ct, err := (&proxmox.Node{}).New(c, node).Container(ctx, vmid)
			if err != nil {
				errs <- err
				return
			}
			for i := 0; i < 3; i++ {
				if _, err := ct.Config(ctx, proxmox.ContainerOption{Name: "description", Value: fmt.Sprintf("round %d", i)}); err != nil {
					errs <- fmt.Errorf("CT %d config: %w", vmid, err)
				}
				if err := ct.NewFirewallRule(ctx, &proxmox.FirewallRule{Type: "in", Action: "DROP", Enable: 1, Comment: fmt.Sprint(i)}); err != nil {
					errs <- fmt.Errorf("CT %d rule: %w", vmid, err)
				}
				task, err := ct.NewSnapshot(ctx, fmt.Sprintf("c%d", i))
				if err != nil {
					errs <- fmt.Errorf("CT %d snapshot: %w", vmid, err)
					continue
				}
				if err := task.Wait(ctx, 2*time.Millisecond, 5*time.Second); err != nil || !task.IsSuccessful {
					errs <- fmt.Errorf("CT %d snapshot task %+v: %w", vmid, task, err)
				}
				if err := ct.Ping(ctx); err != nil {
					errs <- err
				}
			}
		}(vmid, node)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, ct := range s.State().Containers {
		base := map[int]int{100: 3, 101: 1, 102: 1, 103: 2, 900: 0}[ct.VMID]
		if len(ct.Snapshots) != 4 || len(ct.Firewall.Rules) != base+3 || ct.Config["description"] != "round 2" || ct.Config["parent"] != "c2" {
			t.Errorf("CT %d: %d snapshots, %d rules, description %q parent %q", ct.VMID, len(ct.Snapshots), len(ct.Firewall.Rules), ct.Config["description"], ct.Config["parent"])
		}
	}
}

func TestConcurrentSameContainerLocks(t *testing.T) {
	s := startSim(t, Options{TaskDuration: 150 * time.Millisecond})
	ctx := testCtx(t)
	c := responder(s)
	ct, err := (&proxmox.Node{}).New(c, "pve1").Container(ctx, 101)
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	tasks := make([]*proxmox.Task, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			task, err := ct.NewSnapshot(ctx, fmt.Sprintf("race%d", i))
			if err != nil {
				t.Errorf("snapshot %d: %v", i, err)
				return
			}
			tasks[i] = task
		}(i)
	}
	// Config writers racing the snapshot tasks: locked → 500 CT is locked (snapshot).
	lockedSeen := false
	for i := 0; i < 5; i++ {
		_, err := ct.Config(ctx, proxmox.ContainerOption{Name: "description", Value: "during"})
		if err != nil {
			if err.Error() != "500 CT is locked (snapshot)" {
				t.Fatalf("config during snapshot err = %v", err)
			}
			lockedSeen = true
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	if !lockedSeen {
		t.Fatalf("no config change hit the snapshot lock")
	}
	ok := 0
	for i, task := range tasks {
		if task == nil {
			continue
		}
		waitTask(t, ctx, task)
		switch {
		case task.IsSuccessful:
			ok++
		case task.ExitStatus != "CT is locked (snapshot)":
			t.Errorf("task %d exit = %q", i, task.ExitStatus)
		}
	}
	snaps := s.State().Containers[1].Snapshots
	if ok < 1 || len(snaps) != 1+ok {
		t.Fatalf("%d successful tasks but %d snapshots", ok, len(snaps))
	}
	if _, err := ct.Config(ctx, proxmox.ContainerOption{Name: "description", Value: "after"}); err != nil {
		t.Fatalf("config after tasks: %v", err)
	}
}

func TestFaultInjection(t *testing.T) {
	t.Run("503 then retry succeeds", func(t *testing.T) {
		s := startSim(t, Options{Faults: []Fault{{Method: "GET", Path: "/cluster/status", ErrorRate: 1, ErrorStatus: 503, Count: 2}}})
		ctx := testCtx(t)
		plain := responder(s)
		err := plain.Get(ctx, "/cluster/status", nil)
		if err != nil {
			t.Fatalf("go-proxmox treats 503 as success without a body check; got %v", err)
		}
		retrying := responder(s, proxmox.WithRetry(proxmox.WithRetryBackoff(time.Millisecond, 5*time.Millisecond), proxmox.WithRetryMax(3)))
		if _, err := retrying.Cluster(ctx); err != nil {
			t.Fatalf("cluster with retry: %v", err)
		}
		if f := s.Faults(); f[0].Count != 0 {
			t.Fatalf("fault not consumed: %+v", f)
		}
	})
	t.Run("500 status", func(t *testing.T) {
		s := startSim(t, Options{Faults: []Fault{{Path: "/nodes/*/lxc/100/status/current", ErrorRate: 1, ErrorStatus: 500}}})
		ctx := testCtx(t)
		_, err := (&proxmox.Node{}).New(responder(s), "pve1").Container(ctx, 100)
		if err == nil || !strings.HasPrefix(err.Error(), "500 ") {
			t.Fatalf("err = %v", err)
		}
		if _, err := (&proxmox.Node{}).New(responder(s), "pve1").Container(ctx, 101); err != nil {
			t.Fatalf("glob must not match CT 101: %v", err)
		}
	})
	t.Run("hang until client timeout", func(t *testing.T) {
		s := startSim(t, Options{Faults: []Fault{{Path: "/nodes/{node}/lxc/{vmid}/status/current", Hang: true}}})
		c := responder(s, proxmox.WithTimeout(150*time.Millisecond))
		start := time.Now()
		_, err := (&proxmox.Node{}).New(c, "pve1").Container(context.Background(), 100)
		if err == nil || time.Since(start) > 3*time.Second {
			t.Fatalf("hang: err=%v after %v", err, time.Since(start))
		}
		var ne interface{ Timeout() bool }
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("want a client timeout, got %v", err)
		}
	})
	t.Run("latency", func(t *testing.T) {
		s := startSim(t, Options{Faults: []Fault{{Path: "/version", Latency: 120 * time.Millisecond}}})
		start := time.Now()
		if _, err := responder(s).Version(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 120*time.Millisecond {
			t.Fatalf("latency not applied: %v", d)
		}
	})
	t.Run("task failure", func(t *testing.T) {
		s := startSim(t, Options{TaskDuration: 5 * time.Millisecond})
		s.SetFaults(Fault{Method: "POST", Path: "/nodes/{node}/lxc/{vmid}/snapshot", TaskFailure: "zfs error: out of space"})
		ctx := testCtx(t)
		ct, _ := (&proxmox.Node{}).New(responder(s), "pve1").Container(ctx, 900)
		task, err := ct.NewSnapshot(ctx, "fails")
		if err != nil {
			t.Fatal(err)
		}
		waitTask(t, ctx, task)
		if task.IsSuccessful || task.ExitStatus != "zfs error: out of space" || len(s.State().Containers[4].Snapshots) != 1 {
			t.Fatalf("task = %+v", task)
		}
		if s.State().Containers[4].Config["lock"] != "" {
			t.Fatalf("failed task left its lock")
		}
	})
	t.Run("deterministic error rate", func(t *testing.T) {
		pattern := func() string {
			s := startSim(t, Options{Seed: 42, Faults: []Fault{{Path: "/version", ErrorRate: 0.5, ErrorStatus: 502}}})
			var b strings.Builder
			for i := 0; i < 24; i++ {
				res := raw(t, s, "GET", "/api2/json/version", "", "", nil)
				b.WriteString(fmt.Sprint(res.status / 100))
			}
			return b.String()
		}
		a, b := pattern(), pattern()
		if a != b || !strings.Contains(a, "5") || !strings.Contains(a, "2") {
			t.Fatalf("patterns %s / %s", a, b)
		}
	})
}

func TestControlEndpoint(t *testing.T) {
	s := startSim(t, Options{})
	client := s.HTTPClient()
	do := func(method, path, token, body string) (int, []byte) {
		req, _ := http.NewRequest(method, s.ControlURL()+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	if st, _ := do("GET", "/faults", "", ""); st != 401 {
		t.Fatalf("control without token = %d", st)
	}
	if st, _ := do("GET", "/faults", "wrong", ""); st != 401 {
		t.Fatalf("control with wrong token = %d", st)
	}
	st, body := do("PUT", "/faults", LabControlToken, `[{"method":"GET","path":"/version","latency":"50ms","count":1}]`)
	if st != 200 {
		t.Fatalf("put faults = %d %s", st, body)
	}
	want := []Fault{{Method: "GET", Path: "/version", Latency: 50 * time.Millisecond, Count: 1}}
	if got := s.Faults(); !reflect.DeepEqual(got, want) {
		t.Fatalf("faults = %+v", got)
	}
	if st, body := do("GET", "/faults", LabControlToken, ""); st != 200 || !bytes.Contains(body, []byte(`"latency":"50ms"`)) {
		t.Fatalf("get faults = %d %s", st, body)
	}

	// Change state, then reset restores the inventory byte for byte.
	before, _ := s.State().CanonicalJSON()
	ctx := testCtx(t)
	if err := responder(s).Put(ctx, "/nodes/pve1/lxc/900/firewall/options", map[string]any{"enable": 1, "policy_out": "DROP"}, nil); err != nil {
		t.Fatal(err)
	}
	changed, _ := s.State().CanonicalJSON()
	if bytes.Equal(before, changed) {
		t.Fatalf("state did not change")
	}
	if st, _ := do("POST", "/reset", LabControlToken, ""); st != 200 {
		t.Fatalf("reset = %d", st)
	}
	after, _ := s.State().CanonicalJSON()
	if !bytes.Equal(before, after) || len(s.Faults()) != 0 {
		t.Fatalf("reset did not restore state")
	}
	st, body = do("GET", "/state", LabControlToken, "")
	var ss StateSnapshot
	if st != 200 || json.Unmarshal(body, &ss) != nil || !reflect.DeepEqual(ss, s.State()) {
		t.Fatalf("state endpoint = %d", st)
	}
}
