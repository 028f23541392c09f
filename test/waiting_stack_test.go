//go:build integration && !race

package test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// TestWaitingIncidentStack opens incidents that wait for an approval on
// the platform's worker and measures the goroutine stack each of them
// holds once the collector has run a few times (as it does while a backlog
// waits: at least every two minutes). A waiting incident parks two
// coroutines: the run, deep in the playbook's approval wait, and the
// signal receiver. The run's frames on that path are kept small, so its
// stack is halved to 16 KiB; with the ledger entries and messages built in
// those frames (5.9 KB of them) it stayed at 32 KiB, 37 KB per incident in
// all.
//
// It measures what a production build holds, so it is built without the
// race detector, whose instrumentation enlarges every frame (50–53 KiB per
// incident there, before and after alike); scripts/test.sh runs it on its
// own.
func TestWaitingIncidentStack(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "capacity"))
	if err != nil {
		t.Fatal(err)
	}
	p := testplatform.New(t, testplatform.Options{Env: []string{"IRU_PLAYBOOKS_DIR=" + dir}})
	settled := func() (stack uint64, goroutines int) {
		for range 5 {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.StackInuse, runtime.NumGoroutine()
	}
	before, g0 := settled()
	const n = 40
	ids := make([]string, n)
	for i := range ids {
		key := fmt.Sprintf("stack:%d", i)
		ids[i] = workflows.IncidentWorkflowID(key)
		// No asset: no lookup of related incidents, whose coroutine may
		// still wait for its signals when the stacks are measured.
		in := workflows.IncidentInput{IncidentID: fmt.Sprintf("STACK-%d", i), Key: key, Severity: "medium", Playbook: "capacity", OpenedBy: "system:test"}
		if _, err := p.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: ids[i], TaskQueue: p.TaskQueue}, workflows.IncidentWorkflow, in); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Client.TerminateWorkflow(context.Background(), ids[i], "", "test done") })
	}
	for _, id := range ids {
		testplatform.WaitStep(t, p.Client, id, "gate", workflows.StepWaitingApproval, 2*time.Minute)
	}
	after, g1 := settled()
	per := (int64(after) - int64(before)) / n
	t.Logf("%d waiting incidents: goroutine stacks %d → %d KiB (%d KiB each), goroutines %d → %d", n, before>>10, after>>10, per>>10, g0, g1)
	if g1-g0 < n {
		t.Errorf("goroutines %d → %d: want at least one more per waiting incident (are they waiting?)", g0, g1)
	}
	// 16 KiB for the run, 4–8 KiB for the signal receiver, and the
	// worker's own goroutines' growth shared among 40 (27–28 KiB in all
	// here; 43 KiB when the run's stack stayed at 32 KiB).
	if per > 35<<10 {
		t.Errorf("each waiting incident holds %d KiB of goroutine stack, want at most 35 KiB (the run's stack no longer shrinks to 16 KiB: a frame on its approval-wait path grew)", per>>10)
	}
}
