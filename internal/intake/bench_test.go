//go:build integration

package intake

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/workflows"
)

// BenchmarkIntakeStorm posts b.N single-alert requests for 50 assets from
// 32 concurrent clients through the real handler, spool (fsync, group
// commit) and forwarder into the dev server, and reports the accepted
// alerts/s, the p99 handler latency and the end-to-end delivered alerts/s,
// next to the raw SignalWithStartWorkflow rate measured in the same run
// (the same 32-way concurrency, one alert per call).
//
//	go test -run '^$' -bench IntakeStorm -benchtime 5000x ./internal/intake/
func BenchmarkIntakeStorm(b *testing.B) {
	c, tq := temporalSetup(b)
	const clients, assets = 32, 50
	nonce := time.Now().UnixNano()

	// Raw SignalWithStart rate.
	raw := forward.TemporalSignaler{Client: c}
	const rawCalls = 1000
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= rawCalls {
					return
				}
				key := fmt.Sprintf("raw%d-%d", nonce, i%assets)
				a := workflows.Alert{ID: fmt.Sprint(i), Asset: key, Severity: "high"}
				err := raw.SignalWithStart(context.Background(), forward.Start{
					WorkflowID: workflows.IncidentWorkflowID(key), TaskQueue: tq,
					Signal: workflows.AlertSignalInput{Alerts: []workflows.Alert{a}},
					Input:  workflows.IncidentInput{Key: key, Asset: key, Severity: "high", Playbook: "bench"},
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rawRate := rawCalls / time.Since(start).Seconds()

	e := &env{t: b, dir: b.TempDir(), events: &eventLog{}}
	e.open()
	defer e.close()
	// Time the handler itself, server side.
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	timed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		e.h.ServeHTTP(w, r)
		d := time.Since(t0)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	})
	mux := http.NewServeMux()
	mux.Handle(Pattern, timed)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	fw := forward.New(e.sp, forward.TemporalSignaler{Client: c}, forward.Options{TaskQueue: tq})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { fw.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	bodies := make([][]byte, assets)
	for i := range bodies {
		bodies[i] = genericAlert(fmt.Sprintf("storm%d-%d", nonce, i), i)
	}
	next.Store(0)
	b.ResetTimer()
	start = time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				r := postTo(b, hc, srv.URL, "generic", bodies[i%assets], bearer(genericKey)...)
				if r.status != http.StatusAccepted {
					b.Errorf("post: %d %v", r.status, r.body)
					return
				}
			}
		})
	}
	wg.Wait()
	acceptDur := time.Since(start)
	for e.sp.Stats().Pending > 0 {
		if time.Since(start) > 5*time.Minute {
			b.Fatal("spool not drained in 5 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	deliverDur := time.Since(start)
	b.StopTimer()

	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	accepted := float64(b.N) / acceptDur.Seconds()
	delivered := float64(b.N) / deliverDur.Seconds()
	st := e.sp.Stats()
	b.ReportMetric(accepted, "accepted/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-handler-ms")
	b.ReportMetric(delivered, "delivered/s")
	b.ReportMetric(rawRate, "raw-sws/s")
	b.ReportMetric(accepted/rawRate, "accepted/raw")
	b.ReportMetric(delivered/rawRate, "delivered/raw")
	b.ReportMetric(float64(b.N)/float64(max(st.Commits, 1)), "alerts/fsync")
	b.Logf("N=%d accepted %.0f/s p99 %v delivered %.0f/s raw SignalWithStart %.0f/s; signals %d, fsync groups %d",
		b.N, accepted, p99, delivered, rawRate, fw.Stats().Calls, st.Commits)
}
