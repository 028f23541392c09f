package intakekeys

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

// Policies of the rotation schedule and of its workflows.
const (
	// ScheduleCatchupWindow is how late a missed rotation still starts
	// after a server outage (a later one waits for the next interval).
	ScheduleCatchupWindow = 7 * 24 * time.Hour
	// WorkflowTimeout bounds one rotation workflow, retries included.
	WorkflowTimeout = time.Hour
	// scheduleNote is the schedule's note.
	scheduleNote = "rotates the detector intake API keys every 90 days; managed by `starter keys schedule`"
)

// ScheduleParts returns the spec, action and policies of the rotation
// schedule [workflows.IntakeKeyRotationScheduleID]: every
// [workflows.IntakeKeyRotationInterval], overlapping runs skipped.
func ScheduleParts(taskQueue string) (client.ScheduleSpec, *client.ScheduleWorkflowAction, client.SchedulePolicies) {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: workflows.IntakeKeyRotationInterval}}}
	action := &client.ScheduleWorkflowAction{
		ID:                       workflows.IntakeKeyRotationScheduleID,
		Workflow:                 workflows.RotateIntakeKeysWorkflow,
		Args:                     []any{workflows.RotateIntakeKeysInput{Reason: workflows.DefaultIntakeKeyRotationReason}},
		TaskQueue:                taskQueue,
		WorkflowExecutionTimeout: WorkflowTimeout,
		StaticSummary:            "rotate the detector intake API keys",
	}
	return spec, action, client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: ScheduleCatchupWindow}
}

// EnsureSchedule creates the rotation schedule, or updates its spec,
// action and policies (keeping its paused state), and reports which.
func EnsureSchedule(ctx context.Context, sc client.ScheduleClient, taskQueue string) (change string, err error) {
	spec, action, policy := ScheduleParts(taskQueue)
	return schedules.Ensure(ctx, sc, schedules.Schedule{ID: workflows.IntakeKeyRotationScheduleID, Spec: spec, Action: action, Policy: policy, Note: scheduleNote})
}

// Run is one rotation an operator started.
type Run struct {
	WorkflowID string
	Result     workflows.RotateIntakeKeysResult
}

// RunNow runs a rotation now (not through the schedule) and waits for its
// result.
func RunNow(ctx context.Context, c client.Client, taskQueue string, in workflows.RotateIntakeKeysInput) (Run, error) {
	id := workflows.IntakeKeyRotationManualPrefix + uuid.NewString()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: taskQueue, WorkflowExecutionTimeout: WorkflowTimeout,
	}, workflows.RotateIntakeKeysWorkflow, in)
	if err != nil {
		return Run{}, fmt.Errorf("start intake key rotation: %w", err)
	}
	var res workflows.RotateIntakeKeysResult
	if err := run.Get(ctx, &res); err != nil {
		return Run{WorkflowID: id}, fmt.Errorf("intake key rotation %s: %w", id, err)
	}
	return Run{WorkflowID: id, Result: res}, nil
}
