//go:build integration

package bench

import (
	"os"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/testenv"
)

// TestBenchmarksSmoke runs each benchmark's body once at a tiny size, so a
// plain `go test` exercises the measuring code and its checks.
func TestBenchmarksSmoke(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"time to contain", func(t *testing.T) {
			p := ttcParams{Incidents: 3, Interval: 20 * time.Millisecond, APILatency: 2 * time.Millisecond,
				SnapshotTask: 200 * time.Millisecond, Timeout: time.Minute}
			res := measureTimeToContain(t, p)
			for side, took := range map[string][]time.Duration{"platform": res.Platform, "sequential": res.Sequential} {
				if len(took) != p.Incidents {
					t.Fatalf("%s: %d times, want %d", side, len(took), p.Incidents)
				}
				if took[0] <= 0 {
					t.Errorf("%s: non-positive time to contain %v", side, took[0])
				}
			}
			// The sequential baseline waits for the snapshot task before
			// it logs the account out; nothing can make it faster.
			if res.Sequential[0] < p.SnapshotTask {
				t.Errorf("sequential containment took %v, less than the %v snapshot task it waits for", res.Sequential[0], p.SnapshotTask)
			}
		}},
		{"alert storm", func(t *testing.T) {
			p := stormParams{Alerts: 60, Assets: 3, Clients: 4, Timeout: time.Minute}
			res := measureAlertStorm(t, p)
			checkStorm(t, p, res)
			if len(res.RoundTrip) != p.Alerts || len(res.Handler) != p.Alerts {
				t.Errorf("latencies: %d round trips, %d handler times, want %d", len(res.RoundTrip), len(res.Handler), p.Alerts)
			}
		}},
		{"incident opening", func(t *testing.T) {
			// measureOpening fails unless every incident opened and waits
			// for its approval.
			res := measureOpening(t, testenv.Current(t), 5)
			if res.Settled <= 0 || res.Server+res.Test <= 0 {
				t.Errorf("opening 5 incidents: settled at %v, %v server and %v test process CPU each, want all positive", res.Settled, res.Server, res.Test)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

// TestInventory checks the benchmark inventory: 100 running containers
// bench-i with vmid 1000+i, each with a firewall that is not isolating.
func TestInventory(t *testing.T) {
	s, err := pve.New(pve.Options{InventoryPath: inventoryFile})
	if err != nil {
		t.Fatal(err)
	}
	st := s.State()
	byVMID := map[int]pve.ContainerSnapshot{}
	for _, ct := range st.Containers {
		byVMID[ct.VMID] = ct
	}
	if len(byVMID) != inventorySize {
		t.Fatalf("%d containers, want %d", len(byVMID), inventorySize)
	}
	for i := range inventorySize {
		ct, ok := byVMID[vmid(i)]
		if !ok || ct.Config["hostname"] != asset(i) || ct.Status != "running" {
			t.Fatalf("container %d: %+v (present %t), want %s running", vmid(i), ct.Config, ok, asset(i))
		}
		iso, err := s.EffectiveIsolation(vmid(i))
		if err != nil || iso.Isolated {
			t.Fatalf("container %d isolated before any incident: %+v %v", vmid(i), iso, err)
		}
	}
}

// TestPercentile checks the nearest-rank percentile.
func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{7}, 99, 7},
		{"p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p100 of 100", hundred, 100, 100 * time.Millisecond},
		{"p99 of 3", []time.Duration{1, 2, 3}, 99, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

// TestLargeInventoryMatchesFile: the generator of larger inventories
// writes, for 100 containers, exactly inventoryFile, so the 1,000
// containers of the large storm are the same kind of container.
func TestLargeInventoryMatchesFile(t *testing.T) {
	want, err := os.ReadFile(inventoryFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(largeInventory(t, inventorySize))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("generated inventory of %d differs from %s", inventorySize, inventoryFile)
	}
	big, err := pve.New(pve.Options{InventoryPath: largeInventory(t, 1000)})
	if err != nil {
		t.Fatalf("1,000-container inventory: %v", err)
	}
	byName := map[string]int{}
	for _, ct := range big.State().Containers {
		byName[ct.Config["hostname"]] = ct.VMID
	}
	for _, i := range []int{0, 199, 200, 999} {
		if byName[asset(i)] != vmid(i) {
			t.Errorf("container %s: vmid %d, want %d", asset(i), byName[asset(i)], vmid(i))
		}
	}
	if len(byName) != 1000 {
		t.Errorf("%d containers, want 1000", len(byName))
	}
}
