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

// Policies of the intake key rotation schedule and of its workflows.
const (
	// IntakeKeyRotationCatchupWindow is how late a missed rotation still
	// starts after a server outage (a later one waits for the next
	// interval).
	IntakeKeyRotationCatchupWindow = 7 * 24 * time.Hour
	// IntakeKeyRotationTimeout bounds one rotation workflow, retries
	// included.
	IntakeKeyRotationTimeout = time.Hour
	// intakeKeyRotationNote is the schedule's note.
	intakeKeyRotationNote = "rotates the detector intake API keys every 90 days; managed by `starter keys schedule`"
)

// IntakeKeyRotationParts returns the spec, action and policies of the
// intake key rotation schedule [workflows.IntakeKeyRotationScheduleID]: every
// [workflows.IntakeKeyRotationInterval], overlapping runs skipped.
func IntakeKeyRotationParts(taskQueue string) (client.ScheduleSpec, *client.ScheduleWorkflowAction, client.SchedulePolicies) {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: workflows.IntakeKeyRotationInterval}}}
	action := &client.ScheduleWorkflowAction{
		ID:                       workflows.IntakeKeyRotationScheduleID,
		Workflow:                 workflows.RotateIntakeKeysWorkflow,
		Args:                     []any{workflows.RotateIntakeKeysInput{Reason: workflows.DefaultIntakeKeyRotationReason}},
		TaskQueue:                taskQueue,
		WorkflowExecutionTimeout: IntakeKeyRotationTimeout,
		StaticSummary:            "rotate the detector intake API keys",
	}
	return spec, action, client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: IntakeKeyRotationCatchupWindow}
}

// EnsureIntakeKeyRotation creates the intake key rotation schedule, or
// updates its spec, action and policies (keeping its paused state), and
// reports which.
func EnsureIntakeKeyRotation(ctx context.Context, sc client.ScheduleClient, taskQueue string) (change string, err error) {
	spec, action, policy := IntakeKeyRotationParts(taskQueue)
	return Ensure(ctx, sc, Schedule{ID: workflows.IntakeKeyRotationScheduleID, Spec: spec, Action: action, Policy: policy, Note: intakeKeyRotationNote})
}

// IntakeKeyRotationRun is one rotation an operator started.
type IntakeKeyRotationRun struct {
	WorkflowID string
	Result     workflows.RotateIntakeKeysResult
}

// RunIntakeKeyRotation runs an intake key rotation now (not through the
// schedule) and waits for its result.
func RunIntakeKeyRotation(ctx context.Context, c client.Client, taskQueue string, in workflows.RotateIntakeKeysInput) (IntakeKeyRotationRun, error) {
	id := workflows.IntakeKeyRotationManualPrefix + uuid.NewString()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: taskQueue, WorkflowExecutionTimeout: IntakeKeyRotationTimeout,
	}, workflows.RotateIntakeKeysWorkflow, in)
	if err != nil {
		return IntakeKeyRotationRun{}, fmt.Errorf("start intake key rotation: %w", err)
	}
	var res workflows.RotateIntakeKeysResult
	if err := run.Get(ctx, &res); err != nil {
		return IntakeKeyRotationRun{WorkflowID: id}, fmt.Errorf("intake key rotation %s: %w", id, err)
	}
	return IntakeKeyRotationRun{WorkflowID: id, Result: res}, nil
}
