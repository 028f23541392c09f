package workerhost

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
	"github.com/iru-responder/responder/playbooks"
)

// heldSteps runs fake actions that block until released, each in its own
// test activity environment, all behind one interceptor (one worker).
type heldSteps struct {
	t       *testing.T
	ic      []interceptor.WorkerInterceptor
	started chan string

	mu      sync.Mutex
	release map[string]chan struct{}
	done    sync.WaitGroup
}

func newHeldSteps(t *testing.T, ic ...interceptor.WorkerInterceptor) *heldSteps {
	h := &heldSteps{t: t, ic: ic, started: make(chan string, 16), release: map[string]chan struct{}{}}
	t.Cleanup(func() {
		h.mu.Lock()
		for _, c := range h.release {
			select {
			case <-c:
			default:
				close(c)
			}
		}
		h.mu.Unlock()
		h.done.Wait()
	})
	return h
}

// start runs step (its action blocks until released) in phase.
func (h *heldSteps) start(step, phase string) {
	rel := make(chan struct{})
	h.mu.Lock()
	h.release[step] = rel
	h.mu.Unlock()
	env := activitytest.New(nil)
	env.SetWorkerOptions(worker.Options{Interceptors: h.ic})
	env.RegisterActivityWithOptions(func(_ context.Context, in activities.ActionInput) (activities.ActionResult, error) {
		h.started <- in.StepID
		<-rel
		return activities.ActionResult{}, nil
	}, activity.RegisterOptions{Name: "fake.step"})
	h.done.Go(func() {
		if _, err := activitytest.Run[activities.ActionResult](env, "fake.step", activities.ActionInput{StepID: step, Phase: phase}); err != nil {
			h.t.Errorf("step %s: %v", step, err)
		}
	})
}

// finish releases step's action.
func (h *heldSteps) finish(step string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.release[step])
}

// wantStarted waits for step to start.
func (h *heldSteps) wantStarted(step string) {
	h.t.Helper()
	select {
	case got := <-h.started:
		if got != step {
			h.t.Fatalf("step %s started, want %s", got, step)
		}
	case <-time.After(5 * time.Second):
		h.t.Fatalf("step %s did not start", step)
	}
}

// wantNoneStarted checks that no step starts for a while.
func (h *heldSteps) wantNoneStarted(why string) {
	h.t.Helper()
	select {
	case got := <-h.started:
		h.t.Fatalf("step %s started: %s", got, why)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestContainFirstHoldsLaterPhases runs, on one worker, a containment
// step and then investigation steps: while the containment step runs,
// only one investigation step (the limit) runs and the next waits for it;
// steps without a phase and detection steps never wait; once no
// containment step runs, investigation steps run beside each other.
// Without the interceptor the held step starts at once, and the test
// fails.
func TestContainFirstHoldsLaterPhases(t *testing.T) {
	h := newHeldSteps(t, ContainFirst(1))

	h.start("isolate", playbooks.PhaseContainment)
	h.wantStarted("isolate")
	h.start("evidence", playbooks.PhaseInvestigation)
	h.wantStarted("evidence") // the one the limit allows
	h.start("backup", playbooks.PhaseInvestigation)
	h.wantNoneStarted("a second investigation step ran while a containment step ran")

	// Detection steps and steps without a phase are not held.
	h.start("resolve", playbooks.PhaseDetection)
	h.wantStarted("resolve")
	h.start("notify", "")
	h.wantStarted("notify")

	// The running investigation step ends: the waiting one runs.
	h.finish("evidence")
	h.wantStarted("backup")
	h.start("report", playbooks.PhasePostIncident)
	h.wantNoneStarted("a post-incident step ran beside an investigation step while containment ran")

	// No detection or containment step is left: later phases run freely.
	h.finish("isolate")
	h.wantNoneStarted("resolve still runs")
	h.finish("resolve")
	h.wantStarted("report")
	h.start("restore", playbooks.PhaseRemediation)
	h.wantStarted("restore") // beside backup and report, over the limit
}

// TestWithoutContainFirstNothingWaits is the same load without the
// interceptor: the second investigation step starts beside the first,
// which is what TestContainFirstHoldsLaterPhases must rule out.
func TestWithoutContainFirstNothingWaits(t *testing.T) {
	h := newHeldSteps(t)
	h.start("isolate", playbooks.PhaseContainment)
	h.wantStarted("isolate")
	h.start("evidence", playbooks.PhaseInvestigation)
	h.wantStarted("evidence")
	h.start("backup", playbooks.PhaseInvestigation)
	h.wantStarted("backup")
}

// TestPhaseGateWaitIsBounded: a background step held by urgent ones is
// admitted after its longest wait, and one whose context ends while it
// waits is not admitted at all.
func TestPhaseGateWaitIsBounded(t *testing.T) {
	g := newPhaseGate(1)
	defer g.runUrgent()()
	rel, waited, err := g.admit(context.Background(), time.Hour)
	if err != nil || waited {
		t.Fatalf("first background step: waited %v, err %v; want admitted at once", waited, err)
	}
	defer rel()

	start := time.Now()
	rel2, waited, err := g.admit(context.Background(), 200*time.Millisecond)
	if err != nil || !waited {
		t.Fatalf("second background step: waited %v, err %v; want admitted after waiting", waited, err)
	}
	rel2()
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("second background step admitted after %s, want its longest wait, 200ms", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := g.admit(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("admit with an ending context = %v, want %v", err, context.DeadlineExceeded)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.background != 1 {
		t.Errorf("background steps counted = %d, want 1 (the refused one is not counted)", g.background)
	}
}

// TestMaxDeferral: half of what is left before the deadline, below the
// heartbeat timeout, never negative.
func TestMaxDeferral(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name      string
		deadline  time.Duration
		heartbeat time.Duration
		want      time.Duration
	}{
		{"start-to-close only", 2 * time.Minute, 0, time.Minute},
		{"heartbeat shorter", 30 * time.Minute, 30 * time.Second, 15 * time.Second},
		{"deadline shorter", 20 * time.Second, 30 * time.Second, 10 * time.Second},
		{"deadline passed", -time.Second, 0, 0},
		{"no deadline", 0, 0, time.Minute},
		{"no deadline, heartbeat", 0, 30 * time.Second, 15 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := activity.Info{HeartbeatTimeout: tc.heartbeat}
			if tc.deadline != 0 {
				info.Deadline = now.Add(tc.deadline)
			}
			if got := maxDeferral(info, now); got != tc.want {
				t.Errorf("maxDeferral = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestWorkerOptionsAddContainFirst: the worker command's and the
// benchmarks' workers hold later phases, and keep their own interceptors.
func TestWorkerOptionsAddContainFirst(t *testing.T) {
	own := &interceptor.WorkerInterceptorBase{}
	o := WorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{own}})
	if len(o.Interceptors) != 2 || o.Interceptors[1] != own {
		t.Fatalf("interceptors = %v, want ContainFirst and the caller's", o.Interceptors)
	}
	if _, ok := o.Interceptors[0].(*containFirst); !ok {
		t.Errorf("first interceptor is %T, want *containFirst", o.Interceptors[0])
	}
}
