package workerhost

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/playbooks"
)

// BackgroundWhileContaining is how many steps of the phases after
// containment a worker runs at once while a detection or containment step
// runs on it (see [ContainFirst]).
const BackgroundWhileContaining = 2

// Metrics of [ContainFirst], through the worker's Temporal metrics handler.
const (
	// DeferredMetric counts the later-phase steps that waited for the
	// detection and containment steps before they ran.
	DeferredMetric = "iru_worker_deferred_steps"
	// DeferralMetric is how long they waited (a histogram, exported as
	// iru_worker_step_deferral_seconds).
	DeferralMetric = "iru_worker_step_deferral"
)

// ContainFirst returns a worker interceptor that runs an incident's
// detection and containment steps ahead of the steps of the later phases
// (investigation, remediation, recovery, post-incident) of every incident
// on the worker. While a detection or containment step runs, at most
// limit later-phase steps run at once; the others wait before their action
// starts, until no detection or containment step runs or a running
// later-phase step ends.
//
// Under a wave of incidents the later phases' work (evidence collection,
// forensic backups, their API calls and the workflow tasks that follow
// them) otherwise takes the processors from the next incidents'
// containment: at ten incidents a second on the production topology
// (test/bench, BenchmarkTimeToContain), the containment's p99 was 2.2–4.9 s
// with the investigation running beside it, 0.39–0.68 s with ContainFirst.
//
// A containment step that runs long (a backup in the containment phase)
// limits the later phases to limit at a time for as long as it runs; it
// never stops them. While a step waits, its incident shows it running.
//
// A step waits at most half of what is left of its start-to-close
// timeout, and less than its heartbeat timeout, so waiting never times an
// attempt out; then it runs anyway. Steps without a phase (compensations,
// the interpreter's notifications) and activities that are not actions
// are neither held nor counted.
func ContainFirst(limit int) interceptor.WorkerInterceptor {
	return &containFirst{gate: newPhaseGate(limit)}
}

type containFirst struct {
	interceptor.WorkerInterceptorBase
	gate *phaseGate
}

func (c *containFirst) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &containFirstInbound{gate: c.gate}
	i.Next = next
	return i
}

type containFirstInbound struct {
	interceptor.ActivityInboundInterceptorBase
	gate *phaseGate
}

func (c *containFirstInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	var phase string
	if len(in.Args) > 0 {
		if ai, ok := in.Args[0].(activities.ActionInput); ok {
			phase = ai.Phase
		}
	}
	switch {
	case isUrgentPhase(phase):
		defer c.gate.runUrgent()()
	case playbooks.AfterContainment(phase):
		info := activity.GetInfo(ctx)
		start := time.Now()
		release, waited, err := c.gate.admit(ctx, maxDeferral(info, start))
		if err != nil {
			return nil, fmt.Errorf("waiting for the containment steps before %s: %w", info.ActivityType.Name, err)
		}
		defer release()
		if waited {
			d := time.Since(start)
			mh := activity.GetMetricsHandler(ctx).WithTags(map[string]string{"phase": phase})
			mh.Counter(DeferredMetric).Inc(1)
			mh.Timer(DeferralMetric).Record(d)
			activity.GetLogger(ctx).Debug("step waited for the containment steps", "phase", phase, "waited", d)
		}
	}
	return c.Next.ExecuteActivity(ctx, in)
}

// isUrgentPhase reports whether a step of phase runs ahead of the others.
func isUrgentPhase(phase string) bool {
	return phase == playbooks.PhaseDetection || phase == playbooks.PhaseContainment
}

// maxDeferral is how long an attempt that started at now may wait: half
// of what is left before its deadline (a minute without one), and less
// than its heartbeat timeout (it does not heartbeat while it waits).
func maxDeferral(info activity.Info, now time.Time) time.Duration {
	d := time.Minute
	if !info.Deadline.IsZero() {
		d = info.Deadline.Sub(now) / 2
	}
	if hb := info.HeartbeatTimeout; hb > 0 {
		d = min(d, hb/2)
	}
	return max(d, 0)
}

// phaseGate counts the urgent and the background steps running and holds
// background steps while urgent ones run and limit background ones do.
type phaseGate struct {
	limit int

	mu         sync.Mutex
	urgent     int
	background int
	// changed is closed (and replaced) when a step ends.
	changed chan struct{}
}

func newPhaseGate(limit int) *phaseGate {
	return &phaseGate{limit: max(limit, 1), changed: make(chan struct{})}
}

// runUrgent counts an urgent step until the returned func is called.
func (g *phaseGate) runUrgent() (done func()) {
	g.mu.Lock()
	g.urgent++
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.urgent--
		g.broadcastLocked()
		g.mu.Unlock()
	}
}

// admit waits until a background step may run: no urgent step runs, or
// fewer than limit background steps do; after maxWait it is admitted
// anyway. It reports whether the step had to wait; release ends the
// step. It fails only when ctx ends first.
func (g *phaseGate) admit(ctx context.Context, maxWait time.Duration) (release func(), waited bool, err error) {
	var timer *time.Timer
	expired := false
	g.mu.Lock()
	for !expired && g.urgent > 0 && g.background >= g.limit {
		changed := g.changed
		g.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(maxWait)
			defer timer.Stop()
		}
		waited = true
		select {
		case <-changed:
		case <-timer.C:
			expired = true
		case <-ctx.Done():
			return nil, waited, ctx.Err()
		}
		g.mu.Lock()
	}
	g.background++
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.background--
		g.broadcastLocked()
		g.mu.Unlock()
	}, waited, nil
}

// broadcastLocked wakes every waiting step; g.mu is held.
func (g *phaseGate) broadcastLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}
