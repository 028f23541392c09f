//go:build integration

package intake

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/internal/freeport"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// countQuery returns a counting incident's [alertCount].
const countQuery = "alert-count"

// alertCount is what the counting incident received through signals.
type alertCount struct {
	Total int
	IDs   []string
}

// countingIncident stands in for the incident workflow: registered under
// workflows.IncidentWorkflow on a test task queue, it counts the alerts
// its signals carry.
func countingIncident(ctx workflow.Context, in workflows.IncidentInput) error {
	var st alertCount
	if err := workflow.SetQueryHandler(ctx, countQuery, func() (alertCount, error) { return st, nil }); err != nil {
		return err
	}
	ch := workflow.GetSignalChannel(ctx, workflows.AlertSignal)
	for {
		var s workflows.AlertSignalInput
		ch.Receive(ctx, &s)
		for _, a := range s.Alerts {
			st.Total++
			st.IDs = append(st.IDs, a.ID)
		}
	}
}

type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}

var _ sdklog.Logger = quiet{}

// temporalSetup starts a counting worker on a fresh task queue and returns
// the client and the queue.
func temporalSetup(tb testing.TB) (client.Client, string) {
	tb.Helper()
	c := testenv.Client(tb, client.Options{Logger: quiet{}})
	tq := fmt.Sprintf("intake-test-%d", time.Now().UnixNano())
	testenv.Worker(tb, c, tq, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(countingIncident, workflow.RegisterOptions{Name: workflows.IncidentWorkflow})
	})
	return c, tq
}

func queryCount(tb testing.TB, c client.Client, workflowID string) alertCount {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(ctx, workflowID, "", countQuery)
	if err != nil {
		tb.Fatalf("query %s: %v", workflowID, err)
	}
	var st alertCount
	if err := v.Get(&st); err != nil {
		tb.Fatal(err)
	}
	return st
}

func postIDs(t testing.TB, r result) []string {
	raw, _ := r.body["ids"].([]any)
	out := make([]string, len(raw))
	for i, v := range raw {
		out[i], _ = v.(string)
	}
	return out
}

// TestTemporalStormOneIncidentPerKey: 1,000 alerts for 10 assets posted
// concurrently open exactly 10 incidents, and every alert arrives once.
func TestTemporalStormOneIncidentPerKey(t *testing.T) {
	c, tq := temporalSetup(t)
	e := newEnv(t, spool.Options{})
	e.forward(forward.TemporalSignaler{Client: c}, forward.Options{TaskQueue: tq})
	prefix := fmt.Sprintf("storm%d-", time.Now().UnixNano())

	const total, assets, senders = 1000, 10, 20
	var mu sync.Mutex
	sent := map[string][]string{} // workflow id -> alert ids
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := s; i < total; i += senders {
				asset := fmt.Sprintf("%s%d", prefix, i%assets)
				r := e.post("generic", genericAlert(asset, i), bearer(genericKey)...)
				if r.status != http.StatusAccepted {
					t.Errorf("post %d: %d %v", i, r.status, r.body)
					return
				}
				mu.Lock()
				id := workflows.IncidentWorkflowID(workflows.UnknownAssetPlaybook + ":" + asset)
				sent[id] = append(sent[id], postIDs(t, r)...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	eventually(t, "spool drained", 60*time.Second, func() bool { return e.sp.Stats().Pending == 0 })

	counted := 0
	for id, ids := range sent {
		var st alertCount
		eventually(t, "alerts counted in "+id, 30*time.Second, func() bool {
			st = queryCount(t, c, id)
			return st.Total >= len(ids)
		})
		if st.Total != len(ids) {
			t.Errorf("%s counted %d alerts, want %d", id, st.Total, len(ids))
		}
		if !sameSet(st.IDs, ids) {
			t.Errorf("%s received other alerts than were sent", id)
		}
		counted += st.Total
	}
	if len(sent) != assets || counted != total {
		t.Fatalf("%d incidents counted %d alerts, want %d and %d", len(sent), counted, assets, total)
	}
	// Exactly 10 workflows ran on the queue (visibility is eventually
	// consistent: wait for 10, then make sure there are no more).
	var n int
	eventually(t, "visibility", 30*time.Second, func() bool {
		n = countWorkflows(t, c, tq)
		return n >= assets
	})
	if n != assets {
		t.Fatalf("%d workflows on the queue, want %d", n, assets)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func countWorkflows(tb testing.TB, c client.Client, tq string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: fmt.Sprintf("TaskQueue = %q", tq)})
	if err != nil {
		tb.Fatalf("count workflows: %v", err)
	}
	return int(resp.GetCount())
}

// TestTemporalOutageThenDelivery: with Temporal unreachable the intake
// keeps accepting; pointed at the real server the alerts arrive in order.
func TestTemporalOutageThenDelivery(t *testing.T) {
	c, tq := temporalSetup(t)
	port, err := freeport.TCP("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := client.NewLazyClient(client.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", port), Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	e := newEnv(t, spool.Options{})
	fopts := forward.Options{TaskQueue: tq, CallTimeout: 500 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	fw := forward.New(e.sp, forward.TemporalSignaler{Client: dead}, fopts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { fw.Run(ctx); close(done) }()

	asset := fmt.Sprintf("outage%d", time.Now().UnixNano())
	var want []string
	for i := range 60 {
		r := e.post("generic", genericAlert(asset, i), bearer(genericKey)...)
		if r.status != http.StatusAccepted {
			t.Fatalf("post %d during the outage: %d %v", i, r.status, r.body)
		}
		want = append(want, postIDs(t, r)...)
	}
	eventually(t, "failed attempts", 10*time.Second, func() bool { return fw.Stats().Failures >= 2 })
	cancel()
	<-done
	if st := fw.Stats(); st.Delivered != 0 {
		t.Fatalf("delivered %d to an unreachable server", st.Delivered)
	}
	if st := e.sp.Stats(); st.Pending != 60 {
		t.Fatalf("pending %d, want 60", st.Pending)
	}

	e.forward(forward.TemporalSignaler{Client: c}, fopts)
	eventually(t, "spool drained", 30*time.Second, func() bool { return e.sp.Stats().Pending == 0 })
	id := workflows.IncidentWorkflowID(workflows.UnknownAssetPlaybook + ":" + asset)
	st := queryCount(t, c, id)
	if !slices.Equal(st.IDs, want) {
		t.Fatalf("received %d alerts %v…, want the %d sent, in order", st.Total, st.IDs[:min(3, len(st.IDs))], len(want))
	}
}

// TestTemporalRestartLosesNothing: closing and reopening the intake (spool)
// mid-stream loses no alert and delivers none twice.
func TestTemporalRestartLosesNothing(t *testing.T) {
	c, tq := temporalSetup(t)
	e := newEnv(t, spool.Options{})
	fopts := forward.Options{TaskQueue: tq}
	stop := e.forward(forward.TemporalSignaler{Client: c}, fopts)
	prefix := fmt.Sprintf("restart%d-", time.Now().UnixNano())
	sent := map[string][]string{}
	var mu sync.Mutex
	postRange := func(from, to int) {
		var wg sync.WaitGroup
		for s := range 5 {
			wg.Go(func() {
				for i := from + s; i < to; i += 5 {
					asset := fmt.Sprintf("%s%d", prefix, i%3)
					r := e.post("generic", genericAlert(asset, i), bearer(genericKey)...)
					if r.status != http.StatusAccepted {
						t.Errorf("post %d: %d", i, r.status)
						return
					}
					mu.Lock()
					id := workflows.IncidentWorkflowID(workflows.UnknownAssetPlaybook + ":" + asset)
					sent[id] = append(sent[id], postIDs(t, r)...)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	postRange(0, 100)
	stop() // graceful: calls in flight finish and are acknowledged
	postRange(100, 130)
	before := e.sp.Stats().Pending
	if before < 30 {
		t.Fatalf("pending before restart %d, want at least 30", before)
	}
	e.close()
	e.open()
	if after := e.sp.Stats().Pending; after != before {
		t.Fatalf("pending after reopen %d, want %d", after, before)
	}
	e.forward(forward.TemporalSignaler{Client: c}, fopts)
	postRange(130, 200)
	eventually(t, "spool drained", 30*time.Second, func() bool { return e.sp.Stats().Pending == 0 })
	total := 0
	for id, ids := range sent {
		var st alertCount
		eventually(t, "counted", 20*time.Second, func() bool {
			st = queryCount(t, c, id)
			return st.Total >= len(ids)
		})
		if st.Total != len(ids) || !sameSet(st.IDs, ids) {
			t.Errorf("%s: %d received, %d sent (duplicates or losses)", id, st.Total, len(ids))
		}
		total += st.Total
	}
	if total != 200 {
		t.Fatalf("received %d alerts, want 200", total)
	}
}
