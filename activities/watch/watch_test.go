package watch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/ledger/ledgertest"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
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
		if got := listQuery("Incident", tt.since, tt.tq); got != tt.want {
			t.Errorf("listQuery(%s, %q) = %s, want %s", tt.since, tt.tq, got, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	pending := []Compensation{{StepID: "isolate", Action: "pve.unisolate"}}
	tests := []struct {
		name string
		r    ReportResult
		held []string
		want []string
	}{
		{"terminated", ReportResult{IncidentID: "INC-1", How: StoppedTerminated, By: "mallory-cli", Reason: "cleanup", At: at,
			FollowUpIncidentID: "INC-1-FU-r", FollowUpWorkflowID: "incident:followup:r"}, nil,
			[]string{"INC-1 terminated outside the platform by mallory-cli (identity declared by the client) at 2026-12-05T10:00:00Z", "reason: cleanup",
				"pending compensations isolate:pve.unisolate offered in follow-up INC-1-FU-r (incident:followup:r)"}},
		{"reset", ReportResult{IncidentID: "INC-2", How: StoppedReset, By: ResetterIdentity, At: at, NewRunID: "r2",
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

// fakeTemporal serves one stopped run's close event.
type fakeTemporal struct {
	closeEvent *historypb.HistoryEvent
}

type events []*historypb.HistoryEvent

func (e *events) HasNext() bool { return len(*e) > 0 }
func (e *events) Next() (*historypb.HistoryEvent, error) {
	ev := (*e)[0]
	*e = (*e)[1:]
	return ev, nil
}

func (f *fakeTemporal) ListWorkflow(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	return &workflowservice.ListWorkflowExecutionsResponse{}, nil
}

func (f *fakeTemporal) DescribeWorkflow(context.Context, string, string) (*client.WorkflowExecutionDescription, error) {
	return nil, errors.New("not a reset")
}

func (f *fakeTemporal) GetWorkflowHistory(_ context.Context, _, _ string, _ bool, filter enumspb.HistoryEventFilterType) client.HistoryEventIterator {
	if filter != enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT {
		panic("the watch reads only the close event itself")
	}
	return &events{f.closeEvent}
}

// fakeIncidents is the incident workflow of one stopped run.
type fakeIncidents struct {
	input   Input
	status  *Status // nil: the status query fails (the run cannot be replayed)
	opened  []FollowUp
	openErr error
}

func (f *fakeIncidents) WorkflowType() string { return "Incident" }

func (f *fakeIncidents) Status(context.Context, string, string) (Status, error) {
	if f.status == nil {
		return Status{}, serviceerror.NewQueryFailed("nondeterministic workflow: history event is ActivityTaskScheduled, replay command is TimerStarted")
	}
	return *f.status, nil
}

func (f *fakeIncidents) Input(context.Context, string, string) (Input, error) { return f.input, nil }

func (f *fakeIncidents) OpenFollowUp(_ context.Context, fu FollowUp) (string, error) {
	if f.openErr != nil {
		return "", f.openErr
	}
	f.opened = append(f.opened, fu)
	return "incident:followup:" + fu.Run.RunID, nil
}

func terminated(identity, reason string, at time.Time) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{EventId: 40, EventTime: timestamppb.New(at), EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionTerminatedEventAttributes{
			WorkflowExecutionTerminatedEventAttributes: &historypb.WorkflowExecutionTerminatedEventAttributes{Identity: identity, Reason: reason}}}
}

// TestReportFallbacks: what the watch does when the stopped run cannot be
// replayed (its code changed since), when the follow-up cannot be opened,
// when the stopped run was a follow-up itself, and when the run did not
// close by termination.
func TestReportFallbacks(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	run := StoppedRun{WorkflowID: "incident:k", RunID: "r-1", TaskQueue: "tq", CloseTime: at}
	isolate := Compensation{StepID: "isolate", Action: "pve.unisolate", Undo: map[string]string{"prior_ref": "ev"}}
	disable := Compensation{StepID: "disable", Action: "kc.enable"}
	carried := Status{IncidentID: "INC-C", Asset: "web-1", Severity: "critical", Compensations: []Compensation{isolate}}
	// A stopped follow-up of INC-C: it settled its first inherited step,
	// not the second.
	followUp := Status{IncidentID: "INC-C-FU-r0", Settled: []string{"undo_1_isolate"}}
	tests := []struct {
		name        string
		inc         *fakeIncidents
		close       *historypb.HistoryEvent
		wantPending []string
		wantOwner   string
		wantProblem string
		wantErr     string
	}{
		{"query fails, continued run: the carried compensations", &fakeIncidents{input: Input{IncidentID: "INC-C", Carried: &carried}},
			terminated("mallory-cli", "x", at), []string{"isolate"}, "INC-C", "as of its start", ""},
		{"query fails, first run: compensations unknown, said so", &fakeIncidents{input: Input{IncidentID: "INC-C"}},
			terminated("mallory-cli", "x", at), nil, "", "pending compensations unknown", ""},
		{"status answers: its compensations", &fakeIncidents{status: &carried},
			terminated("mallory-cli", "x", at), []string{"isolate"}, "INC-C", "", ""},
		{"stopped follow-up: the inherited compensations not settled yet", &fakeIncidents{status: &followUp,
			input: Input{IncidentID: "INC-C-FU-r0", Inherited: &Inherited{IncidentID: "INC-C",
				Steps: []InheritedStep{{StepID: "undo_1_isolate", Compensation: isolate}, {StepID: "undo_2_disable", Compensation: disable}}}}},
			terminated("mallory-cli", "x", at), []string{"disable"}, "INC-C", "", ""},
		{"follow-up cannot be opened: retried", &fakeIncidents{status: &carried, openErr: errors.New("unavailable")},
			terminated("mallory-cli", "x", at), nil, "", "", "open follow-up"},
		{"not a termination", &fakeIncidents{}, &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionCompletedEventAttributes{WorkflowExecutionCompletedEventAttributes: &historypb.WorkflowExecutionCompletedEventAttributes{}}},
			nil, "", "", "did not close by termination"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLedger(t)
			a := &Activities{Temporal: &fakeTemporal{closeEvent: tt.close}, Incidents: tt.inc, Ledger: LedgerOf(l)}
			env := activitytest.New(nil)
			env.RegisterActivityWithOptions(a.Report, activity.RegisterOptions{Name: ReportActivity})
			rep, err := activitytest.Run[ReportResult](env, ReportActivity, ReportInput{Run: run})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if h, herr := l.Store().Head(context.Background(), accesslog.Chain(at)); herr == nil {
					t.Errorf("a failed report wrote %+v", h)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Compensations != len(tt.wantPending) || !strings.Contains(rep.Problem, tt.wantProblem) || !strings.HasPrefix(rep.IncidentID, "INC-C") {
				t.Errorf("report: %+v", rep)
			}
			if len(tt.wantPending) > 0 {
				if len(tt.inc.opened) != 1 {
					t.Fatalf("follow-ups opened: %+v", tt.inc.opened)
				}
				fu := tt.inc.opened[0]
				var steps []string
				for _, c := range fu.Pending {
					steps = append(steps, c.StepID)
				}
				if !slices.Equal(steps, tt.wantPending) || fu.Owner != tt.wantOwner || fu.Run != run || fu.How != StoppedTerminated || fu.By != "mallory-cli" ||
					fu.IncidentID != FollowUpIncidentID(tt.wantOwner, "r-1") || rep.FollowUpWorkflowID != "incident:followup:r-1" || rep.FollowUpIncidentID != fu.IncidentID {
					t.Errorf("follow-up: %+v, report %+v", fu, rep)
				}
				if fu.Pending[0].StepID == "isolate" && fu.Pending[0].Undo["prior_ref"] != "ev" {
					t.Errorf("follow-up lost the undo parameters: %+v", fu.Pending)
				}
			} else if len(tt.inc.opened) != 0 {
				t.Errorf("follow-up opened with nothing to offer: %+v", tt.inc.opened)
			}
			chains := []string{accesslog.Chain(at), rep.IncidentID}
			for _, chain := range chains {
				var got []ledger.Entry
				_ = l.Store().Entries(context.Background(), chain, func(e ledger.Entry) error { got = append(got, e); return nil })
				if len(got) != 1 || !strings.Contains(got[0].Outcome.Detail, tt.wantProblem) || got[0].Actor != "temporal-client:mallory-cli" {
					t.Errorf("chain %s: %+v", chain, got)
				}
			}
		})
	}
}
