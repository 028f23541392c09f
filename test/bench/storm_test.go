//go:build integration

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// stormParams set the alert storm.
type stormParams struct {
	// Alerts is how many alerts are posted, one per request; alert j is
	// about asset j mod Assets.
	Alerts int
	// Assets is how many containers the alerts are about; the lab
	// inventory holds max(Assets, 100).
	Assets int
	// Clients is how many detectors post concurrently.
	Clients int
	// Timeout bounds the posting and each wait after it.
	Timeout time.Duration
	// Target is the Temporal server (nil: testenv.Current).
	Target testenv.Target
}

// stormResult is what one storm measured.
type stormResult struct {
	// AcceptDur is from the first POST to the last 202.
	AcceptDur time.Duration
	// E2EDur is from the first POST until the incidents counted every alert.
	E2EDur time.Duration
	// DrainDur is from the first POST until the forwarder had delivered
	// every alert to Temporal (the spool was empty).
	DrainDur time.Duration
	// Queries is how many status queries counting the alerts took, and
	// SlowestQuery the longest of them (a query held on a worker's sticky
	// queue waits up to its schedule-to-start timeout, 5 s, before the
	// server sends it to the task queue).
	Queries      int
	SlowestQuery time.Duration
	// RoundTrip and Handler are sorted POST latencies, client and server side.
	RoundTrip, Handler []time.Duration
	// Incidents is how many incident workflows visibility lists on the
	// rig's task queue.
	Incidents int
	// Received is the sum of AlertsReceived over the incidents.
	Received int
	// Signals is how many SignalWithStart calls the forwarder made.
	Signals int64
	// NoopDur is how long the same clients took to post the same bodies
	// to a handler that answers 202 at once (the HTTP and client share of
	// accepting, measured in the same run).
	NoopDur time.Duration
	// CPU is the processor time spent from the first POST until the
	// incidents counted every alert: by this process (detectors, intake,
	// forwarder, worker, lab), by its child processes (the Temporal
	// server) and by PostgreSQL (the cluster's store). On a shared machine the rates follow the share of the
	// processors the run gets; the time per alert does not.
	CPU testenv.CPUUse
	// Floor is the floor pass of the same run (measureFloor): Temporal
	// alone putting the same alerts into workflows that only count them.
	Floor floorResult
}

// BenchmarkAlertStorm posts 10,000 alerts about 100 containers (one alert
// per request, 32 concurrent detectors) through the real intake (API-key
// detector, spool, forwarder) into the real incident workflow, on the dev
// server and on the real cluster (sub-benchmarks dev and cluster; with
// IRU_BENCH_STORM_ALERTS another count), running a playbook that only waits for an approval
// (testdata/playbooks/capacity.yaml; testdata/storm-rules.yaml routes every
// alert to it). It reports the accepted alerts/s (and the same posts' rate
// to a handler that only answers 202), the alerts/s into incidents (and
// the floor's, the rate that the processor time of Temporal alone putting
// the same alerts into workflows that only count them allows, measured in
// the same run: measureFloor, floorResult.Limit), the p99 POST latency
// (client side and handler side), the incidents created (must be exactly
// 100, counted with visibility) and the alerts lost (must be 0: the sum of
// AlertsReceived over the incidents is 10,000). Two diagnostics:
// IRU_BENCH_SHAPE=1 logs the incidents' (and the floor's workflows')
// history events by type, and IRU_BENCH_STORM_PROFILE=file writes a CPU
// profile of the storm's measured part.
//
//	go test -run '^$' -bench AlertStorm -benchtime 1x ./test/bench/
//	IRU_BENCH_STORM_ALERTS=2000 go test -run '^$' -bench 'AlertStorm/(dev|cluster)' -benchtime 1x ./test/bench/
//	IRU_BENCH_SHAPE=1 IRU_BENCH_STORM_PROFILE=/tmp/storm.pprof go test -tags integration -run '^$' -bench 'AlertStorm/cluster' -benchtime 1x ./test/bench/
func BenchmarkAlertStorm(b *testing.B) {
	alerts := 10000
	if v := os.Getenv(stormAlertsVar); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < inventorySize {
			b.Fatalf("%s=%q: want an integer of at least %d", stormAlertsVar, v, inventorySize)
		}
		alerts = n
	}
	for _, target := range testenv.Targets {
		b.Run(target, func(b *testing.B) {
			p := stormParams{Alerts: alerts, Assets: inventorySize, Clients: 32, Timeout: 5 * time.Minute, Target: testenv.ByName(b, target)}
			for range b.N {
				reportStorm(b, target, p, measureAlertStorm(b, p))
			}
		})
	}
}

// BenchmarkAlertStormLarge is [BenchmarkAlertStorm] ten times larger:
// 100,000 alerts about 1,000 containers (a generated inventory of 1,000),
// 64 concurrent detectors; it must still open exactly 1,000 incidents and
// lose none. IRU_BENCH_STORM_LARGE_ALERTS sets another alert count (at
// least 1,000).
//
//	go test -tags integration -run '^$' -bench 'AlertStormLarge/dev' -benchtime 1x -timeout 60m ./test/bench/
func BenchmarkAlertStormLarge(b *testing.B) {
	alerts, assets := 100000, 1000
	if v := os.Getenv("IRU_BENCH_STORM_LARGE_ALERTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < assets {
			b.Fatalf("IRU_BENCH_STORM_LARGE_ALERTS=%q: want an integer of at least %d", v, assets)
		}
		alerts = n
	}
	for _, target := range testenv.Targets {
		b.Run(target, func(b *testing.B) {
			p := stormParams{Alerts: alerts, Assets: assets, Clients: 64, Timeout: 30 * time.Minute, Target: testenv.ByName(b, target)}
			for range b.N {
				reportStorm(b, target, p, measureAlertStorm(b, p))
			}
		})
	}
}

// reportStorm checks one storm and reports its figures, the accepted rate
// also as a ratio to the no-op handler's rate of the same run.
func reportStorm(b *testing.B, target string, p stormParams, res stormResult) {
	b.Helper()
	checkStorm(b, p, res)
	accepted := float64(p.Alerts) / res.AcceptDur.Seconds()
	e2e := float64(p.Alerts) / res.E2EDur.Seconds()
	noop := float64(p.Alerts) / res.NoopDur.Seconds()
	b.ReportMetric(accepted, "accepted/s")
	b.ReportMetric(e2e, "in-incidents/s")
	b.ReportMetric(noop, "noop-accepted/s")
	b.ReportMetric(accepted/noop, "accepted/noop")
	floor := res.Floor.Limit(p.Alerts)
	b.ReportMetric(floor, "floor-in-incidents/s")
	b.ReportMetric(e2e/floor, "in-incidents/floor")
	b.ReportMetric(ms(percentile(res.RoundTrip, 99)), "p99-post-ms")
	b.ReportMetric(ms(percentile(res.Handler, 99)), "p99-handler-ms")
	b.ReportMetric(float64(res.Incidents), "incidents")
	b.ReportMetric(float64(p.Alerts-res.Received), "alerts-lost")
	b.ReportMetric(float64(res.Signals), "signals")
	perAlert := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(p.Alerts) }
	b.ReportMetric(perAlert(res.CPU.Self), "cpu-us/alert-test")
	b.ReportMetric(perAlert(res.CPU.Children), "cpu-us/alert-server")
	b.ReportMetric(perAlert(res.CPU.Database), "cpu-us/alert-database")
	b.ReportMetric(res.CPU.Total().Seconds()/res.E2EDur.Seconds(), "cores-used")
	b.Logf("| alert storm (%s) | %d alerts, %d assets, %d clients | accepted %.0f/s (no-op handler %.0f/s, %.2fx), in incidents %.0f/s (floor %.0f/s, %.2fx; its CPU per alert: this process %.0f µs, Temporal server %.0f µs, PostgreSQL %.0f µs; its pass took %s) | p99 POST %s, handler %s | incidents %d | lost %d | signals %d | CPU per alert: this process %.0f µs, Temporal server %.0f µs, PostgreSQL %.0f µs (%.2f cores in use) | accepted at %s, delivered at %s, counted at %s (%d queries, the slowest %s) |",
		target, p.Alerts, p.Assets, p.Clients, accepted, noop, accepted/noop, e2e, floor, e2e/floor,
		perAlert(res.Floor.CPU.Self), perAlert(res.Floor.CPU.Children), perAlert(res.Floor.CPU.Database), res.Floor.Dur.Round(time.Millisecond), percentile(res.RoundTrip, 99).Round(time.Microsecond),
		percentile(res.Handler, 99).Round(time.Microsecond), res.Incidents, p.Alerts-res.Received, res.Signals,
		perAlert(res.CPU.Self), perAlert(res.CPU.Children), perAlert(res.CPU.Database), res.CPU.Total().Seconds()/res.E2EDur.Seconds(),
		res.AcceptDur.Round(time.Millisecond), res.DrainDur.Round(time.Millisecond), res.E2EDur.Round(time.Millisecond), res.Queries, res.SlowestQuery.Round(time.Millisecond))
}

// stormProfileVar names a file for a CPU profile of this process over
// each storm's measured part only (from the first POST until the
// incidents counted every alert), without the rig's start or the floor
// pass; not together with -cpuprofile.
const stormProfileVar = "IRU_BENCH_STORM_PROFILE"

// profileCPU starts a CPU profile into path and returns what stops it.
func profileCPU(tb testing.TB, path string) (stop func()) {
	tb.Helper()
	out, err := os.Create(path)
	if err != nil {
		tb.Fatalf("%s: %v", stormProfileVar, err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		tb.Fatalf("%s: start the CPU profile: %v", stormProfileVar, err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := out.Close(); err != nil {
			tb.Errorf("%s: %v", stormProfileVar, err)
		}
	}
}

// stormAlertsVar sets how many alerts BenchmarkAlertStorm posts (default
// 10,000; a shorter run for a quick comparison of the targets).
const stormAlertsVar = "IRU_BENCH_STORM_ALERTS"

// checkStorm fails unless every asset got exactly one incident and every
// alert reached one.
func checkStorm(tb testing.TB, p stormParams, res stormResult) {
	tb.Helper()
	if res.Incidents != p.Assets {
		tb.Errorf("incidents = %d, want %d", res.Incidents, p.Assets)
	}
	if res.Received != p.Alerts {
		tb.Errorf("alerts received by the incidents = %d, want %d (lost %d)", res.Received, p.Alerts, p.Alerts-res.Received)
	}
}

// measureAlertStorm runs one storm on a fresh rig.
func measureAlertStorm(tb testing.TB, p stormParams) stormResult {
	tb.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "playbooks"))
	if err != nil {
		tb.Fatal(err)
	}
	r := newRig(tb, rigOptions{PlaybooksDir: dir, Target: p.Target, Containers: p.Assets})
	ir := r.openIntake(tb, filepath.Join("testdata", "storm-rules.yaml"))
	bodies := make([][]byte, p.Alerts)
	for j := range bodies {
		a := genericAlert{Source: "storm", Rule: "ContainerShell", Severity: "high", Asset: asset(j % p.Assets),
			Summary: fmt.Sprintf("alert %d", j), Labels: map[string]string{"n": fmt.Sprint(j)},
			ObservedAt: time.Now().UTC().Format(time.RFC3339Nano)}
		if bodies[j], err = json.Marshal(a); err != nil {
			tb.Fatal(err)
		}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: p.Clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var res stormResult
	noop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	_, res.NoopDur = postAll(tb, hc, noop.URL, bodies, p.Clients, nil)
	noop.Close()
	if tb.Failed() {
		tb.FailNow()
	}
	res.Floor = measureFloor(tb, r, p)

	// The storm's incidents, terminated however it ends (a storm's
	// incident left running would take the next storm's alerts on its key
	// to a task queue no worker polls).
	ids := make([]string, p.Assets)
	for i := range ids {
		ids[i] = workflows.IncidentWorkflowID("capacity:" + asset(i))
	}
	defer r.terminate(tb, "benchmark done", ids)

	rtt := make([][]time.Duration, p.Clients)
	stopProfile := func() {}
	if path := os.Getenv(stormProfileVar); path != "" {
		stopProfile = sync.OnceFunc(profileCPU(tb, path))
		defer stopProfile() // a storm that fails midway
	}
	cpu0 := testenv.CPUNow()
	start, acceptDur := postAll(tb, hc, ir.URL, bodies, p.Clients, rtt)
	res.AcceptDur = acceptDur
	if tb.Failed() {
		tb.FailNow()
	}
	res.RoundTrip = slices.Concat(rtt...)
	slices.Sort(res.RoundTrip)
	res.Handler = ir.latencies()
	ir.waitDrained(tb, p.Timeout)
	res.DrainDur = time.Since(start)
	res.Signals = ir.Service.Forwarder.Stats().Calls

	// Count what reached the incidents: every asset's incident must list
	// all of its alerts.
	deadline := time.Now().Add(p.Timeout)
	want := make([]int, p.Assets) // alerts each incident must count
	for j := range p.Alerts {
		want[j%p.Assets]++
	}
	got := make([]int, p.Assets)
	for {
		c := r.alertsReceived(ids, want, got)
		res.Received, res.Queries, res.SlowestQuery = c.Received, res.Queries+c.Queries, max(res.SlowestQuery, c.Slowest)
		if res.Received >= p.Alerts || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.E2EDur = time.Since(start)
	res.CPU = testenv.CPUNow().Sub(cpu0)
	stopProfile()
	res.Incidents = r.countIncidents(tb, p.Assets, p.Timeout)
	if os.Getenv(shapeVar) != "" {
		r.logHistoryShape(tb, "storm", ids)
	}
	return res
}

// postAll posts every body once from clients concurrent clients and
// returns when it started and how long it took until the last answer;
// with rtt (one slice per client) it records each POST's round trip.
func postAll(tb testing.TB, hc *http.Client, url string, bodies [][]byte, clients int, rtt [][]time.Duration) (time.Time, time.Duration) {
	tb.Helper()
	start := time.Now()
	inParallel(clients, len(bodies), func(c, j int) bool {
		t0 := time.Now()
		if err := post(hc, url, bodies[j]); err != nil {
			tb.Errorf("alert %d: %v", j, err)
			return false
		}
		if rtt != nil {
			rtt[c] = append(rtt[c], time.Since(t0))
		}
		return true
	})
	return start, time.Since(start)
}

// inParallel runs do(worker, k) for every k in [0, n) from workers
// goroutines (worker is the goroutine's index), each taking the next k
// as it finishes one, and returns when they are done. A goroutine whose
// do returns false takes no more.
func inParallel(workers, n int, do func(worker, k int) bool) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= n || !do(w, k) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// queryRound is one round of alertsReceived's status queries.
type queryRound struct {
	// Received is the sum of AlertsReceived over the incidents.
	Received int
	// Queries is how many incidents were queried, and Slowest the longest
	// of those queries.
	Queries int
	Slowest time.Duration
}

// alertsReceived sums AlertsReceived over the incidents ids (a missing
// incident counts 0). got[i] is incident i's count from the previous call;
// only incidents still short of want[i] are queried again (16 at a time).
func (r *rig) alertsReceived(ids []string, want, got []int) queryRound {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var c queryRound
	took := make([]time.Duration, len(ids))
	for i, id := range ids {
		if got[i] >= want[i] {
			continue
		}
		c.Queries++
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			st, err := testplatform.Status(r.Client, id)
			took[i] = time.Since(start)
			if err == nil {
				got[i] = st.AlertsReceived
			}
		})
	}
	wg.Wait()
	for i, n := range got {
		c.Received += n
		c.Slowest = max(c.Slowest, took[i])
	}
	return c
}

// countIncidents counts the incident workflows on the rig's task queue
// with visibility, waiting up to timeout for it to list want of them
// (visibility is eventually consistent); it returns what it counted last.
func (r *rig) countIncidents(tb testing.TB, want int, timeout time.Duration) int {
	tb.Helper()
	q := fmt.Sprintf("WorkflowType = '%s' AND TaskQueue = '%s'", workflows.IncidentWorkflow, r.TaskQueue)
	deadline := time.Now().Add(timeout)
	for {
		seen := map[string]bool{}
		var token []byte
		for {
			resp, err := r.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token})
			if err != nil {
				tb.Fatalf("list incidents: %v", err)
			}
			for _, e := range resp.Executions {
				seen[e.Execution.WorkflowId] = true
			}
			if token = resp.NextPageToken; len(token) == 0 {
				break
			}
		}
		if len(seen) >= want || time.Now().After(deadline) {
			return len(seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
