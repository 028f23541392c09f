//go:build integration

package test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/related"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/internal/workerhost"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// slowLister is a visibility store that, once armed, holds its next answer
// for Delay (or until the caller gives up).
type slowLister struct {
	related.Lister
	Delay time.Duration
	armed atomic.Bool
	calls atomic.Int32
}

func (l *slowLister) ListWorkflow(ctx context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	l.calls.Add(1)
	if l.armed.CompareAndSwap(true, false) {
		select {
		case <-time.After(l.Delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return l.Lister.ListWorkflow(ctx, req)
}

// actionStarts records when each incident's catalog actions started.
type actionStarts struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (f *actionStarts) run(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	id := activity.GetInfo(ctx).WorkflowExecution.ID
	f.mu.Lock()
	f.at[id] = append(f.at[id], time.Now())
	f.mu.Unlock()
	a, err := activities.Lookup(in.Action)
	if err != nil {
		return activities.ActionResult{}, err
	}
	out := map[string]string{}
	for _, o := range a.Outputs {
		out[o] = "x"
	}
	return activities.ActionResult{Outputs: out, Summary: "fake " + in.Action}, nil
}

// of returns when incident id's actions started so far, in order.
func (f *actionStarts) of(id string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.at[id])
}

// TestRelatedLookupSlowVisibility: the related incidents are looked up as
// a local activity, which holds the workflow task it runs in, and so the
// next steps. With a visibility store that takes 5 s to answer, the first
// step starts at once (the lookup waits until the containment is over),
// no step waits for another more than about the local lookup's second
// (unbounded, one would wait 5 s), and the lookup, run again as an
// activity, still links the incident open on the same asset.
func TestRelatedLookupSlowVisibility(t *testing.T) {
	c := testenv.Client(t, client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	queue := "related-slow-" + uuid.NewString()
	lister := &slowLister{Lister: c, Delay: 5 * time.Second}
	starts := &actionStarts{at: map[string][]time.Time{}}
	set, err := playbooks.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	testenv.Worker(t, c, queue, func(r worker.Registry) {
		workerhost.RegisterIncident(r, set, lister)
		r.RegisterActivityWithOptions(func(context.Context, workflows.DecisionKeysInput) (workflows.DecisionKeysResult, error) {
			return workflows.DecisionKeysResult{}, nil
		}, activity.RegisterOptions{Name: workflows.DecisionKeysActivity})
		r.RegisterActivityWithOptions(func(_ context.Context, in activities.LedgerAppendBatchInput) (activities.LedgerAppendBatchResult, error) {
			var res activities.LedgerAppendBatchResult
			for range in.Entries {
				res.Stored = append(res.Stored, activities.LedgerAppendResult{Hash: "fake"})
			}
			return res, nil
		}, activity.RegisterOptions{Name: activities.LedgerAppendBatch})
		for _, a := range activities.Catalog() {
			if !a.Internal {
				r.RegisterActivityWithOptions(starts.run, activity.RegisterOptions{Name: a.Name})
			}
		}
	})
	const asset = "web-slow-1"
	start := func(id string) (string, time.Time) {
		t.Helper()
		wfID := workflows.IncidentWorkflowID("related-slow:" + id)
		alert := workflows.Alert{ID: id, Fingerprint: "fp-" + id, Source: "test", Rule: "shell", Severity: "high", Asset: asset,
			Labels: map[string]string{"username": "jdoe", "realm": "iru"}, ObservedAt: time.Now(), ReceivedAt: time.Now()}
		at := time.Now()
		// Opened as the intake opens incidents.
		if err := (forward.TemporalSignaler{Client: c}).SignalWithStart(context.Background(), forward.Start{WorkflowID: wfID, TaskQueue: queue,
			Signal: workflows.AlertSignalInput{Alerts: []workflows.Alert{alert}},
			Input:  workflows.IncidentInput{IncidentID: id, Key: "related-slow:" + id, Asset: asset, Severity: "high", Playbook: "container-compromise"}}); err != nil {
			t.Fatalf("open %s: %v", id, err)
		}
		t.Cleanup(func() {
			if err := testenv.Terminate(c, "test done", []string{wfID}); err != nil {
				t.Error(err)
			}
		})
		return wfID, at
	}
	waitFirst := func(wfID string) time.Time {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if at := starts.of(wfID); len(at) > 0 {
				return at[0]
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: no step started in 30 s", wfID)
		return time.Time{}
	}

	// The first incident opens with visibility answering at once, and
	// looks up its own related incidents (none).
	older, _ := start("INC-RS-1")
	waitFirst(older)
	for deadline := time.Now().Add(30 * time.Second); lister.calls.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not look up its related incidents in 30 s", older)
		}
	}
	// Visibility lists the first incident before the second opens.
	waitVisible(t, c, older, asset)

	lister.armed.Store(true)
	newer, at := start("INC-RS-2")
	held := waitFirst(newer).Sub(at)
	if held > 500*time.Millisecond {
		t.Errorf("the first step started %s after the incident, want it at once (the lookup waits for the containment)", held.Round(time.Millisecond))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := testplatform.Status(c, newer)
		if err == nil && len(st.Related) == 1 && st.Related[0].WorkflowID == older && st.Related[0].How == workflows.RelatedFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not link %s after the slow lookup (slow answer asked for: %v): related %+v (err %v)", newer, older, !lister.armed.Load(), st.Related, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lister.armed.Load() {
		t.Fatal("the slow answer was never asked for")
	}
	// The actions the lookup ran between: none waited 5 s for it.
	var gap time.Duration
	steps := starts.of(newer)
	for i := 1; i < len(steps); i++ {
		gap = max(gap, steps[i].Sub(steps[i-1]))
	}
	if gap > 2500*time.Millisecond {
		t.Errorf("a step started %s after the one before it, want at most the local lookup's second (and slack)", gap.Round(time.Millisecond))
	}
	t.Logf("first step %s after the start; %d steps, longest wait between two %s; the link found by the activity", held.Round(time.Millisecond), len(steps), gap.Round(time.Millisecond))
}

// waitVisible waits until visibility lists wfID as a running incident on
// asset.
func waitVisible(t *testing.T, c client.Client, wfID, asset string) {
	t.Helper()
	q, err := workerhost.Related(c).Query(asset)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: q})
		if err == nil {
			for _, e := range resp.GetExecutions() {
				if e.GetExecution().GetWorkflowId() == wfID {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("visibility does not list %s on %s (err %v)", wfID, asset, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
