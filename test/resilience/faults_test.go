//go:build integration

package resilience

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// TestLabFaults runs four container-compromise incidents at once against a
// Proxmox VE that misbehaves:
//
//   - api-gateway and keycloak: 30% of the requests on their containers
//     answer 500 or 502 (a burst of 5 requests per route shape), and task
//     status polls and firewall changes stall (latency spikes);
//   - iru-services: its snapshot tasks fail (the evidence snapshot cannot
//     be taken);
//   - database: the firewall writes of its isolation (adding the allow
//     rules) always answer 500, after the config update has changed the
//     container. (Its seeded policy already drops both ways, so the
//     options need no change.)
//
// Every incident must reach a final state within a bound, and one that
// says why: a stopped incident has a reason and failed steps with error
// texts (the task's exit status, the failing request). A resolved
// incident leaves its container as it was; an aborted one leaves nothing
// of its isolation (its compensations ran); every
// ledger verifies; no error text holds a credential.
func TestLabFaults(t *testing.T) {
	began := time.Now()
	p := testplatform.New(t, testplatform.Options{})
	tag := runTag(t)
	const storageFull = "snapshot failed: storage local-lvm is full (injected)"
	cases := []struct {
		asset string
		vmid  int
		// failing is the step that must fail ("" : none must).
		failing string
		// because is a text its error must hold.
		because string
	}{
		{"api-gateway", 100, "", ""},
		{"keycloak", 101, "", ""},
		{"iru-services", 102, "snapshot", storageFull},
		{"database", 103, "isolate", "firewall/rules: 500"},
	}
	before := p.Lab.PVE.State()
	faults := []pve.Fault{
		{Method: "POST", Path: "/nodes/*/lxc/102/snapshot", TaskFailure: storageFull},
		{Method: "POST", Path: "/nodes/*/lxc/103/firewall/rules", ErrorRate: 1, ErrorStatus: 500},
		{Method: "GET", Path: "/nodes/{node}/tasks/{upid}/status", Latency: 500 * time.Millisecond, Count: 20},
		{Method: "PUT", Path: "/nodes/{node}/lxc/{vmid}/firewall/options", Latency: 1500 * time.Millisecond, Count: 3},
	}
	for _, vmid := range []int{100, 101} {
		for i, shape := range []string{"/nodes/*/lxc/%d/*", "/nodes/*/lxc/%d/*/*", "/nodes/*/lxc/%d/*/*/*"} {
			faults = append(faults, pve.Fault{Path: fmt.Sprintf(shape, vmid), ErrorRate: 0.3, ErrorStatus: 500 + 2*(i%2), Count: 5})
		}
	}
	p.Lab.PVE.SetFaults(faults...)

	type run struct {
		in   workflows.IncidentInput
		wfID string
		res  workflows.IncidentResult
	}
	runs := make([]*run, len(cases))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, tc := range cases {
		in := incidentInput(fmt.Sprintf("INC-FAULT-%s-%d", strings.ToUpper(tag), i+1), "resilience-faults-"+tag+":"+tc.asset, tc.asset,
			map[string]string{"health_url": p.Lab.HealthURL(tc.asset)})
		r := &run{in: in, wfID: startIncident(t, p.Client, p.TaskQueue, in)}
		runs[i] = r
		wg.Go(func() { approveLoop(p.Client, r.wfID, stop) })
	}
	var rwg sync.WaitGroup
	for _, r := range runs {
		rwg.Go(func() { r.res = waitResultErr(t, p, r.wfID, 150*time.Second) })
	}
	rwg.Wait()
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%5.1fs all incidents final", time.Since(began).Seconds())
	// Each latency fault, and the 5xx bursts of each container, must have
	// met requests, or the faults proved nothing.
	used := map[string]int{}
	for i, f := range p.Lab.PVE.Faults() {
		what := f.Method + " " + f.Path
		if f.ErrorRate > 0 && f.ErrorRate < 1 {
			what = "5xx burst on " + strings.SplitN(f.Path, "/", 6)[4]
		}
		used[what] += faults[i].Count - f.Count
		if faults[i].Count == 0 {
			used[what]++ // unlimited faults are checked through the steps below
		}
	}
	for what, n := range used {
		if n == 0 {
			t.Errorf("fault %s never matched a request: it did not hit the incidents", what)
		}
	}
	p.Lab.PVE.SetFaults()

	pveSecret := envValue(t, p.Env, "IRU_PVE_TOKEN_SECRET")
	for i, tc := range cases {
		r := runs[i]
		t.Run(tc.asset, func(t *testing.T) {
			res := r.res
			st, err := status(p.Client, r.wfID, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			steps, _ := json.Marshal(res.Steps)
			t.Logf("%s: %s %q; steps %s", r.in.IncidentID, res.State, res.Reason, steps)
			switch res.State {
			case workflows.StateResolved, workflows.StateAborted, workflows.StateEscalatedFailed:
			default:
				t.Fatalf("final state %q is not a final state", res.State)
			}
			// A failed step keeps its error when its compensation has run
			// (status compensated): an abort undoes what it had done.
			isFailed := func(s workflows.StepState) bool {
				return s.Status == workflows.StepFailed || (s.Status == workflows.StepCompensated && s.Error != "")
			}
			failed := 0
			for _, s := range st.Steps {
				if !isFailed(s) {
					continue
				}
				failed++
				if strings.TrimSpace(s.Error) == "" {
					t.Errorf("step %s failed without an error text", s.ID)
				}
				if strings.Contains(s.Error, pveSecret) {
					t.Errorf("step %s's error holds the PVE token secret", s.ID)
				}
			}
			if res.State != workflows.StateResolved && (strings.TrimSpace(res.Reason) == "" || failed == 0) {
				t.Errorf("stopped %s without saying why: reason %q, %d failed steps", res.State, res.Reason, failed)
			}
			if tc.failing != "" {
				if res.State == workflows.StateResolved {
					t.Fatalf("resolved although step %s cannot succeed", tc.failing)
				}
				fs := findStep(st, tc.failing)
				if !isFailed(fs) || !strings.Contains(fs.Error, tc.because) {
					t.Errorf("step %s is %s with error %q, want failed with %q", tc.failing, fs.Status, fs.Error, tc.because)
				}
				if !strings.Contains(res.Reason, "step "+tc.failing+" ") {
					t.Errorf("reason %q does not name step %s", res.Reason, tc.failing)
				}
			}
			switch res.State {
			case workflows.StateResolved:
				restored(t, p.Lab.PVE, container(t, before, tc.vmid))
			case workflows.StateAborted:
				// The compensations ran: nothing of the isolation remains
				// (a shutdown is final by design, so it may stay stopped).
				networkRestored(t, p.Lab.PVE, container(t, before, tc.vmid))
				if len(st.Compensations) != 0 {
					t.Errorf("aborted with compensations still pending: %+v", st.Compensations)
				}
			}
			ledgerIntact(t, p, r.in.IncidentID, res.LedgerSeq)
		})
	}
	t.Logf("scenario took %s", time.Since(began).Round(time.Millisecond))
}

func findStep(st workflows.IncidentStatus, id string) workflows.StepState {
	for _, s := range st.Steps {
		if s.ID == id {
			return s
		}
	}
	return workflows.StepState{ID: id}
}

// waitResultErr is waitResult for a goroutine: it reports a timeout with
// t.Errorf (never FailNow) and returns the zero result.
func waitResultErr(t *testing.T, p *testplatform.Platform, wfID string, d time.Duration) workflows.IncidentResult {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var res workflows.IncidentResult
	if err := p.Client.GetWorkflow(ctx, wfID, "").Get(ctx, &res); err != nil {
		st, qerr := status(p.Client, wfID, 5*time.Second)
		b, _ := json.MarshalIndent(st.Steps, "", " ")
		t.Errorf("incident %s hangs: no result within %s: %v\nlast status (%v): state %s phase %s reason %q\nsteps %s", wfID, d, err, qerr, st.State, st.Phase, st.Reason, b)
	}
	return res
}
