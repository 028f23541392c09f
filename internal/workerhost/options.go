package workerhost

import (
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
)

// Poller counts of the platform's worker (see [WorkerOptions]).
const (
	// WorkflowTaskPollers is how many workflow task polls a worker starts
	// with, and the most it keeps open, on each of its two queues: the
	// task queue, where every new incident's first workflow task waits,
	// and its sticky queue. The SDK's two polls in all left one for the
	// task queue: at ten incidents a second on a loaded 2-core machine,
	// each poll a server round trip, that queue grew to tens of seconds
	// (the containment benchmark's first task waited 26 s to start).
	//
	// The polls are the SDK's autoscaling pollers, which poll each queue
	// with pollers of its own (at least [WorkflowTaskMinPollers] each),
	// not a fixed number shared between the queues: with those (the SDK's
	// "simple maximum"), every poll goes to the sticky queue while it
	// reports a backlog, so in an alert storm, with the running
	// incidents' signals queued there, new incidents' first tasks (their
	// containment) waited in the task queue, up to 2.9 s in the storm
	// benchmark, and status queries to them with them.
	WorkflowTaskPollers = 8
	// WorkflowTaskMinPollers is the fewest workflow task polls the
	// autoscaling pollers keep on each queue when the server says it is
	// idle.
	WorkflowTaskMinPollers = 2
	// ActivityTaskPollers is how many activity task polls a worker keeps
	// open (the activities a workflow task schedules mostly run eagerly,
	// without a poll; the rest are not left behind a single poll either).
	ActivityTaskPollers = 4
)

// WorkerOptions returns o with the platform worker's tuning set where o
// leaves it unset, the poller counts above, and [ContainFirst] added to
// its interceptors. The worker command and the benchmarks' worker use it,
// so what is measured is what runs.
func WorkerOptions(o worker.Options) worker.Options {
	if o.MaxConcurrentWorkflowTaskPollers == 0 && o.WorkflowTaskPollerBehavior == nil {
		o.WorkflowTaskPollerBehavior = worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
			InitialNumberOfPollers: WorkflowTaskPollers, MinimumNumberOfPollers: WorkflowTaskMinPollers,
			MaximumNumberOfPollers: WorkflowTaskPollers})
	}
	if o.MaxConcurrentActivityTaskPollers == 0 && o.ActivityTaskPollerBehavior == nil {
		o.MaxConcurrentActivityTaskPollers = ActivityTaskPollers
	}
	o.Interceptors = append([]interceptor.WorkerInterceptor{ContainFirst(BackgroundWhileContaining)}, o.Interceptors...)
	return o
}
