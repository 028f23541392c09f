package schedules

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/activities/housekeeping"
	"github.com/iru-responder/responder/workflows"
)

// Times of the daily housekeeping schedules (UTC) and their policies.
const (
	// SignCron signs the daily chains at 00:10 UTC: records of the ended
	// day still in an access-log queue at midnight have landed by then
	// (later ones are signed on the next run, see
	// [housekeeping.DailyChainLookback]).
	SignCron = "10 0 * * *"
	// SweepCron runs the evidence retention at 02:30 UTC.
	SweepCron = "30 2 * * *"
	// HousekeepingCatchupWindow is how late a missed run still starts after
	// an outage.
	HousekeepingCatchupWindow = 24 * time.Hour
	// HousekeepingTimeout bounds one run, retries included.
	HousekeepingTimeout = 6 * time.Hour
)

// Housekeeping returns the housekeeping schedules: the daily chain signing
// ([workflows.SignDailyChainsScheduleID]) and the evidence retention sweep
// ([workflows.SweepEvidenceScheduleID]), overlapping runs skipped.
func Housekeeping(taskQueue string) []Schedule {
	policy := client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: HousekeepingCatchupWindow}
	return []Schedule{
		{
			ID:   workflows.SignDailyChainsScheduleID,
			Spec: client.ScheduleSpec{CronExpressions: []string{SignCron}, TimeZoneName: "UTC"},
			Action: &client.ScheduleWorkflowAction{
				ID: workflows.SignDailyChainsScheduleID, Workflow: workflows.SignDailyChainsWorkflow,
				Args: []any{housekeeping.SignDailyChainsInput{}}, TaskQueue: taskQueue, WorkflowExecutionTimeout: HousekeepingTimeout,
				StaticSummary: "sign the ended days' audit chains (access log, key changes, configuration) with the HSM key",
			},
			Policy: policy,
			Note:   "signs each ended day's audit chain (access:<day>) with the HSM key; managed by `starter up`",
		},
		{
			ID:   workflows.SweepEvidenceScheduleID,
			Spec: client.ScheduleSpec{CronExpressions: []string{SweepCron}, TimeZoneName: "UTC"},
			Action: &client.ScheduleWorkflowAction{
				ID: workflows.SweepEvidenceScheduleID, Workflow: workflows.SweepEvidenceWorkflow,
				Args: []any{housekeeping.SweepEvidenceInput{}}, TaskQueue: taskQueue, WorkflowExecutionTimeout: HousekeepingTimeout,
				StaticSummary: "destroy evidence past its retention (data keys shredded) and record it in the audit ledger",
			},
			Policy: policy,
			Note:   "destroys evidence whose retention ended and records each destruction in the audit ledger; managed by `starter up`",
		},
	}
}

// EnsureHousekeeping creates each housekeeping schedule, or updates its spec,
// action and policies (keeping its paused state), and reports per
// schedule id "created" or "updated".
func EnsureHousekeeping(ctx context.Context, sc client.ScheduleClient, taskQueue string) (map[string]string, error) {
	changes := map[string]string{}
	for _, s := range Housekeeping(taskQueue) {
		change, err := Ensure(ctx, sc, s)
		if err != nil {
			return changes, err
		}
		changes[s.ID] = change
	}
	return changes, nil
}

// SweepRun is one sweep an operator started.
type SweepRun struct {
	WorkflowID string
	Result     housekeeping.SweepEvidenceResult
}

// RunSweep runs the evidence retention sweep on the worker now (not
// through the schedule) and waits for its result. The worker is the only
// writer of the evidence locker, so the sweep runs there.
func RunSweep(ctx context.Context, c client.Client, taskQueue string, in housekeeping.SweepEvidenceInput) (SweepRun, error) {
	id := workflows.SweepEvidenceManualPrefix + uuid.NewString()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue, WorkflowExecutionTimeout: HousekeepingTimeout},
		workflows.SweepEvidenceWorkflow, in)
	if err != nil {
		return SweepRun{}, fmt.Errorf("start evidence sweep: %w", err)
	}
	var res housekeeping.SweepEvidenceResult
	if err := run.Get(ctx, &res); err != nil {
		return SweepRun{WorkflowID: id}, fmt.Errorf("evidence sweep %s: %w", id, err)
	}
	return SweepRun{WorkflowID: id, Result: res}, nil
}
