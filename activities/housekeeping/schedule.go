package housekeeping

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/workflows"
)

// Times of the daily schedules (UTC) and their policies.
const (
	// SignCron signs the daily chains at 00:10 UTC: records of the ended
	// day still in an access-log queue at midnight have landed by then
	// (later ones are signed on the next run, see
	// [workflows.DailyChainLookback]).
	SignCron = "10 0 * * *"
	// SweepCron runs the evidence retention at 02:30 UTC.
	SweepCron = "30 2 * * *"
	// CatchupWindow is how late a missed run still starts after an outage.
	CatchupWindow = 24 * time.Hour
	// WorkflowTimeout bounds one run, retries included.
	WorkflowTimeout = 6 * time.Hour
)

// Schedule is one housekeeping schedule.
type Schedule = schedules.Schedule

// Schedules returns the housekeeping schedules: the daily chain signing
// ([workflows.SignDailyChainsScheduleID]) and the evidence retention sweep
// ([workflows.SweepEvidenceScheduleID]), overlapping runs skipped.
func Schedules(taskQueue string) []Schedule {
	policy := client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: CatchupWindow}
	return []Schedule{
		{
			ID:   workflows.SignDailyChainsScheduleID,
			Spec: client.ScheduleSpec{CronExpressions: []string{SignCron}, TimeZoneName: "UTC"},
			Action: &client.ScheduleWorkflowAction{
				ID: workflows.SignDailyChainsScheduleID, Workflow: workflows.SignDailyChainsWorkflow,
				Args: []any{workflows.SignDailyChainsInput{}}, TaskQueue: taskQueue, WorkflowExecutionTimeout: WorkflowTimeout,
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
				Args: []any{workflows.SweepEvidenceInput{}}, TaskQueue: taskQueue, WorkflowExecutionTimeout: WorkflowTimeout,
				StaticSummary: "destroy evidence past its retention (data keys shredded) and record it in the audit ledger",
			},
			Policy: policy,
			Note:   "destroys evidence whose retention ended and records each destruction in the audit ledger; managed by `starter up`",
		},
	}
}

// EnsureSchedules creates each housekeeping schedule, or updates its spec,
// action and policies (keeping its paused state), and reports per
// schedule id "created" or "updated".
func EnsureSchedules(ctx context.Context, sc client.ScheduleClient, taskQueue string) (map[string]string, error) {
	changes := map[string]string{}
	for _, s := range Schedules(taskQueue) {
		change, err := schedules.Ensure(ctx, sc, s)
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
	Result     workflows.SweepEvidenceResult
}

// RunSweepNow runs the evidence retention sweep on the worker now (not
// through the schedule) and waits for its result. The worker is the only
// writer of the evidence locker, so the sweep runs there.
func RunSweepNow(ctx context.Context, c client.Client, taskQueue string, in workflows.SweepEvidenceInput) (SweepRun, error) {
	id := workflows.SweepEvidenceManualPrefix + uuid.NewString()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue, WorkflowExecutionTimeout: WorkflowTimeout},
		workflows.SweepEvidenceWorkflow, in)
	if err != nil {
		return SweepRun{}, fmt.Errorf("start evidence sweep: %w", err)
	}
	var res workflows.SweepEvidenceResult
	if err := run.Get(ctx, &res); err != nil {
		return SweepRun{WorkflowID: id}, fmt.Errorf("evidence sweep %s: %w", id, err)
	}
	return SweepRun{WorkflowID: id, Result: res}, nil
}
