//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

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
// for an approval to take effect: from the Update call to the approved
// step's completion, as seen by the status query.
//
//	go test -run '^$' -bench Capacity -benchtime 1x ./test/
func BenchmarkCapacity(b *testing.B) {
	n := 1000
	if v := os.Getenv("IRU_CAPACITY_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "capacity"))
	if err != nil {
		b.Fatal(err)
	}
	p := testplatform.New(b, testplatform.Options{Env: []string{"IRU_PLAYBOOKS_DIR=" + dir}})
	runtime.GC()
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
				key := fmt.Sprintf("capacity:%d:%d", i, j)
				in := workflows.IncidentInput{IncidentID: fmt.Sprintf("CAP-%d-%d", i, j), Key: key, Asset: "drill-canary", Severity: "medium", Playbook: "capacity", OpenedBy: "system:bench"}
				if _, err := p.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: workflows.IncidentWorkflowID(key), TaskQueue: p.TaskQueue}, workflows.IncidentWorkflow, in); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		// Every incident is waiting for its approval once the last one is.
		last := workflows.IncidentWorkflowID(fmt.Sprintf("capacity:%d:%d", i, n-1))
		testplatform.WaitStep(b, p.Client, last, "gate", workflows.StepWaitingApproval, 5*time.Minute)
		opened := time.Since(start)
		runtime.GC()
		rss := rssBytes(b)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)

		// Approve a sample of the incidents spread over the backlog, one
		// at a time, and time each until the step completed.
		lat := approveSample(b, p, i, n, min(n, 100))
		b.ReportMetric(float64(rss)/(1<<20), "rss-MB")
		b.ReportMetric(float64(rss-idle)/(1<<20), "rss-growth-MB")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
		b.ReportMetric(opened.Seconds(), "open-s")
		p50, p99 := lat[len(lat)/2], lat[max(0, (len(lat)*99+99)/100-1)]
		b.ReportMetric(float64(p50.Microseconds())/1000, "approve-p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "approve-p99-ms")
		b.ReportMetric(float64(rss-idle)/float64(n)/1024, "rss-KB/incident")
		b.Logf("%d incidents open and waiting: RSS %.0f MB (idle %.0f MB), heap %.0f MB, opened in %s; approval to effect over %d approvals p50 %s, p99 %s",
			n, float64(rss)/(1<<20), float64(idle)/(1<<20), float64(ms.HeapInuse)/(1<<20), opened.Round(time.Millisecond), len(lat), p50, p99)
	}
}

// approveSample approves k of round's n waiting incidents, evenly spread
// (the first and the last among them), one after another, and returns
// each one's time from the approval Update to the approved step's
// completion as the status query sees it, sorted.
func approveSample(b *testing.B, p *testplatform.Platform, round, n, k int) []time.Duration {
	b.Helper()
	lat := make([]time.Duration, 0, k)
	for s := range k {
		j := 0
		if k > 1 {
			j = s * (n - 1) / (k - 1)
		}
		id := workflows.IncidentWorkflowID(fmt.Sprintf("capacity:%d:%d", round, j))
		t0 := time.Now()
		if _, err := testplatform.Decide(p.Client, id, workflows.ApproveUpdate, "gate", testplatform.Bob); err != nil {
			b.Fatalf("approve %s: %v", id, err)
		}
		lat = append(lat, waitSucceeded(b, p, id, "gate", t0))
	}
	slices.Sort(lat)
	return lat
}

// waitSucceeded polls the status query every 5 ms (testplatform.WaitStep's
// 50 ms would dominate a sub-250 ms figure) until step succeeded and
// returns the time since t0.
func waitSucceeded(b *testing.B, p *testplatform.Platform, id, step string, t0 time.Time) time.Duration {
	b.Helper()
	deadline := t0.Add(time.Minute)
	for {
		st, err := testplatform.Status(p.Client, id)
		if err == nil {
			for _, s := range st.Steps {
				if s.ID == step && s.Status == workflows.StepSucceeded {
					return time.Since(t0)
				}
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: step %s not succeeded a minute after its approval (%v)", id, step, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
