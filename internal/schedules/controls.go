package schedules

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/workflows"
)

// The daily check of the controls.
const (
	// ControlsCron runs [workflows.Controls] on every control at 04:00 UTC
	// (after the housekeeping: the checks of the retention sweep and of the
	// signed checkpoints read what it did).
	ControlsCron = "0 4 * * *"
	// ControlsTimeout bounds one run, retries included.
	ControlsTimeout = time.Hour
	// controlsNote is the schedule's note.
	controlsNote = "checks every control of the controls file and opens a control-drift incident for each one that fails; managed by the worker and `starter up`"
)

// Controls returns the daily controls schedule
// ([workflows.ControlsScheduleID]), overlapping runs skipped, a missed run
// caught up within a day.
func Controls(taskQueue string) Schedule {
	return Schedule{
		ID:   workflows.ControlsScheduleID,
		Spec: client.ScheduleSpec{CronExpressions: []string{ControlsCron}, TimeZoneName: "UTC"},
		Action: &client.ScheduleWorkflowAction{
			ID: workflows.ControlsScheduleID, Workflow: workflows.ControlsWorkflow,
			Args: []any{workflows.ControlsInput{}}, TaskQueue: taskQueue, WorkflowExecutionTimeout: ControlsTimeout,
			StaticSummary: "check the hardening guide's controls; drift opens an incident",
		},
		Policy: client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: 24 * time.Hour},
		Note:   controlsNote,
	}
}

// EnsureControls creates the daily controls schedule, or updates its spec,
// action and policies (keeping its paused state), and reports which.
func EnsureControls(ctx context.Context, sc client.ScheduleClient, taskQueue string) (string, error) {
	return Ensure(ctx, sc, Controls(taskQueue))
}

// RunControls runs [workflows.Controls] now (not through the schedule) on
// the worker and waits for its result.
func RunControls(ctx context.Context, c client.Client, taskQueue string, in workflows.ControlsInput) (string, workflows.ControlsResult, error) {
	id := workflows.ControlsManualPrefix + uuid.NewString()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue, WorkflowExecutionTimeout: ControlsTimeout},
		workflows.ControlsWorkflow, in)
	if err != nil {
		return id, workflows.ControlsResult{}, fmt.Errorf("start controls check: %w", err)
	}
	var res workflows.ControlsResult
	if err := run.Get(ctx, &res); err != nil {
		return id, workflows.ControlsResult{}, fmt.Errorf("controls check %s: %w", id, err)
	}
	return id, res, nil
}
