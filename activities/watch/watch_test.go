package watch

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/ledger/ledgertest"
	"github.com/iru-responder/responder/workflows"
)

func openLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	st, err := ledger.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return ledger.New(st, nil)
}

func watchRequest(chain, runID string) ledger.AppendRequest {
	return ledger.AppendRequest{
		Incident: chain, Time: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), Actor: actor("mallory-cli"), Action: ActionTerminated,
		Target: "incident:x/" + runID, Params: map[string]string{"run": runID},
		Outcome: ledger.Outcome{Status: "terminated", Detail: "by mallory-cli"}, IdempotencyKey: "watch/" + runID,
	}
}

// TestAppendOnce: the day's chain has other writers (API servers racing
// for its slots). The watch's entry lands once, at a free slot, whatever
// the race, and a retried report (the same run again, several reports at
// once) finds its entry instead of adding another.
func TestAppendOnce(t *testing.T) {
	l := openLedger(t)
	a := &Activities{Ledger: LedgerOf(l)}
	const chain = "access:2026-12-05"
	ctx := context.Background()

	var wg sync.WaitGroup
	// Another writer appends 40 entries at head+1, like the access log.
	wg.Go(func() {
		for i := range 40 {
			r := ledgertest.Request(chain, 0)
			r.IdempotencyKey = fmt.Sprintf("access/%d", i)
			for {
				h, err := l.Store().Head(ctx, chain)
				r.Seq = 1
				if err == nil {
					r.Seq = h.Seq + 1
				}
				if _, err := l.Append(ctx, r); err == nil {
					break
				}
			}
		}
	})
	// Three reports of run-1 at once, and one of run-2.
	errs := make(chan error, 4)
	for _, run := range []string{"run-1", "run-1", "run-1", "run-2"} {
		wg.Go(func() {
			_, err := a.appendOnce(ctx, watchRequest(chain, run))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("appendOnce: %v", err)
		}
	}
	// And once more later, as a restarted watcher would.
	if _, err := a.appendOnce(ctx, watchRequest(chain, "run-1")); err != nil {
		t.Fatal(err)
	}

	count := map[string]int{}
	var total int
	err := l.Store().Entries(ctx, chain, func(e ledger.Entry) error {
		count[e.IdempotencyKey]++
		total++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count["watch/run-1"] != 1 || count["watch/run-2"] != 1 || total != 42 {
		t.Errorf("entries by key %v (total %d), want each watch entry once and the 40 others", count, total)
	}
	if rep, err := l.Verify(ctx, chain, nil); err != nil || !rep.OK() {
		t.Errorf("chain does not verify: %+v %v", rep, err)
	}
}

func TestListQuery(t *testing.T) {
	tests := []struct {
		since time.Time
		tq    string
		want  string
	}{
		{time.Time{}, "", "WorkflowType = 'Incident' AND ExecutionStatus = 'Terminated'"},
		{time.Date(2026, 12, 5, 10, 0, 0, 5000, time.UTC), "iru-responder",
			"WorkflowType = 'Incident' AND ExecutionStatus = 'Terminated' AND CloseTime >= '2026-12-05T10:00:00.000005Z' AND TaskQueue = 'iru-responder'"},
		// A task queue cannot close the quote and add clauses.
		{time.Time{}, "q' OR WorkflowType = 'Watch", "WorkflowType = 'Incident' AND ExecutionStatus = 'Terminated' AND TaskQueue = 'q OR WorkflowType = Watch'"},
	}
	for _, tt := range tests {
		if got := listQuery(tt.since, tt.tq); got != tt.want {
			t.Errorf("listQuery(%s, %q) = %s, want %s", tt.since, tt.tq, got, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	pending := []workflows.PendingCompensation{{StepID: "isolate", Action: "pve.unisolate"}}
	tests := []struct {
		name string
		r    workflows.WatchReportResult
		held []string
		want []string
	}{
		{"terminated", workflows.WatchReportResult{IncidentID: "INC-1", How: workflows.StoppedTerminated, By: "mallory-cli", Reason: "cleanup", At: at,
			FollowUpIncidentID: "INC-1-FU-r", FollowUpWorkflowID: "incident:followup:r"}, nil,
			[]string{"INC-1 terminated outside the platform by mallory-cli (identity declared by the client) at 2026-12-05T10:00:00Z", "reason: cleanup",
				"pending compensations isolate:pve.unisolate offered in follow-up INC-1-FU-r (incident:followup:r)"}},
		{"reset", workflows.WatchReportResult{IncidentID: "INC-2", How: workflows.StoppedReset, By: ResetterIdentity, At: at, NewRunID: "r2",
			FollowUpIncidentID: "INC-2-FU-r"}, []string{"isolate"},
			[]string{"INC-2 reset outside the platform", "identity is not recorded by Temporal", "reason: (none)", "new run r2",
				"the new run holds the compensations of isolate again"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(tt.r, pending, tt.held)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("describe = %q\nwant it to contain %q", got, w)
				}
			}
		})
	}
	if got := actor(""); got != "temporal-client:unknown" {
		t.Errorf("actor(\"\") = %s", got)
	}
	if got := actor(ResetterIdentity); got != "temporal:history-resetter" {
		t.Errorf("actor(resetter) = %s", got)
	}
}
