package workerhost

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/activities/watch"
	"github.com/iru-responder/responder/workflows"
)

// fakeIncidentClient serves one run: its first event carries input, its
// status query answers status (nil: the query fails), and starting a
// workflow records the start and fails with startErr.
type fakeIncidentClient struct {
	input    workflows.IncidentInput
	status   *workflows.IncidentStatus
	startErr error
	starts   []client.StartWorkflowOptions
	inputs   []workflows.IncidentInput
}

type historyEvents []*historypb.HistoryEvent

func (e *historyEvents) HasNext() bool { return len(*e) > 0 }
func (e *historyEvents) Next() (*historypb.HistoryEvent, error) {
	ev := (*e)[0]
	*e = (*e)[1:]
	return ev, nil
}

func (f *fakeIncidentClient) QueryWorkflow(_ context.Context, _, _, queryType string, _ ...any) (converter.EncodedValue, error) {
	if f.status == nil || queryType != workflows.StatusQuery {
		return nil, serviceerror.NewQueryFailed("nondeterministic workflow")
	}
	b, err := json.Marshal(f.status)
	return jsonValue(b), err
}

func (f *fakeIncidentClient) GetWorkflowHistory(_ context.Context, _, _ string, _ bool, _ enumspb.HistoryEventFilterType) client.HistoryEventIterator {
	p, err := converter.GetDefaultDataConverter().ToPayloads(f.input)
	if err != nil {
		panic(err)
	}
	return &historyEvents{{EventId: 1, EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{
		WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{Input: p}}}}
}

func (f *fakeIncidentClient) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	f.starts = append(f.starts, o)
	f.inputs = append(f.inputs, args[0].(workflows.IncidentInput))
	return nil, f.startErr
}

// TestWatchIncidentsRead: the watch's view of a run's status and input
// keeps the compensations whole (their undo parameters), names the
// settled steps, the carried status and the inherited steps' ids.
func TestWatchIncidentsRead(t *testing.T) {
	isolate := workflows.PendingCompensation{StepID: "isolate", Action: "pve.unisolate", Undo: map[string]string{"prior_ref": "ev"}}
	disable := workflows.PendingCompensation{StepID: "disable", Action: "kc.enable"}
	st := workflows.IncidentStatus{IncidentID: "INC-1", Asset: "web-1", Severity: "critical", Drill: true,
		Compensations: []workflows.PendingCompensation{isolate},
		Steps: []workflows.StepState{{ID: "undo_1_isolate", Status: workflows.StepSucceeded}, {ID: "undo_2_disable", Status: workflows.StepDenied},
			{ID: "notify", Status: workflows.StepFailed}}}
	f := &fakeIncidentClient{status: &st, input: workflows.IncidentInput{IncidentID: "INC-1-FU", Asset: "web-1",
		Carry:     &workflows.IncidentCarry{Status: st},
		Inherited: &workflows.InheritedCompensations{IncidentID: "INC-1", Compensations: []workflows.PendingCompensation{isolate, disable}}}}
	w := watchIncidents{c: f}
	ctx := context.Background()

	got, err := w.Status(ctx, "incident:k", "r")
	if err != nil {
		t.Fatal(err)
	}
	if got.IncidentID != "INC-1" || got.Asset != "web-1" || got.Severity != "critical" || !got.Drill ||
		len(got.Compensations) != 1 || got.Compensations[0].Undo["prior_ref"] != "ev" || !slices.Equal(got.Settled, []string{"undo_1_isolate", "undo_2_disable"}) {
		t.Errorf("status: %+v", got)
	}
	in, err := w.Input(ctx, "incident:k", "r")
	if err != nil {
		t.Fatal(err)
	}
	if in.IncidentID != "INC-1-FU" || in.Carried == nil || in.Carried.IncidentID != "INC-1" || in.Inherited == nil || in.Inherited.IncidentID != "INC-1" {
		t.Fatalf("input: %+v", in)
	}
	var ids []string
	for _, s := range in.Inherited.Steps {
		ids = append(ids, s.StepID)
	}
	if !slices.Equal(ids, []string{workflows.InheritedStepID(0, isolate), workflows.InheritedStepID(1, disable)}) ||
		in.Inherited.Steps[0].Compensation.Undo["prior_ref"] != "ev" {
		t.Errorf("inherited steps: %+v", in.Inherited.Steps)
	}

	f.status = nil
	var qf *serviceerror.QueryFailed
	if _, err := w.Status(ctx, "incident:k", "r"); !errors.As(err, &qf) {
		t.Errorf("a failed status query: %v, want the QueryFailed error the watch falls back on", err)
	}
}

// TestWatchIncidentsOpenFollowUp: the follow-up is an incident of the
// orphaned-compensations playbook on the stopped run's task queue, under
// a workflow id derived from the run id; a follow-up started before is
// not an error, any other failure is.
func TestWatchIncidentsOpenFollowUp(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	fu := watch.FollowUp{
		Run: watch.StoppedRun{WorkflowID: "incident:k", RunID: "r-1", TaskQueue: "tq"}, IncidentID: "INC-1-FU-r-1", Stopped: "INC-1", Owner: "INC-1",
		How: watch.StoppedTerminated, By: "mallory-cli", Reason: "cleanup", At: at, Asset: "web-1", Severity: "critical",
		Summary: "stopped", Labels: map[string]string{"stopped_run": "r-1"}, ReceivedAt: at.Add(time.Minute),
		Pending: []watch.Compensation{{StepID: "isolate", Action: "pve.unisolate", Undo: map[string]string{"prior_ref": "ev"}}},
	}
	wantID := workflows.IncidentWorkflowID(workflows.FollowUpKey("r-1"))
	tests := []struct {
		name     string
		startErr error
		wantErr  bool
	}{
		{"started", nil, false},
		{"started before", serviceerror.NewWorkflowExecutionAlreadyStarted("exists", "", ""), false},
		{"server unavailable", errors.New("unavailable"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeIncidentClient{startErr: tt.startErr}
			id, err := watchIncidents{c: f}.OpenFollowUp(context.Background(), fu)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "unavailable") {
					t.Fatalf("err = %v, want the start's failure", err)
				}
				return
			}
			if err != nil || id != wantID {
				t.Fatalf("OpenFollowUp = %q, %v; want %q", id, err, wantID)
			}
			o, in := f.starts[0], f.inputs[0]
			if o.ID != wantID || o.TaskQueue != "tq" || o.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE {
				t.Errorf("start options: %+v", o)
			}
			inh := in.Inherited
			if in.IncidentID != "INC-1-FU-r-1" || in.Key != workflows.FollowUpKey("r-1") || in.Playbook != workflows.OrphanedCompensationsPlaybook ||
				in.OpenedBy != workflows.WatchActor || len(in.Alerts) != 1 || in.Alerts[0].ID != "watch:r-1" || !in.Alerts[0].ReceivedAt.Equal(fu.ReceivedAt) ||
				inh == nil || inh.RunID != "r-1" || inh.IncidentID != "INC-1" || inh.How != watch.StoppedTerminated || len(inh.Compensations) != 1 ||
				inh.Compensations[0].Undo["prior_ref"] != "ev" {
				t.Errorf("follow-up input: %+v", in)
			}
		})
	}
}
