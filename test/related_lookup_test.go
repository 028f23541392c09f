//go:build integration

package test

import (
	"context"
	"log/slog"
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
	"go.temporal.io/sdk/workflow"

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
}

func (l *slowLister) ListWorkflow(ctx context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	if l.armed.CompareAndSwap(true, false) {
		select {
		case <-time.After(l.Delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return l.Lister.ListWorkflow(ctx, req)
}

// firstActions records when each incident's first catalog action started.
type firstActions struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (f *firstActions) run(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	id := activity.GetInfo(ctx).WorkflowExecution.ID
	f.mu.Lock()
	if _, ok := f.at[id]; !ok {
		f.at[id] = time.Now()
	}
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

func (f *firstActions) of(id string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.at[id]
	return at, ok
}

// TestRelatedLookupSlowVisibility: the related incidents are looked up in
// the workflow task that opens an incident (a local activity), so that
// task's commands, the first steps among them, wait for the lookup. A
// visibility store that takes 5 s to answer holds the first step at most
// the local lookup's second: the lookup then runs again as an activity,
// beside the steps, and still links the incident open on the same asset.
// (With the local lookup unbounded, the first step would start after 5 s.)
func TestRelatedLookupSlowVisibility(t *testing.T) {
	c := testenv.Client(t, client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	queue := "related-slow-" + uuid.NewString()
	lister := &slowLister{Lister: c, Delay: 5 * time.Second}
	first := &firstActions{at: map[string]time.Time{}}
	set, err := playbooks.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	testenv.Worker(t, c, queue, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(workflows.Incident, workflow.RegisterOptions{Name: workflows.IncidentWorkflow})
		r.RegisterActivityWithOptions((&playbooks.Resolver{Set: set}).Resolve, activity.RegisterOptions{Name: workflows.ResolveActivity})
		workerhost.Related(lister).Register(r)
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
				r.RegisterActivityWithOptions(first.run, activity.RegisterOptions{Name: a.Name})
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
		t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), wfID, "", "test done") })
		return wfID, at
	}
	waitFirst := func(wfID string) time.Time {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if at, ok := first.of(wfID); ok {
				return at
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: no step started in 30 s", wfID)
		return time.Time{}
	}

	// The first incident opens with visibility answering at once.
	older, _ := start("INC-RS-1")
	waitFirst(older)
	// Visibility lists the first incident before the second opens.
	waitVisible(t, c, older, asset)

	lister.armed.Store(true)
	newer, at := start("INC-RS-2")
	held := waitFirst(newer).Sub(at)
	if held > 2500*time.Millisecond {
		t.Errorf("the first step started %s after the incident, want at most the local lookup's second (and slack)", held.Round(time.Millisecond))
	}
	if lister.armed.Load() {
		t.Fatal("the slow answer was never asked for")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := testplatform.Status(c, newer)
		if err == nil && len(st.Related) == 1 && st.Related[0].WorkflowID == older && st.Related[0].How == workflows.RelatedFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not link %s after the slow lookup: related %+v (err %v)", newer, older, st.Related, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("first step %s after the start; the link found by the activity", held.Round(time.Millisecond))
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
