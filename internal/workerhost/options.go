package workerhost

import (
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
)

// Poller counts of the platform's worker (see [WorkerOptions]).
const (
	// WorkflowTaskPollers is how many workflow task polls a worker keeps
	// open, half on its sticky queue, half on the task queue. The SDK's
	// two leave one poll for the task queue, where every new incident's
	// first workflow task waits: at ten incidents a second on a loaded
	// 2-core machine, each poll a server round trip, that queue grew to
	// tens of seconds (the containment benchmark's first task waited 26 s
	// to start).
	WorkflowTaskPollers = 8
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
		o.MaxConcurrentWorkflowTaskPollers = WorkflowTaskPollers
	}
	if o.MaxConcurrentActivityTaskPollers == 0 && o.ActivityTaskPollerBehavior == nil {
		o.MaxConcurrentActivityTaskPollers = ActivityTaskPollers
	}
	o.Interceptors = append([]interceptor.WorkerInterceptor{ContainFirst(BackgroundWhileContaining)}, o.Interceptors...)
	return o
}
