package workflows

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/iru-responder/responder/activities"
)

// fakeControls plays the controls activities: each control's check
// returns the status in status ("error": the check fails to run).
type fakeControls struct {
	status map[string]string
	mu     sync.Mutex
	// checks, evidence and incidents record the calls; inFlight and
	// maxInFlight count concurrent checks.
	checks    []string
	evidence  []ControlEvidenceInput
	incidents []ControlIncidentInput
	inFlight  int
	maxFlight int
}

func (f *fakeControls) list(_ context.Context, in activities.ControlsListInput) (activities.ControlsListResult, error) {
	var out activities.ControlsListResult
	ids := make([]string, 0, len(f.status))
	for id := range f.status {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	slices.Reverse(ids) // the workflow must not depend on the list's order
	for _, id := range ids {
		if len(in.IDs) == 0 || slices.Contains(in.IDs, id) {
			out.Controls = append(out.Controls, activities.ControlSummary{ID: id, Section: "Network Security", Title: "check " + id, Severity: "high", Playbook: ControlDriftPlaybook})
		}
	}
	out.Digest = "sha256:test"
	return out, nil
}

func (f *fakeControls) check(_ context.Context, in activities.ControlCheckInput) (activities.ControlCheckResult, error) {
	f.mu.Lock()
	f.checks = append(f.checks, in.ID)
	f.inFlight++
	f.maxFlight = max(f.maxFlight, f.inFlight)
	f.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	f.mu.Lock()
	f.inFlight--
	f.mu.Unlock()
	st := f.status[in.ID]
	if st == "error" {
		return activities.ControlCheckResult{}, temporal.NewNonRetryableApplicationError("cannot read "+in.ID, activities.ErrTypePermission, nil)
	}
	r := activities.ControlCheckResult{Control: activities.ControlSummary{ID: in.ID, Severity: "high"}, Status: st, Targets: 1,
		CheckedAt: time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC), Observed: []byte(`{"enable":"0"}`)}
	if st != activities.ControlPass {
		r.Findings = []activities.ControlFinding{{Target: "pve/cluster", Setting: "enable", Observed: "0", Expected: "1",
			Fix: activities.PVEFirewallEnable, FixParams: map[string]string{"scope": "datacenter"}}}
	}
	return r, nil
}

func (f *fakeControls) keep(_ context.Context, in ControlEvidenceInput) (ControlEvidenceResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.evidence = append(f.evidence, in)
	res := ControlEvidenceResult{Ref: "evidence://control-" + in.Result.Control.ID + "/sha256:" + in.Result.Status, SHA256: in.Result.Status}
	if in.ForIncident != "" {
		res.IncidentRef = "evidence://" + in.ForIncident + "/sha256:" + in.Result.Status
	}
	return res, nil
}

func (f *fakeControls) open(_ context.Context, in ControlIncidentInput) (ControlIncidentResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.incidents = append(f.incidents, in)
	return ControlIncidentResult{WorkflowID: IncidentWorkflowID(ControlDriftKey(in.Result.Control.Playbook, in.Result.Control.ID))}, nil
}

func runControls(t *testing.T, f *fakeControls, in ControlsInput) (ControlsResult, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(f.list, activity.RegisterOptions{Name: activities.ControlsList})
	env.RegisterActivityWithOptions(f.check, activity.RegisterOptions{Name: activities.ControlsCheck})
	env.RegisterActivityWithOptions(f.keep, activity.RegisterOptions{Name: ControlsEvidenceActivity})
	env.RegisterActivityWithOptions(f.open, activity.RegisterOptions{Name: ControlsIncidentActivity})
	env.ExecuteWorkflow(Controls, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var res ControlsResult
	if err := env.GetWorkflowError(); err != nil {
		return res, err
	}
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return res, nil
}

// TestControlsWorkflow: one check per control, every result kept as
// evidence, an incident opened (or told) for each control that fails or
// cannot be established and for no other, a check that cannot run
// reported without stopping the others, the checks in flight bounded.
func TestControlsWorkflow(t *testing.T) {
	f := &fakeControls{status: map[string]string{
		"net-dc-firewall": activities.ControlFail, "id-token-lifespan": activities.ControlPass,
		"keys-age": activities.ControlUnknown, "net-ingress": activities.ControlPass, "platform-tls": "error",
	}}
	res, err := runControls(t, f, ControlsInput{Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range res.Controls {
		ids = append(ids, o.ID)
	}
	if want := []string{"id-token-lifespan", "keys-age", "net-dc-firewall", "net-ingress", "platform-tls"}; !slices.Equal(ids, want) {
		t.Fatalf("outcomes for %v, want %v in id order", ids, want)
	}
	if checks := slices.Sorted(slices.Values(f.checks)); !slices.Equal(checks, ids) {
		t.Errorf("checks ran for %v, want each control once", checks)
	}
	if f.maxFlight > 2 {
		t.Errorf("%d checks in flight at once, want at most 2", f.maxFlight)
	}
	if res.Passed != 2 || res.Failed != 1 || res.Unknown != 1 || res.Errors != 1 || res.Digest != "sha256:test" {
		t.Errorf("counts: %+v", res)
	}
	if len(f.evidence) != 4 {
		t.Errorf("%d results kept as evidence, want 4 (every result that came back)", len(f.evidence))
	}
	var opened []string
	for _, in := range f.incidents {
		opened = append(opened, in.Result.Control.ID)
		if in.EvidenceRef == "" || in.Result.Status == activities.ControlPass {
			t.Errorf("incident input %+v: want the failing result with its evidence", in)
		}
	}
	slices.Sort(opened)
	if !slices.Equal(opened, []string{"keys-age", "net-dc-firewall"}) {
		t.Errorf("incidents for %v, want the failing and the unknown control only", opened)
	}
	for _, o := range res.Controls {
		switch o.ID {
		case "net-dc-firewall":
			if o.Incident != "incident:control-drift:net-dc-firewall" || !strings.Contains(o.FirstFinding, "expected 1") || o.EvidenceRef == "" {
				t.Errorf("failing outcome %+v", o)
			}
		case "platform-tls":
			if o.Status != "" || !strings.Contains(o.Error, "cannot read platform-tls") || o.Incident != "" {
				t.Errorf("errored outcome %+v", o)
			}
		case "id-token-lifespan", "net-ingress":
			if o.Incident != "" || o.EvidenceRef == "" {
				t.Errorf("passing outcome %+v", o)
			}
		}
	}
}

// TestControlsForIncident: the check an incident's step runs keeps its
// result in the incident's evidence too and opens no incident, even on a
// failure (the incident asking is the one about it).
func TestControlsForIncident(t *testing.T) {
	f := &fakeControls{status: map[string]string{"net-dc-firewall": activities.ControlFail, "other": activities.ControlFail}}
	res, err := runControls(t, f, ControlsInput{IDs: []string{"net-dc-firewall"}, ForIncident: "INC-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Controls) != 1 || res.Controls[0].Status != activities.ControlFail || res.Controls[0].EvidenceRef != "evidence://INC-1/sha256:fail" {
		t.Fatalf("outcomes %+v, want one failing result kept in the incident's evidence", res.Controls)
	}
	if len(f.incidents) != 0 {
		t.Errorf("opened %d incidents from an incident's own check", len(f.incidents))
	}
	if len(f.evidence) != 1 || f.evidence[0].ForIncident != "INC-1" {
		t.Errorf("evidence inputs %+v", f.evidence)
	}
}

// TestControlsUnknownID: asking for a control the file does not have
// fails the run (NotFound) before any check.
func TestControlsUnknownID(t *testing.T) {
	f := &fakeControls{status: map[string]string{"net-dc-firewall": activities.ControlPass}}
	_, err := runControls(t, f, ControlsInput{IDs: []string{"no-such-control"}})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeNotFound {
		t.Fatalf("err = %v, want NotFound", err)
	}
	if len(f.checks) != 0 {
		t.Errorf("checks ran: %v", f.checks)
	}
}
