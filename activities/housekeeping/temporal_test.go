//go:build integration

package housekeeping_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities/housekeeping"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// trigger starts schedule id now and returns the result of the workflow
// it started.
func trigger(t *testing.T, ctx context.Context, c client.Client, id string, result any) string {
	t.Helper()
	h := c.ScheduleClient().GetHandle(ctx, id)
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL}); err != nil {
		t.Fatal(err)
	}
	for {
		if ctx.Err() != nil {
			t.Fatalf("schedule %s started no workflow", id)
		}
		d, err := h.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(d.Info.RecentActions); n > 0 && d.Info.RecentActions[n-1].StartWorkflowResult != nil {
			r := d.Info.RecentActions[n-1].StartWorkflowResult
			if err := c.GetWorkflow(ctx, r.WorkflowID, r.FirstExecutionRunID).Get(ctx, result); err != nil {
				t.Fatal(err)
			}
			return r.WorkflowID
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSchedulesOnDevServer creates the housekeeping schedules on a real
// Temporal dev server, checks their specs, triggers them with a worker
// running the real activities on the real ledger and locker, and checks
// their effect: yesterday's access chain signed, expired evidence
// shredded with its ledger entries; then runs a sweep on demand.
func TestSchedulesOnDevServer(t *testing.T) {
	const queue = "housekeeping-test"
	now := time.Now().UTC()
	f := newFixture(t, now.Add(-25*time.Hour))
	f.record(t, 2) // yesterday's access chain
	ref, err := f.locker.Put(f.ctx, evidence.PutRequest{Incident: "INC-9", Name: "users.json", Class: evidence.ClassPII, MediaType: "application/json",
		CollectedBy: "system:worker", Source: "kc:iru", Body: strings.NewReader(`{"users":["jdoe"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Set(now) // the pii retention (1 h) ended
	yesterday := accesslog.Chain(now.Add(-25 * time.Hour))

	c := testenv.Client(t, client.Options{})
	testenv.Worker(t, c, queue, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(workflows.SignDailyChains, workflow.RegisterOptions{Name: workflows.SignDailyChainsWorkflow})
		r.RegisterWorkflowWithOptions(workflows.SweepEvidence, workflow.RegisterOptions{Name: workflows.SweepEvidenceWorkflow})
		r.RegisterActivityWithOptions(f.acts.SignDailyChains, activity.RegisterOptions{Name: workflows.SignDailyChainsActivity})
		r.RegisterActivityWithOptions(f.acts.SweepEvidence, activity.RegisterOptions{Name: workflows.SweepEvidenceActivity})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	changes, err := schedules.EnsureHousekeeping(ctx, c.ScheduleClient(), queue)
	if err != nil || changes[workflows.SignDailyChainsScheduleID] != "created" || changes[workflows.SweepEvidenceScheduleID] != "created" {
		t.Fatalf("EnsureHousekeeping = %v, %v", changes, err)
	}
	for _, id := range []string{workflows.SignDailyChainsScheduleID, workflows.SweepEvidenceScheduleID} {
		t.Cleanup(func() { _ = c.ScheduleClient().GetHandle(context.Background(), id).Delete(context.Background()) })
	}
	if changes, err = schedules.EnsureHousekeeping(ctx, c.ScheduleClient(), queue); err != nil || changes[workflows.SweepEvidenceScheduleID] != "updated" {
		t.Fatalf("second EnsureHousekeeping = %v, %v", changes, err)
	}
	for id, cron := range map[string]string{workflows.SignDailyChainsScheduleID: schedules.SignCron, workflows.SweepEvidenceScheduleID: schedules.SweepCron} {
		d, err := c.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		next := d.Info.NextActionTimes
		if len(next) == 0 || next[0].Before(time.Now()) || next[0].After(time.Now().Add(24*time.Hour)) {
			t.Errorf("%s (%s): next runs %v, want one within a day", id, cron, next)
		}
		if a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); !ok || a.TaskQueue != queue {
			t.Errorf("%s action %+v", id, d.Schedule.Action)
		}
	}

	var signed housekeeping.SignDailyChainsResult
	trigger(t, ctx, c, workflows.SignDailyChainsScheduleID, &signed)
	if len(signed.Chains) != 1 || signed.Chains[0].Chain != yesterday || signed.Chains[0].Seq != 2 {
		t.Fatalf("signed %+v, want %s up to seq 2", signed, yesterday)
	}
	if rep, err := f.ledger.Verify(f.ctx, yesterday, f.signer); err != nil || rep.Checkpoints != 1 || rep.CheckpointSeq != 2 {
		t.Errorf("%s: %+v, %v", yesterday, rep, err)
	}

	var swept housekeeping.SweepEvidenceResult
	wfID := trigger(t, ctx, c, workflows.SweepEvidenceScheduleID, &swept)
	if !strings.HasPrefix(wfID, workflows.SweepEvidenceScheduleID) || swept.Count != 1 || swept.Objects[0].Ref != string(ref) {
		t.Fatalf("scheduled sweep %s: %+v", wfID, swept)
	}
	if _, _, err := f.locker.Get(f.ctx, ref, evidence.Reader{Identity: "system:test", Reason: "check"}); !errors.Is(err, evidence.ErrDeleted) {
		t.Errorf("%s after the scheduled sweep: %v, want ErrDeleted", ref, err)
	}
	e, err := f.ledger.Store().Head(f.ctx, swept.Objects[0].LedgerChain)
	if err != nil || e.Action != housekeeping.ActionEvidenceDestroyed || e.Target != string(ref) {
		t.Errorf("ledger head of %s: %+v, %v", swept.Objects[0].LedgerChain, e, err)
	}

	// On demand, as `starter evidence sweep` runs it: nothing left.
	run, err := schedules.RunSweep(ctx, c, queue, housekeeping.SweepEvidenceInput{DryRun: true})
	if err != nil || run.Result.Count != 0 || !strings.HasPrefix(run.WorkflowID, workflows.SweepEvidenceManualPrefix) {
		t.Fatalf("RunSweep = %+v, %v", run, err)
	}
}
