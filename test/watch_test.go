//go:build integration

package test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/activities/watch"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// startIncident starts an incident of playbook on asset with jdoe seen in
// it, and waits until step waits for approval (containment is done).
func startIncident(t *testing.T, p *testplatform.Platform, id, playbook, asset, step string) (string, string) {
	t.Helper()
	in := workflows.IncidentInput{
		IncidentID: id, Key: playbook + ":" + asset + ":" + id, Asset: asset, Severity: "high", Playbook: playbook, OpenedBy: "system:intake",
		Alerts: []workflows.Alert{{ID: "a-" + id, Fingerprint: "fp-" + id, Source: "falco", Rule: "Terminal shell in container",
			Severity: "high", Asset: asset, Summary: "shell spawned",
			Labels:     map[string]string{"health_url": p.Lab.HealthURL(asset), "username": "jdoe", "realm": keycloak.Realm},
			ObservedAt: time.Now().Add(-time.Second), ReceivedAt: time.Now()}},
	}
	wfID := workflows.IncidentWorkflowID(in.Key)
	run, err := p.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: wfID, TaskQueue: p.TaskQueue}, workflows.IncidentWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	testplatform.WaitStep(t, p.Client, wfID, step, workflows.StepWaitingApproval, 60*time.Second)
	return wfID, run.GetRunID()
}

// sweep runs one watch sweep with no state carried from an earlier one
// (as after a restart that lost the cursor) until it has reported runID.
func sweep(t *testing.T, p *testplatform.Platform, runID string) watch.ReportResult {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		run, err := p.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
			ID: "watch:test-" + uuid.NewString(), TaskQueue: p.TaskQueue, WorkflowExecutionTimeout: 2 * time.Minute,
		}, workflows.WatchWorkflow, workflows.WatchInput{TaskQueue: p.TaskQueue})
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.WatchResult
		if err := run.Get(context.Background(), &res); err != nil {
			t.Fatalf("watch sweep: %v", err)
		}
		for _, r := range res.Reported {
			if r.RunID == runID {
				return r
			}
		}
		if len(res.Retry) > 0 {
			t.Logf("sweep will retry %d run(s)", len(res.Retry))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sweep reported run %s: %+v", runID, res)
		}
		time.Sleep(200 * time.Millisecond) // visibility catches up
	}
}

// watchEntries returns the entries of chain written for runID.
func watchEntries(t *testing.T, p *testplatform.Platform, chain, runID string) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	err := p.Host.Stores().Ledger.Store().Entries(context.Background(), chain, func(e ledger.Entry) error {
		if e.IdempotencyKey == "watch/"+runID {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("entries of %s: %v", chain, err)
	}
	return out
}

// closeEvent returns the close event's time and attributes of a run.
func terminatedEvent(t *testing.T, c client.Client, wfID, runID string) (time.Time, string, string) {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), wfID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := e.GetWorkflowExecutionTerminatedEventAttributes(); a != nil {
			return e.GetEventTime().AsTime().UTC(), a.GetIdentity(), a.GetReason()
		}
	}
	t.Fatalf("%s/%s has no terminated event", wfID, runID)
	return time.Time{}, "", ""
}

// followUpStarts counts the executions of a follow-up's workflow id.
func followUpStarts(t *testing.T, c client.Client, wfID string) int {
	t.Helper()
	resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", wfID)})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.GetExecutions())
}

// TestWatchTerminatedIncident performs this attack: an operator with
// admin rights on Temporal, past the responder API, terminates an incident
// whose containment is in place. The watch writes who (the identity the
// client declared), when (Temporal's own event time) and why to the ledger;
// the isolation is not silently dropped but offered in a follow-up incident,
// where it waits for a lead's approval and is then lifted in the lab. More
// sweeps that lost their cursor (a restarted watcher) report it once.
func TestWatchTerminatedIncident(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	const asset = "api-gateway"
	vmid := containerByName(t, p.Lab.PVE.State(), asset).VMID
	wfID, runID := startIncident(t, p, "INC-WATCH-T", "container-compromise", asset, "shutdown")
	if iso, err := p.Lab.PVE.EffectiveIsolation(vmid); err != nil || !iso.Isolated {
		t.Fatalf("not isolated after containment: %+v %v", iso, err)
	}

	// mallory: a plain Temporal client, no codec, no API.
	mallory := testenv.Client(t, client.Options{Identity: "mallory-cli"})
	if err := mallory.TerminateWorkflow(context.Background(), wfID, runID, "cleaning up stuck workflows"); err != nil {
		t.Fatal(err)
	}
	at, by, reason := terminatedEvent(t, p.Client, wfID, runID)
	if by != "mallory-cli" {
		t.Fatalf("Temporal recorded identity %q", by)
	}

	rep := sweep(t, p, runID)
	if rep.How != watch.StoppedTerminated || rep.By != "mallory-cli" || rep.Reason != reason || !rep.At.Equal(at) ||
		rep.IncidentID != "INC-WATCH-T" || rep.Compensations != 1 || rep.FollowUpWorkflowID == "" {
		t.Fatalf("report: %+v", rep)
	}

	// The ledger: one entry in the day's security chain and one in the
	// incident's own chain, naming mallory-cli, the termination time and
	// the reason; the incident's chain verifies with a signed head.
	for _, chain := range []string{accesslog.Chain(at), "INC-WATCH-T"} {
		es := watchEntries(t, p, chain, runID)
		if len(es) != 1 {
			t.Fatalf("chain %s: %d watch entries for the run, want 1", chain, len(es))
		}
		e := es[0]
		if e.Actor != "temporal-client:mallory-cli" || e.Action != watch.ActionTerminated || !e.Time.Equal(at.Truncate(time.Microsecond)) ||
			e.Outcome.Status != "terminated" || !strings.Contains(e.Outcome.Detail, reason) || !strings.Contains(e.Outcome.Detail, "isolate:pve.unisolate") {
			t.Errorf("chain %s entry: actor %s action %s time %s (terminated at %s) outcome %+v", chain, e.Actor, e.Action, e.Time, at, e.Outcome)
		}
	}
	vr, err := p.Host.Stores().Ledger.Verify(context.Background(), "INC-WATCH-T", p.Host.Stores().Signer)
	if err != nil || !vr.OK() || vr.CheckpointSeq != vr.HeadSeq {
		t.Errorf("incident chain after the watch entry: %+v %v", vr, err)
	}

	// The follow-up: the isolation waits for approval; nothing is undone
	// before a lead decides, and a responder without the role cannot.
	fu := rep.FollowUpWorkflowID
	testplatform.WaitStep(t, p.Client, fu, "undo_1_isolate", workflows.StepWaitingApproval, 30*time.Second)
	if iso, _ := p.Lab.PVE.EffectiveIsolation(vmid); !iso.Isolated {
		t.Fatal("the follow-up lifted the isolation before anyone approved it")
	}
	if _, err := testplatform.Decide(p.Client, fu, workflows.ApproveUpdate, "undo_1_isolate", testplatform.Alice); err == nil {
		t.Fatal("alice (ir-responder) approved lifting the isolation")
	}
	if _, err := testplatform.Decide(p.Client, fu, workflows.ApproveUpdate, "undo_1_isolate", testplatform.Bob); err != nil {
		t.Fatalf("bob approves: %v", err)
	}
	testplatform.WaitStep(t, p.Client, fu, "undo_1_isolate", workflows.StepSucceeded, 30*time.Second)
	if iso, err := p.Lab.PVE.EffectiveIsolation(vmid); err != nil || iso.Isolated {
		t.Errorf("isolation not lifted after approval: %+v %v", iso, err)
	}

	// Restarted watchers (no cursor) see the run again: still one entry
	// per chain and one follow-up.
	for range 2 {
		if again := sweep(t, p, runID); again.FollowUpWorkflowID != fu {
			t.Errorf("second report names follow-up %s, want %s", again.FollowUpWorkflowID, fu)
		}
	}
	for _, chain := range []string{accesslog.Chain(at), "INC-WATCH-T"} {
		if n := len(watchEntries(t, p, chain, runID)); n != 1 {
			t.Errorf("chain %s: %d entries for the run after three sweeps, want 1", chain, n)
		}
	}
	if n := followUpStarts(t, p.Client, fu); n != 1 {
		t.Errorf("%d follow-up executions, want 1", n)
	}
}

// TestWatchResetIncident: the same with a reset instead of a termination.
// Temporal terminates the reset run itself (identity history-resetter) and
// does not record who asked for the reset; the ledger says so, with the
// time, the reason and the new run. The account the reset run had disabled
// is offered back in a follow-up; when the follow-up is terminated in turn,
// in another one, where a lead's approval re-enables it.
func TestWatchResetIncident(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	wfID, runID := startIncident(t, p, "INC-WATCH-R", "credential-compromise", "keycloak", "enable")
	if on, err := p.Lab.Keycloak.UserEnabled(keycloak.Realm, "jdoe"); err != nil || on {
		t.Fatalf("jdoe not disabled after containment: %v %v", on, err)
	}

	// Reset to the first workflow task, as `temporal workflow reset --type FirstWorkflowTask`.
	var firstWFT int64
	it := p.Client.GetWorkflowHistory(context.Background(), wfID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() && firstWFT == 0 {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			firstWFT = e.GetEventId()
		}
	}
	mallory := testenv.Client(t, client.Options{Identity: "mallory-cli"})
	resp, err := mallory.ResetWorkflowExecution(context.Background(), &workflowservice.ResetWorkflowExecutionRequest{
		Namespace: testenv.Temporal(t).Namespace(), WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: wfID, RunId: runID},
		Reason: "replay from the start", WorkflowTaskFinishEventId: firstWFT, RequestId: uuid.NewString(), Identity: "mallory-cli",
	})
	if err != nil {
		t.Fatal(err)
	}
	// The new run redoes containment and waits at the same step.
	testplatform.WaitStep(t, p.Client, wfID, "enable", workflows.StepWaitingApproval, 60*time.Second)
	at, _, reason := terminatedEvent(t, p.Client, wfID, runID)

	rep := sweep(t, p, runID)
	if rep.How != watch.StoppedReset || rep.NewRunID != resp.GetRunId() || rep.Reason != reason || !rep.At.Equal(at) ||
		rep.Compensations != 1 || rep.FollowUpWorkflowID == "" {
		t.Fatalf("report: %+v (new run %s)", rep, resp.GetRunId())
	}
	es := watchEntries(t, p, accesslog.Chain(at), runID)
	if len(es) != 1 {
		t.Fatalf("%d watch entries for the reset run, want 1", len(es))
	}
	e := es[0]
	if e.Action != watch.ActionReset || e.Actor != "temporal:"+watch.ResetterIdentity || !e.Time.Equal(at.Truncate(time.Microsecond)) ||
		!strings.Contains(e.Outcome.Detail, "replay from the start") || !strings.Contains(e.Outcome.Detail, resp.GetRunId()) ||
		!strings.Contains(e.Outcome.Detail, "identity is not recorded") || !strings.Contains(e.Outcome.Detail, "new run holds the compensations of disable") {
		t.Errorf("reset entry: actor %s action %s time %s (reset at %s) detail %q", e.Actor, e.Action, e.Time, at, e.Outcome.Detail)
	}
	// The reset run appends to the incident's chain with its own sequence
	// numbers: the watch stays out of it.
	if n := len(watchEntries(t, p, "INC-WATCH-R", runID)); n != 0 {
		t.Errorf("%d watch entries in the chain the reset run owns", n)
	}

	fu := rep.FollowUpWorkflowID
	testplatform.WaitStep(t, p.Client, fu, "undo_1_disable", workflows.StepWaitingApproval, 30*time.Second)
	if on, _ := p.Lab.Keycloak.UserEnabled(keycloak.Realm, "jdoe"); on {
		t.Fatal("jdoe re-enabled before anyone approved it")
	}

	// mallory terminates the follow-up too: what it still offered is
	// offered again in a follow-up of the follow-up, nothing is lost.
	d, err := p.Client.DescribeWorkflow(context.Background(), fu, "")
	if err != nil {
		t.Fatal(err)
	}
	fuRun := d.WorkflowExecution.RunID
	if err := mallory.TerminateWorkflow(context.Background(), fu, fuRun, "noise"); err != nil {
		t.Fatal(err)
	}
	rep2 := sweep(t, p, fuRun)
	if rep2.How != watch.StoppedTerminated || rep2.By != "mallory-cli" || rep2.Compensations != 1 || rep2.FollowUpWorkflowID == "" || rep2.FollowUpWorkflowID == fu {
		t.Fatalf("report of the terminated follow-up: %+v", rep2)
	}
	if es := watchEntries(t, p, rep.FollowUpIncidentID, fuRun); len(es) != 1 || es[0].Actor != "temporal-client:mallory-cli" {
		t.Errorf("follow-up chain: watch entries %+v", es)
	}
	fu2 := rep2.FollowUpWorkflowID
	testplatform.WaitStep(t, p.Client, fu2, "undo_1_disable", workflows.StepWaitingApproval, 30*time.Second)
	if _, err := testplatform.Decide(p.Client, fu2, workflows.ApproveUpdate, "undo_1_disable", testplatform.Bob); err != nil {
		t.Fatalf("bob approves: %v", err)
	}
	testplatform.WaitStep(t, p.Client, fu2, "undo_1_disable", workflows.StepSucceeded, 30*time.Second)
	if on, err := p.Lab.Keycloak.UserEnabled(keycloak.Realm, "jdoe"); err != nil || !on {
		t.Errorf("jdoe not re-enabled after approval: %v %v", on, err)
	}
	sweep(t, p, runID)
	if n := len(watchEntries(t, p, accesslog.Chain(at), runID)); n != 1 {
		t.Errorf("%d entries after a second sweep, want 1", n)
	}
	for _, id := range []string{fu, fu2} {
		if n := followUpStarts(t, p.Client, id); n != 1 {
			t.Errorf("%s: %d executions, want 1", id, n)
		}
	}
}

// scheduledResults returns the results of the schedule's completed sweeps
// (oldest first) and how many sweeps it started.
func scheduledResults(t *testing.T, p *testplatform.Platform, h client.ScheduleHandle) ([]workflows.WatchResult, int) {
	t.Helper()
	d, err := h.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []workflows.WatchResult
	for _, a := range d.Info.RecentActions {
		if a.StartWorkflowResult == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var res workflows.WatchResult
		err := p.Client.GetWorkflow(ctx, a.StartWorkflowResult.WorkflowID, a.StartWorkflowResult.FirstExecutionRunID).Get(ctx, &res)
		cancel()
		if err != nil {
			t.Fatalf("sweep %s: %v", a.StartWorkflowResult.WorkflowID, err)
		}
		out = append(out, res)
	}
	return out, len(d.Info.RecentActions)
}

// TestWatchSchedule runs the watch as it is deployed: the schedule the
// worker and `starter up` create sweeps at once, and each sweep starts from
// the previous one's cursor (its last completion result): the terminated
// run is reported by one sweep, skipped by the next.
func TestWatchSchedule(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	ctx := context.Background()
	wfID, runID := startIncident(t, p, "INC-WATCH-S", "container-compromise", "api-gateway", "shutdown")
	mallory := testenv.Client(t, client.Options{Identity: "mallory-cli"})
	if err := mallory.TerminateWorkflow(ctx, wfID, runID, "scheduled test"); err != nil {
		t.Fatal(err)
	}

	sc := p.Client.ScheduleClient()
	h := sc.GetHandle(ctx, workflows.WatchScheduleID)
	_ = h.Delete(ctx) // a worker binary started by another test creates it too
	change, err := schedules.EnsureWatch(ctx, sc, p.TaskQueue)
	if err != nil || change != "created" {
		t.Fatalf("EnsureWatch: %s %v", change, err)
	}
	t.Cleanup(func() { _ = h.Delete(context.Background()) })
	if change, err := schedules.EnsureWatch(ctx, sc, p.TaskQueue); err != nil || change != "updated" {
		t.Fatalf("EnsureWatch again: %s %v", change, err)
	}

	// Sweep (the first one at creation, more by trigger) until one has
	// reported the run.
	reportedBy := -1
	for deadline := time.Now().Add(60 * time.Second); reportedBy < 0; {
		results, _ := scheduledResults(t, p, h)
		for i, r := range results {
			if slices.ContainsFunc(r.Reported, func(x watch.ReportResult) bool { return x.RunID == runID }) {
				reportedBy = i
			}
		}
		if reportedBy >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled sweep reported %s: %+v", runID, results)
		}
		if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	_, started := scheduledResults(t, p, h)
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	var next workflows.WatchResult
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		results, n := scheduledResults(t, p, h)
		if n > started && len(results) == n {
			next = results[len(results)-1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the triggered sweep did not run")
		}
	}
	if slices.ContainsFunc(next.Reported, func(x watch.ReportResult) bool { return x.RunID == runID }) || !slices.Contains(next.Seen, runID) {
		t.Errorf("the next sweep did not start from the cursor: reported %+v, seen %v", next.Reported, next.Seen)
	}
	at, _, _ := terminatedEvent(t, p.Client, wfID, runID)
	if n := len(watchEntries(t, p, accesslog.Chain(at), runID)); n != 1 {
		t.Errorf("%d entries, want 1", n)
	}
}
