package workflows

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/watch"
)

// inherited is what a container-compromise run stopped after containment
// leaves: the isolation and the disabled account.
func inherited() *InheritedCompensations {
	return &InheritedCompensations{
		WorkflowID: "incident:k7", RunID: "run-1", IncidentID: "INC-7", How: watch.StoppedTerminated, By: "mallory-cli",
		Reason: "cleanup", At: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC),
		Compensations: []PendingCompensation{
			{StepID: "isolate", Action: activities.PVEUnisolate, Params: map[string]string{"asset": "web-1", "method": "firewall", "reason": "{{ not a template }}"},
				Undo: map[string]string{"prior_ref": "ev-1", "vmid": "101"}},
			{StepID: "disable", Action: activities.KCEnableUser, Params: map[string]string{"realm": "iru", "user_id": "u-1"},
				Undo: map[string]string{"was_enabled": "true", "disabled_by": "INC-7/disable"}},
		},
	}
}

func followUpInput(inh *InheritedCompensations) IncidentInput {
	return IncidentInput{
		IncidentID: "INC-7-FU-run-1", Key: FollowUpKey("run-1"), Asset: "web-1", Severity: "high",
		Playbook: OrphanedCompensationsPlaybook, OpenedBy: WatchActor, Inherited: inh,
		Alerts: []Alert{{ID: "watch:run-1", Fingerprint: "watch:run-1", Source: "temporal", Rule: "incident-stopped-outside-platform",
			Severity: "high", Asset: "web-1", Labels: map[string]string{"stopped_incident": "INC-7", "stopped_how": "terminated", "stopped_by": "mallory-cli", "pending": "2"}}},
	}
}

// TestFollowUpWaitsForApproval: a follow-up incident undoes nothing by
// itself. Each inherited compensation waits for a lead; one without the
// role is refused; the approved one runs with the stopped run's undo record
// and idempotency key, the denied one never runs.
func TestFollowUpWaitsForApproval(t *testing.T) {
	h := newHarness(t)
	var before []string
	h.env.RegisterDelayedCallback(func() {
		before = h.fake.steps("")
		st := h.status()
		for _, id := range []string{"undo_1_isolate", "undo_2_disable"} {
			if got := stepStatus(st, id); got != StepWaitingApproval {
				t.Errorf("step %s is %s before any decision, want %s", id, got, StepWaitingApproval)
			}
		}
	}, time.Minute)
	refused := h.approve(2*time.Minute, "undo_1_isolate", officer)
	approved := h.approve(3*time.Minute, "undo_1_isolate", lead)
	denied := h.update(4*time.Minute, DenyUpdate, DecisionInput{StepID: "undo_2_disable", Approver: lead2, Reason: "keep jdoe disabled"})
	res, st := h.run(followUpInput(inherited()))

	for _, s := range before {
		if a, _ := h.fake.call(s); a.Action == activities.PVEUnisolate || a.Action == activities.KCEnableUser {
			t.Errorf("%s (%s) ran before anyone approved it", s, a.Action)
		}
	}
	if RejectionType(refused.rejected) != RejectWrongRole {
		t.Errorf("approval without ir-lead: rejected = %v, want a role refusal", refused.rejected)
	}
	if approved.rejected != nil || approved.err != nil || denied.rejected != nil || denied.err != nil {
		t.Fatalf("decisions: approve %v/%v, deny %v/%v", approved.rejected, approved.err, denied.rejected, denied.err)
	}
	if res.State != StateResolved {
		t.Fatalf("follow-up ended %s: %s", res.State, res.Reason)
	}
	un, ok := h.fake.call("isolate:compensate")
	if !ok {
		t.Fatal("approved unisolate did not run")
	}
	if un.Undo["prior_ref"] != "ev-1" || un.IdempotencyKey != "INC-7/isolate/compensate" || un.IncidentID != "INC-7" || un.Params["reason"] != "{{ not a template }}" {
		t.Errorf("unisolate input: incident %s, undo %v, key %q, params %v", un.IncidentID, un.Undo, un.IdempotencyKey, un.Params)
	}
	if _, ran := h.fake.call("disable:compensate"); ran {
		t.Error("denied enable_user ran")
	}
	if got := stepStatus(st, "undo_2_disable"); got != StepDenied {
		t.Errorf("denied step is %s", got)
	}
	opened := h.fake.ledgerKinds("incident_opened")
	if len(opened) != 1 || opened[0].Detail["stopped_by"] != "mallory-cli" || opened[0].Detail["follows_run"] != "run-1" || opened[0].Detail["inherited"] != "2" {
		t.Errorf("incident_opened entry: %+v", opened)
	}
}

// TestInheritedCompensationsRefused: whoever can start workflows cannot use
// Inherited to run arbitrary actions: only the follow-up playbook takes
// inherited compensations, and only playbook actions.
func TestInheritedCompensationsRefused(t *testing.T) {
	tests := []struct {
		name string
		in   func() IncidentInput
		want string
	}{
		{"response playbook", func() IncidentInput {
			in := input("container-compromise")
			in.Inherited = inherited()
			return in
		}, "only taken by playbook"},
		{"internal action", func() IncidentInput {
			inh := inherited()
			inh.Compensations[0].Action = activities.LedgerAppend
			return followUpInput(inh)
		}, "not a playbook action"},
		{"unknown action", func() IncidentInput {
			inh := inherited()
			inh.Compensations[1].Action = "shell.exec"
			return followUpInput(inh)
		}, "not a playbook action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.env.ExecuteWorkflow(IncidentWorkflow, tt.in())
			err := h.env.GetWorkflowError()
			var app *temporal.ApplicationError
			if err == nil || !errors.As(err, &app) || app.Type() != activities.ErrTypeBadParams || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("workflow error = %v, want %s (%s)", err, activities.ErrTypeBadParams, tt.want)
			}
			if calls := h.fake.steps(""); len(calls) != 0 {
				t.Errorf("actions ran: %v", calls)
			}
		})
	}
}

// watchFake stands in for the watch activities.
type watchFake struct {
	runs     []watch.StoppedRun
	fail     map[string]bool
	reported []string
	since    []time.Time
}

func (f *watchFake) list(_ context.Context, in watch.ListInput) (watch.ListResult, error) {
	f.since = append(f.since, in.Since)
	var out []watch.StoppedRun
	for _, r := range f.runs {
		if !r.CloseTime.Before(in.Since) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b watch.StoppedRun) int { return a.CloseTime.Compare(b.CloseTime) })
	return watch.ListResult{Runs: out}, nil
}

func (f *watchFake) report(_ context.Context, in watch.ReportInput) (watch.ReportResult, error) {
	f.reported = append(f.reported, in.Run.RunID)
	if f.fail[in.Run.RunID] {
		return watch.ReportResult{}, temporal.NewNonRetryableApplicationError("history unavailable", "Test", nil)
	}
	return watch.ReportResult{WorkflowID: in.Run.WorkflowID, RunID: in.Run.RunID, How: watch.StoppedTerminated}, nil
}

func (f *watchFake) sweep(t *testing.T, last *WatchResult) WatchResult {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Watch, workflow.RegisterOptions{Name: WatchWorkflow})
	env.RegisterActivityWithOptions(f.list, activity.RegisterOptions{Name: watch.ListActivity})
	env.RegisterActivityWithOptions(f.report, activity.RegisterOptions{Name: watch.ReportActivity})
	if last != nil {
		env.SetLastCompletionResult(*last)
	}
	env.ExecuteWorkflow(WatchWorkflow, WatchInput{Overlap: time.Minute})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res WatchResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestWatchSweeps: each stopped run is reported once across sweeps that
// hand their cursor on; a failed report is tried again by the next sweep,
// not dropped; runs older than the overlap are not listed again.
func TestWatchSweeps(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	f := &watchFake{fail: map[string]bool{"r2": true}, runs: []watch.StoppedRun{
		{WorkflowID: "incident:a", RunID: "r1", CloseTime: t0},
		{WorkflowID: "incident:b", RunID: "r2", CloseTime: t0.Add(10 * time.Second)},
	}}
	first := f.sweep(t, nil)
	if !first.Cursor.Equal(t0.Add(10*time.Second)) || !slices.Equal(first.Seen, []string{"r1"}) ||
		len(first.Retry) != 1 || first.Retry[0].RunID != "r2" || len(first.Reported) != 1 {
		t.Fatalf("first sweep: %+v", first)
	}

	// r2's history is readable again; r3 closed since; r4 closed long ago
	// but shows up late in visibility (inside the overlap it is found).
	delete(f.fail, "r2")
	f.runs = append(f.runs,
		watch.StoppedRun{WorkflowID: "incident:c", RunID: "r3", CloseTime: t0.Add(20 * time.Second)},
		watch.StoppedRun{WorkflowID: "incident:d", RunID: "r4", CloseTime: t0.Add(-30 * time.Second)})
	f.reported = nil
	second := f.sweep(t, &first)
	if !slices.Equal(f.reported, []string{"r2", "r4", "r3"}) {
		t.Errorf("second sweep reported %v, want r2 (retry), then r4 and r3 (new); r1 never again", f.reported)
	}
	if len(second.Retry) != 0 || !second.Cursor.Equal(t0.Add(20*time.Second)) {
		t.Errorf("second sweep: %+v", second)
	}
	if want := t0.Add(10*time.Second - time.Minute); !f.since[len(f.since)-1].Equal(want) {
		t.Errorf("second sweep listed since %s, want the cursor minus the overlap %s", f.since[len(f.since)-1], want)
	}

	f.reported = nil
	third := f.sweep(t, &second)
	if len(f.reported) != 0 {
		t.Errorf("third sweep reported %v again", f.reported)
	}
	if !third.Cursor.Equal(second.Cursor) {
		t.Errorf("cursor moved without new runs: %s → %s", second.Cursor, third.Cursor)
	}
}
