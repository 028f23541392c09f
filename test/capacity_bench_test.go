//go:build integration

package test

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// rssBytes is the resident set size of this process.
func rssBytes(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// BenchmarkCapacity opens N incidents (IRU_CAPACITY_N, default 1000) that
// all wait for an approval on one in-process worker (the real worker host:
// codec, ledger, evidence, lab clients), and reports the process's RSS
// (worker, lab and client together) with all of them open, and the time
// for an approval to take effect, in two patterns over two disjoint
// samples of the backlog (IRU_CAPACITY_APPROVALS each, default 100):
//
//   - paced (the goal's figure: approve-p50-ms, approve-p99-ms): approvals
//     sent at IRU_CAPACITY_RATE a second (default 2), each on its own
//     schedule whether the previous one took effect or not, as a team of
//     responders working through the backlog would;
//   - burst (burst-p50-ms, burst-p99-ms): every approval of the sample sent
//     at once, which measures the worker's queueing as much as one
//     approval's path.
//
// An approval's time to effect runs from the moment it is sent (the
// statement's signing and the Update call, as the API server makes them)
// to the moment the server recorded the completion of the approved step's
// action (its ActivityTaskCompleted event's time), read from the history
// afterwards: nothing polls the incidents while the approvals run.
// update-p99-ms is the Update call alone (until its result came back).
//
// IRU_CAPACITY_WAIT_S bounds the wait for each incident to reach its
// approval, in seconds (default 1800).
//
// IRU_CAPACITY_POLLERS sets the worker's workflow and activity task
// pollers (the SDK's default: 2 each).
//
// IRU_CAPACITY_HEAP_PROFILE names a file for a heap profile taken with
// every incident waiting (what the waiting incidents hold:
// go tool pprof -sample_index inuse_space), and the goroutines then
// (grouped by stack, counted) beside it, in that name with ".goroutines".
//
// IRU_CAPACITY_PER_ASSET sets how many incidents share an asset (default
// 5, as a few playbooks' incidents on each of many containers). Incidents
// on one asset link to each other (up to 50 links each) and tell each
// other of the link (a signal each): IRU_CAPACITY_PER_ASSET=N puts the
// whole backlog on one asset, the worst case for the links.
//
// IRU_CAPACITY_CACHE sets the worker's sticky workflow cache (the SDK's
// default: 10,000 workflows): below N, the waiting incidents it evicts cost
// no memory, and an approval of one of them replays its history first.
//
// It runs on both Temporal targets (sub-benchmarks dev and cluster, one
// after the other in this process: the second's RSS is measured from its
// own idle start).
//
//	IRU_CAPACITY_N=1000 go test -tags integration -run '^$' -bench Capacity -benchtime 1x -timeout 60m ./test/
func BenchmarkCapacity(b *testing.B) {
	for _, target := range testenv.Targets {
		b.Run(target, func(b *testing.B) { benchmarkCapacity(b, testenv.ByName(b, target)) })
	}
}

// benchmarkCapacity is BenchmarkCapacity on one target.
func benchmarkCapacity(b *testing.B, target testenv.Target) {
	n := envInt(b, "IRU_CAPACITY_N", 1000)
	k := envInt(b, "IRU_CAPACITY_APPROVALS", 100)
	rate := envInt(b, "IRU_CAPACITY_RATE", 2)
	wait := time.Duration(envInt(b, "IRU_CAPACITY_WAIT_S", 1800)) * time.Second
	perAsset := envInt(b, "IRU_CAPACITY_PER_ASSET", 5)
	if perAsset < 1 {
		b.Fatalf("IRU_CAPACITY_PER_ASSET=%d: want at least 1", perAsset)
	}
	if n < 2*k {
		b.Fatalf("IRU_CAPACITY_N=%d: want at least twice IRU_CAPACITY_APPROVALS (%d)", n, k)
	}
	if v := os.Getenv("IRU_CAPACITY_CACHE"); v != "" {
		// Before the worker starts: the SDK's cache is one per process.
		worker.SetStickyWorkflowCacheSize(envInt(b, "IRU_CAPACITY_CACHE", 0))
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "capacity"))
	if err != nil {
		b.Fatal(err)
	}
	// The platform's worker as testplatform starts it, or (dev server
	// only) with the pollers IRU_CAPACITY_POLLERS asks for.
	pollers := os.Getenv("IRU_CAPACITY_POLLERS") != ""
	p := testplatform.New(b, testplatform.Options{Env: []string{"IRU_PLAYBOOKS_DIR=" + dir}, NoWorker: pollers, Target: target})
	if pollers {
		if p.Target.Name() != "dev" {
			b.Fatal("IRU_CAPACITY_POLLERS: on the dev server only")
		}
		np := envInt(b, "IRU_CAPACITY_POLLERS", 0)
		testenv.StartWorker(b, func() worker.Worker {
			w := worker.New(p.Client, p.TaskQueue, worker.Options{MaxConcurrentWorkflowTaskPollers: np, MaxConcurrentActivityTaskPollers: np})
			p.Host.Register(w, p.Client)
			return w
		})
	}
	b.Cleanup(func() { endIncidents(b, p.Client, p.TaskQueue, b.N, n) })
	// Idle: with what an earlier call of the benchmark in this process
	// left (its platform stopped, its memory freed) returned to the system,
	// so rss-growth is this call's alone.
	debug.FreeOSMemory()
	idle := rssBytes(b)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for j := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				key := capacityKey(p.TaskQueue, i, j)
				in := workflows.IncidentInput{IncidentID: fmt.Sprintf("CAP-%d-%d", i, j), Key: key, Asset: fmt.Sprintf("capacity-%d", j/perAsset), Severity: "medium", Playbook: "capacity", OpenedBy: "system:bench"}
				// An incident of the id already running is an error, not
				// a run to wait on (the SDK's default returns it).
				opts := client.StartWorkflowOptions{ID: workflows.IncidentWorkflowID(key), TaskQueue: p.TaskQueue, WorkflowExecutionErrorWhenAlreadyStarted: true}
				if _, err := p.Client.ExecuteWorkflow(context.Background(), opts, workflows.IncidentWorkflow, in); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		// Every incident, not only the last: on a loaded machine an
		// earlier one's first workflow task may time out and run again
		// after the last one waits (an approval sent to it then is
		// refused: not started). One status query each; those waiting
		// answer at once.
		for j := range n {
			id := workflows.IncidentWorkflowID(capacityKey(p.TaskQueue, i, j))
			testplatform.WaitStep(b, p.Client, id, "gate", workflows.StepWaitingApproval, wait)
		}
		opened := time.Since(start)
		runtime.GC()
		rss := rssBytes(b)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		goroutines := runtime.NumGoroutine()
		if path := os.Getenv("IRU_CAPACITY_HEAP_PROFILE"); path != "" {
			writeProfile(b, "heap", path, 0)
			writeProfile(b, "goroutine", path+".goroutines", 1)
		}
		// Settled: as a worker whose incidents have waited through a few
		// collections (the runtime forces one every two minutes at the
		// latest). Each collection halves the stacks of parked goroutines
		// that use less than a quarter of theirs, and the scavenger
		// returns the freed pages to the system in its own time;
		// FreeOSMemory returns them now.
		for range 4 {
			runtime.GC()
		}
		debug.FreeOSMemory()
		settled := rssBytes(b)
		var sms runtime.MemStats
		runtime.ReadMemStats(&sms)

		paced, pacedUpdate := approveSample(b, p, sample(p.TaskQueue, i, n, k, 0), time.Second/time.Duration(rate))
		burst, burstUpdate := approveSample(b, p, sample(p.TaskQueue, i, n, k, 1), 0)
		b.ReportMetric(float64(n), "waiting")
		b.ReportMetric(float64(perAsset), "per-asset")
		b.ReportMetric(float64(rss)/1e6, "rss-MB")
		b.ReportMetric(float64(rss-idle)/1e6, "rss-growth-MB")
		b.ReportMetric(float64(ms.HeapInuse)/1e6, "heap-MB")
		b.ReportMetric(float64(ms.StackInuse)/1e6, "stack-MB")
		b.ReportMetric(opened.Seconds(), "open-s")
		b.ReportMetric(float64(rss-idle)/float64(n)/1e3, "rss-KB/incident")
		b.ReportMetric(float64(settled)/1e6, "settled-rss-MB")
		b.ReportMetric(float64(sms.StackInuse)/1e6, "settled-stack-MB")
		b.ReportMetric(float64(sms.HeapInuse)/1e6, "settled-heap-MB")
		b.ReportMetric(ms2(pct(paced, 50)), "approve-p50-ms")
		b.ReportMetric(ms2(pct(paced, 99)), "approve-p99-ms")
		b.ReportMetric(ms2(pct(pacedUpdate, 99)), "update-p99-ms")
		b.ReportMetric(ms2(pct(burst, 50)), "burst-p50-ms")
		b.ReportMetric(ms2(pct(burst, 99)), "burst-p99-ms")
		b.Logf("%d incidents open and waiting (%d per asset): RSS %.0f MB (idle %.0f MB), heap %.0f MB, goroutine stacks %.0f MB (%d goroutines), opened in %s",
			n, perAsset, float64(rss)/1e6, float64(idle)/1e6, float64(ms.HeapInuse)/1e6, float64(ms.StackInuse)/1e6, goroutines, opened.Round(time.Millisecond))
		limit := "none"
		if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
			limit = fmt.Sprintf("%d MiB", l>>20)
		}
		b.Logf("settled (5 collections, memory returned): RSS %.0f MB, heap %.0f MB (live objects %.0f MB), goroutine stacks %.0f MB; memory limit (GOMEMLIMIT) %s, GC cycles %d",
			float64(settled)/1e6, float64(sms.HeapInuse)/1e6, float64(sms.HeapAlloc)/1e6, float64(sms.StackInuse)/1e6, limit, sms.NumGC)
		b.Logf("approval to effect, %d paced at %d/s: p50 %s, p99 %s, max %s (Update call p50 %s, p99 %s)", k, rate, pct(paced, 50), pct(paced, 99), paced[len(paced)-1], pct(pacedUpdate, 50), pct(pacedUpdate, 99))
		b.Logf("approval to effect, %d at once: p50 %s, p99 %s, max %s (Update call p50 %s, p99 %s)", k, pct(burst, 50), pct(burst, 99), burst[len(burst)-1], pct(burstUpdate, 50), pct(burstUpdate, 99))
	}
}

// envInt is the positive integer in the environment variable name, or def.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// TestCapacityBenchmarkTwice runs [BenchmarkCapacity]'s body, on the
// target IRU_TEST_TARGET chooses, twice in this process at a tiny size (4
// incidents, 2 approvals per sample), as -count does: the second call must
// open and approve its own incidents. Each wait is bounded to a minute, so a
// call that waits on incidents nobody serves fails instead of stalling.
func TestCapacityBenchmarkTwice(t *testing.T) {
	t.Setenv("IRU_CAPACITY_N", "4")
	t.Setenv("IRU_CAPACITY_APPROVALS", "2")
	t.Setenv("IRU_CAPACITY_WAIT_S", "60")
	// One round per call, as make bench runs it (-benchtime 1x).
	bt := flag.Lookup("test.benchtime")
	prev := bt.Value.String()
	if err := bt.Value.Set("1x"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bt.Value.Set(prev); err != nil {
			t.Errorf("restore -test.benchtime %q: %v", prev, err)
		}
	})
	for call := range 2 {
		// On the target IRU_TEST_TARGET chooses, as the rest of this
		// package's tests (the benchmark runs on each in turn).
		r := testing.Benchmark(func(b *testing.B) { benchmarkCapacity(b, testenv.Current(b)) })
		if r.N != 1 {
			t.Fatalf("call %d of BenchmarkCapacity failed (N = %d)", call+1, r.N)
		}
		if got := r.Extra["waiting"]; got != 4 {
			t.Errorf("call %d: waiting = %v, want 4", call+1, got)
		}
	}
}

// capacityKey is the correlation key of incident j of a round. run is the
// platform's task queue, unique to each call of the benchmark: with -count,
// the benchmark is called again in the same process on the same dev server,
// where the previous call's incidents still wait on a task queue whose worker
// has stopped. Keys of the round number alone were the same in every call,
// so the next call's starts returned those runs and its status queries went
// unanswered ("no poller seen for task queue recently"): the stall of the
// second run noted in docs/PERFORMANCE.md, session 9.
func capacityKey(run string, round, j int) string {
	return fmt.Sprintf("capacity:%s:%d:%d", run, round, j)
}

// endIncidents terminates the incidents of rounds [0, rounds) that still
// run, so the next call of the benchmark starts on a server that holds
// none of this one's.
func endIncidents(tb testing.TB, c client.Client, run string, rounds, n int) {
	tb.Helper()
	ids := make([]string, 0, rounds*n)
	for i := range rounds {
		for j := range n {
			ids = append(ids, workflows.IncidentWorkflowID(capacityKey(run, i, j)))
		}
	}
	if err := testenv.Terminate(c, "capacity benchmark done", ids); err != nil {
		tb.Errorf("incidents not ended: %v", err)
	}
}

// sample returns the workflow ids of k of round's n incidents, evenly
// spread over the backlog (the first and the last among them): the even
// ones at or below each point for part 0, the odd ones just after them for
// part 1, so the two parts never share an incident (n >= 2k).
func sample(run string, round, n, k, part int) []string {
	ids := make([]string, 0, k)
	for s := range k {
		j := 0
		if k > 1 {
			j = s * (n - 2) / (k - 1)
		}
		j = j&^1 + part
		ids = append(ids, workflows.IncidentWorkflowID(capacityKey(run, round, j)))
	}
	return ids
}

// approveSample approves the incidents ids, the i-th sent at i×gap after
// the first (gap 0: all at once), each from its own goroutine so a slow
// one does not hold back the next, and returns, sorted, each one's time to
// effect (see [effectAt]) and the duration of its Update call.
func approveSample(b *testing.B, p *testplatform.Platform, ids []string, gap time.Duration) (effect, update []time.Duration) {
	b.Helper()
	effect, update = make([]time.Duration, len(ids)), make([]time.Duration, len(ids))
	traces := make([]string, len(ids))
	fc := temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: p.Host.DataConverter(), EncodeCommonAttributes: true})
	begin := time.Now()
	var wg sync.WaitGroup
	for i, id := range ids {
		time.Sleep(time.Until(begin.Add(time.Duration(i) * gap)))
		wg.Go(func() {
			t0 := time.Now()
			if _, err := testplatform.Decide(p.Client, id, workflows.ApproveUpdate, "gate", testplatform.Bob); err != nil {
				b.Errorf("approve %s: %v", id, err)
				return
			}
			update[i] = time.Since(t0)
			at, trace, err := effectAt(p.Client, fc, id, workflows.ApproveUpdate, t0)
			if err != nil {
				b.Errorf("%s: %v", id, err)
				return
			}
			effect[i], traces[i] = at.Sub(t0), trace
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	slowest := 0
	for i := range effect {
		if effect[i] > effect[slowest] {
			slowest = i
		}
	}
	b.Logf("slowest approval (gap %s), %s: sent +0 ms, Update call returned +%d ms; its history from the send on: %s",
		gap, ids[slowest], update[slowest].Milliseconds(), traces[slowest])
	slices.Sort(effect)
	slices.Sort(update)
	return effect, update
}

// effectAt reads the incident's history (waiting for new events as long
// as a minute) and returns the time the server recorded the completion of
// the first activity scheduled after the update named update was
// accepted: the approved step's action (the ledger's appends are local
// activities, markers in history, not activities). With it comes the
// history's events from since on, as "+ms EventType" (where the time
// went), a failed workflow task with its cause and its failure (decoded
// by fc: the platform encrypts failure messages).
func effectAt(c client.Client, fc converter.FailureConverter, id, update string, since time.Time) (time.Time, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	it := c.GetWorkflowHistory(ctx, id, "", true, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	accepted := false
	var scheduled int64
	var trace []string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return time.Time{}, "", fmt.Errorf("history: %w", err)
		}
		if at := e.GetEventTime().AsTime(); !at.Before(since) {
			ev := fmt.Sprintf("+%d %s", at.Sub(since).Milliseconds(), strings.TrimPrefix(e.GetEventType().String(), "EVENT_TYPE_"))
			if f := e.GetWorkflowTaskFailedEventAttributes(); f != nil {
				// Why the worker failed the task (a cache miss on a
				// speculative task for an Update, for one).
				ev += fmt.Sprintf(" (%s: %.300v)", strings.TrimPrefix(f.GetCause().String(), "WORKFLOW_TASK_FAILED_CAUSE_"), fc.FailureToError(f.GetFailure()))
			}
			trace = append(trace, ev)
		}
		switch {
		case e.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput().GetName() == update:
			accepted = true
		case accepted && scheduled == 0 && e.GetActivityTaskScheduledEventAttributes() != nil:
			scheduled = e.GetEventId()
		case scheduled != 0 && e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId() == scheduled:
			return e.GetEventTime().AsTime(), strings.Join(trace, ", "), nil
		}
	}
	return time.Time{}, "", fmt.Errorf("no activity completed after the %s update (accepted %t, scheduled event %d)", update, accepted, scheduled)
}

// pct is the q-th percentile of the sorted durations d (nearest rank).
func pct(d []time.Duration, q int) time.Duration {
	return d[max(0, (len(d)*q+99)/100-1)]
}

// ms2 is d in milliseconds.
func ms2(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// writeProfile writes the named profile to path (debug as
// [pprof.Profile.WriteTo] takes it).
func writeProfile(tb testing.TB, name, path string, debug int) {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if err := pprof.Lookup(name).WriteTo(f, debug); err != nil {
		tb.Fatal(err)
	}
}
