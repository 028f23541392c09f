//go:build integration

package intake

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/workflows"
)

// BenchmarkSignalCall compares, on running incidents, the forwarder's two
// ways of delivering alerts: SignalWithStartWorkflow (start input and
// search attributes sent, and checked by the server, on every call) and
// SignalWorkflow. Both run in alternating chunks of 100 calls (8 at a
// time, 20 alerts per call, 20 incidents) in the same run; it reports the
// processor time per call of this process and of its children (the dev
// server) for each, and their ratio.
//
//	go test -tags integration -run '^$' -bench '^BenchmarkSignalCall$' -benchtime 2000x ./internal/intake/
func BenchmarkSignalCall(b *testing.B) {
	c, tq := temporalSetup(b)
	sig := forward.TemporalSignaler{Client: c}
	nonce := time.Now().UnixNano()
	const incidents, perCall, chunk, conc = 20, 20, 100, 8
	key := func(i int) string { return fmt.Sprintf("sig%d-%d", nonce, i%incidents) }
	alerts := func(i int) workflows.AlertSignalInput {
		in := workflows.AlertSignalInput{Alerts: make([]workflows.Alert, perCall)}
		for j := range in.Alerts {
			in.Alerts[j] = workflows.Alert{ID: fmt.Sprintf("%d-%d-%d", nonce, i, j), Asset: key(i), Severity: "high", Source: "bench",
				Rule: "R", Summary: "summary of the alert", Labels: map[string]string{"n": strconv.Itoa(j)}, ReceivedAt: time.Now().UTC()}
		}
		return in
	}
	start := func(i int) forward.Start {
		k := key(i)
		return forward.Start{WorkflowID: workflows.IncidentWorkflowID(k), TaskQueue: tq, Signal: alerts(i),
			Input: workflows.IncidentInput{IncidentID: "INC-" + k, Key: k, Asset: k, Severity: "high", Playbook: "bench", OpenedBy: "am/k1"}}
	}
	for i := range incidents {
		if err := sig.SignalWithStart(context.Background(), start(i)); err != nil {
			b.Fatal(err)
		}
	}
	run := func(n int, withStart bool) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					var err error
					if withStart {
						err = sig.SignalWithStart(context.Background(), start(i))
					} else {
						var found bool
						found, err = sig.Signal(context.Background(), workflows.IncidentWorkflowID(key(i)), alerts(i))
						if err == nil && !found {
							err = fmt.Errorf("incident %s not running", key(i))
						}
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	var withStart, plain testenv.CPUUse
	calls := 0
	b.ResetTimer()
	for calls < b.N {
		n := min(chunk, b.N-calls)
		t0 := testenv.CPUNow()
		run(n, true)
		t1 := testenv.CPUNow()
		run(n, false)
		t2 := testenv.CPUNow()
		withStart = withStart.Add(t1.Sub(t0))
		plain = plain.Add(t2.Sub(t1))
		calls += n
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(calls) }
	b.ReportMetric(us(withStart.Self), "sws-cpu-us/call-self")
	b.ReportMetric(us(withStart.Children), "sws-cpu-us/call-server")
	b.ReportMetric(us(plain.Self), "signal-cpu-us/call-self")
	b.ReportMetric(us(plain.Children), "signal-cpu-us/call-server")
	b.ReportMetric(float64(plain.Total())/float64(withStart.Total()), "signal/sws-cpu")
}
