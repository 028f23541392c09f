//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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

		// Approve a few incidents and time each until the step completes.
		var lat []time.Duration
		for _, j := range []int{0, n / 2, n - 1} {
			id := workflows.IncidentWorkflowID(fmt.Sprintf("capacity:%d:%d", i, j))
			t0 := time.Now()
			if _, err := testplatform.Decide(p.Client, id, workflows.ApproveUpdate, "gate", testplatform.Bob); err != nil {
				b.Fatal(err)
			}
			testplatform.WaitStep(b, p.Client, id, "gate", workflows.StepSucceeded, time.Minute)
			lat = append(lat, time.Since(t0))
		}
		b.ReportMetric(float64(rss)/(1<<20), "rss-MB")
		b.ReportMetric(float64(rss-idle)/(1<<20), "rss-growth-MB")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
		b.ReportMetric(opened.Seconds(), "open-s")
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		b.ReportMetric(float64(sum.Milliseconds())/float64(len(lat)), "approve-ms")
		b.Logf("%d incidents open and waiting: RSS %.0f MB (idle %.0f MB), heap %.0f MB, opened in %s; approval to effect %v",
			n, float64(rss)/(1<<20), float64(idle)/(1<<20), float64(ms.HeapInuse)/(1<<20), opened.Round(time.Millisecond), lat)
	}
}
