package schedules

import (
	"context"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/workflows"
)

// Policies of the watch schedule and of its sweeps.
const (
	// WatchSweepTimeout bounds one sweep, retries included.
	WatchSweepTimeout = 30 * time.Minute
	// watchNote is the schedule's note.
	watchNote = "reports incidents terminated or reset outside the platform and opens follow-ups for their pending compensations; managed by the worker and `starter up`"
)

// WatchParts returns the spec, action and policies of the watch schedule
// [workflows.WatchScheduleID]: a sweep every [workflows.WatchInterval]
// over the incidents of taskQueue, overlapping sweeps skipped (the next
// one starts from the last one's cursor).
func WatchParts(taskQueue string) (client.ScheduleSpec, *client.ScheduleWorkflowAction, client.SchedulePolicies) {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: workflows.WatchInterval}}}
	action := &client.ScheduleWorkflowAction{
		ID:                       workflows.WatchScheduleID,
		Workflow:                 workflows.WatchWorkflow,
		Args:                     []any{workflows.WatchInput{TaskQueue: taskQueue}},
		TaskQueue:                taskQueue,
		WorkflowExecutionTimeout: WatchSweepTimeout,
		StaticSummary:            "report incidents stopped outside the platform",
	}
	return spec, action, client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: time.Hour}
}

// EnsureWatch creates the watch schedule, or updates its spec, action and
// policies (keeping its paused state), and reports which. On creation a
// sweep runs at once: a run stopped while the platform was down is
// reported now, not in one interval.
func EnsureWatch(ctx context.Context, sc client.ScheduleClient, taskQueue string) (change string, err error) {
	spec, action, policy := WatchParts(taskQueue)
	return Ensure(ctx, sc, Schedule{ID: workflows.WatchScheduleID, Spec: spec, Action: action, Policy: policy,
		Note: watchNote, TriggerImmediately: true})
}
