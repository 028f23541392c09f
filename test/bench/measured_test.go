//go:build integration

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// TestTimeToContainExcludesSnapshot makes only the evidence snapshots
// slow, at run time through the lab's PUT /_lab/tasks, and checks that
// the time to contain the platform records is when the isolation and the
// session revocation took effect (as the lab shows them from outside),
// while the containment phase, which ends with the snapshot, lasts longer
// than the snapshot task.
func TestTimeToContainExcludesSnapshot(t *testing.T) {
	const incidents = 3
	const snapshot = 10 * time.Second
	r := newRig(t, rigOptions{Users: incidents})
	r.loginUsers(t, incidents)
	ir := r.openIntake(t, "")
	setTaskTimes(t, r.PVE, fmt.Sprintf(`{"default":"instant","by_type":{"vzsnapshot":%q}}`, snapshot))

	w := newContainWatch(r.PVE, r.Keycloak, incidents)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx, t)
	hc := &http.Client{Timeout: 30 * time.Second}
	pace(incidents, 100*time.Millisecond, func(i int) {
		body, err := json.Marshal(ttcAlert(i))
		if err != nil {
			t.Error(err)
			return
		}
		w.begin(i)
		if err := post(hc, ir.URL, body); err != nil {
			t.Errorf("alert %d: %v", i, err)
		}
	})
	took := w.wait(t, time.Minute, func(i int) string { return r.describe(workflowID(i)) })
	defer r.terminateAll(t, incidents)
	for i := range incidents {
		st := waitPhaseDone(t, r, workflowID(i), time.Minute)
		m := st.Metrics
		phase := m.ContainmentPhaseDoneAt.Sub(st.OpenedAt)
		t.Logf("incident %d: time to contain %s, containment phase done after %s (%s long)", i, m.TimeToContain, phase, m.ContainmentPhase)
		if m.TimeToContain <= 0 || m.TimeToContain >= snapshot {
			t.Errorf("incident %d: time to contain %s, want less than the %s snapshot it must not include", i, m.TimeToContain, snapshot)
		}
		if phase < snapshot || m.ContainmentPhase < snapshot {
			t.Errorf("incident %d: containment phase done after %s (%s long), want at least the %s snapshot", i, phase, m.ContainmentPhase, snapshot)
		}
	}
	// Seen from outside, every incident was contained well before its
	// snapshot could have finished.
	if last := took[len(took)-1]; last >= snapshot {
		t.Errorf("the lab saw containment after %s, want less than the %s snapshot", last, snapshot)
	}
}

// setTaskTimes replaces the lab's PVE task durations through its control
// endpoint, as an operator of the lab would at run time.
func setTaskTimes(tb testing.TB, s *pve.Server, body string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPut, s.ControlURL()+"/tasks", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+pve.LabControlToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.HTTPClient().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		tb.Fatalf("PUT /_lab/tasks %s: %s %s", body, res.Status, msg)
	}
}

// waitPhaseDone polls an incident's status until its containment phase
// is done.
func waitPhaseDone(tb testing.TB, r *rig, wfID string, timeout time.Duration) workflows.IncidentStatus {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := testplatform.Status(r.Client, wfID)
		if err == nil && !st.Metrics.ContainmentPhaseDoneAt.IsZero() {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: containment phase not done after %s (%v): %s", wfID, timeout, err, r.describe(wfID))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
