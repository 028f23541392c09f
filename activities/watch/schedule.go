package watch

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/workflows"
)

// Policies of the watch schedule and of its sweeps.
const (
	// SweepTimeout bounds one sweep, retries included.
	SweepTimeout = 30 * time.Minute
	// scheduleNote is the schedule's note.
	scheduleNote = "reports incidents terminated or reset outside the platform and opens follow-ups for their pending compensations; managed by the worker and `starter up`"
)

// ScheduleParts returns the spec, action and policies of the watch
// schedule [workflows.WatchScheduleID]: a sweep every
// [workflows.WatchInterval] over the incidents of taskQueue, overlapping
// sweeps skipped (the next one starts from the last one's cursor).
func ScheduleParts(taskQueue string) (client.ScheduleSpec, *client.ScheduleWorkflowAction, client.SchedulePolicies) {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: workflows.WatchInterval}}}
	action := &client.ScheduleWorkflowAction{
		ID:                       workflows.WatchScheduleID,
		Workflow:                 workflows.WatchWorkflow,
		Args:                     []any{workflows.WatchInput{TaskQueue: taskQueue}},
		TaskQueue:                taskQueue,
		WorkflowExecutionTimeout: SweepTimeout,
		StaticSummary:            "report incidents stopped outside the platform",
	}
	return spec, action, client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: time.Hour}
}

// EnsureSchedule creates the watch schedule, or updates its spec, action
// and policies (keeping its paused state), and reports which.
func EnsureSchedule(ctx context.Context, sc client.ScheduleClient, taskQueue string) (change string, err error) {
	id := workflows.WatchScheduleID
	spec, action, policy := ScheduleParts(taskQueue)
	h := sc.GetHandle(ctx, id)
	_, err = h.Describe(ctx)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		_, err = sc.Create(ctx, client.ScheduleOptions{
			ID: id, Spec: spec, Action: action, Overlap: policy.Overlap, CatchupWindow: policy.CatchupWindow, Note: scheduleNote,
			// A sweep at once: a run stopped while the platform was down
			// is reported now, not in one interval.
			TriggerImmediately: true,
		})
		if err != nil {
			if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
				return "unchanged", nil // another worker created it just now
			}
			return "", fmt.Errorf("create schedule %s: %w", id, err)
		}
		return "created", nil
	case err != nil:
		return "", fmt.Errorf("describe schedule %s: %w", id, err)
	}
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		s := in.Description.Schedule
		s.Spec, s.Action, s.Policy = &spec, action, &policy
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}})
	if err != nil {
		return "", fmt.Errorf("update schedule %s: %w", id, err)
	}
	return "updated", nil
}
