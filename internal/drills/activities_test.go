package drills

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/workflows"
)

// jsonValue is a converter.EncodedValue over a Go value.
type jsonValue struct{ v any }

func (j jsonValue) HasValue() bool { return j.v != nil }
func (j jsonValue) Get(ptr any) error {
	b, err := json.Marshal(j.v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}

// updateHandle is a client.WorkflowUpdateHandle with a fixed outcome.
type updateHandle struct {
	res any
	err error
}

func (h updateHandle) WorkflowID() string { return "wf" }
func (h updateHandle) RunID() string      { return "run" }
func (h updateHandle) UpdateID() string   { return "upd" }
func (h updateHandle) Get(_ context.Context, ptr any) error {
	if h.err != nil {
		return h.err
	}
	return jsonValue{h.res}.Get(ptr)
}

// fakeTemporal answers queries and updates from fixed values.
type fakeTemporal struct {
	status   workflows.IncidentStatus
	queryErr error
	// updateErr fails UpdateWorkflow; outcomeErr fails the handle's Get.
	updateErr, outcomeErr error
	updates               []client.UpdateWorkflowOptions
}

func (f *fakeTemporal) QueryWorkflow(_ context.Context, _, _, queryType string, _ ...any) (converter.EncodedValue, error) {
	if f.queryErr != nil {
		return nil, f.queryErr
	}
	if queryType != workflows.StatusQuery {
		return nil, errors.New("unknown query " + queryType)
	}
	return jsonValue{f.status}, nil
}

func (f *fakeTemporal) UpdateWorkflow(_ context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.updates = append(f.updates, o)
	if f.updateErr != nil {
		return nil, f.updateErr
	}
	return updateHandle{res: workflows.DecisionResult{StepID: "shutdown", Status: workflows.StepWaitingApproval, Approvals: 1, Quorum: 1}, err: f.outcomeErr}, nil
}

type recordingStore struct {
	mu    sync.Mutex
	items []activities.EvidenceItem
	body  map[string]string
	fail  error
}

func (r *recordingStore) PutEvidence(_ context.Context, item activities.EvidenceItem) (string, error) {
	if r.fail != nil {
		return "", r.fail
	}
	b, err := io.ReadAll(item.Body)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.body == nil {
		r.body = map[string]string{}
	}
	r.items = append(r.items, item)
	r.body[item.Name] = string(b)
	return "evidence://" + item.IncidentID + "/" + item.Name, nil
}

func TestChildStatus(t *testing.T) {
	opened := time.Date(2025, 3, 3, 3, 0, 0, 0, time.UTC)
	ft := &fakeTemporal{status: workflows.IncidentStatus{State: workflows.StateOpen, Phase: "remediation", OpenedAt: opened,
		Timeline: make([]workflows.TimelineEntry, 50),
		Steps: []workflows.StepState{
			{ID: "isolate", Phase: "containment", Status: workflows.StepSucceeded, StartedAt: opened, FinishedAt: opened.Add(time.Second)},
			{ID: "shutdown", Phase: "remediation", Status: workflows.StepWaitingApproval,
				Approval: &workflows.ApprovalState{Roles: []string{"ir-lead"}, Quorum: 1}},
			{ID: "restore", Phase: "remediation", Status: workflows.StepWaitingApproval,
				Approval: &workflows.ApprovalState{Roles: []string{"ir-lead"}, Quorum: 1, Outcome: "approved"}},
		}}}
	a := &Activities{Temporal: ft}
	st, err := a.ChildStatus(context.Background(), workflows.DrillChildStatusInput{WorkflowID: "incident:x"})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != workflows.StateOpen || len(st.Steps) != 3 || st.Steps[0].FinishedAt.IsZero() {
		t.Errorf("status = %+v", st)
	}
	if !st.Steps[1].AwaitingApproval || st.Steps[2].AwaitingApproval || st.Steps[1].Roles[0] != "ir-lead" {
		t.Errorf("awaiting approval: %+v", st.Steps)
	}

	ft.queryErr = serviceerror.NewNotFound("workflow not found")
	_, err = a.ChildStatus(context.Background(), workflows.DrillChildStatusInput{WorkflowID: "incident:gone"})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != activities.ErrTypeNotFound || !app.NonRetryable() {
		t.Errorf("missing workflow: err = %v, want a final NotFound", err)
	}
	ft.queryErr = errors.New("connection reset")
	_, err = a.ChildStatus(context.Background(), workflows.DrillChildStatusInput{WorkflowID: "incident:x"})
	if err == nil || errors.As(err, &app) {
		t.Errorf("transport error: err = %v, want a retryable error", err)
	}
}

func TestApprove(t *testing.T) {
	drillID := workflows.Approver{Subject: workflows.DrillApproverSubject, Username: "drill", Roles: []string{"ir-lead"}}
	in := workflows.DrillApproveInput{WorkflowID: "incident:x", RunID: "r1", UpdateID: "INC/drill-approve/shutdown",
		Decision: workflows.DecisionInput{StepID: "shutdown", Approver: drillID, Reason: "drill"}}
	for _, tc := range []struct {
		name        string
		ft          *fakeTemporal
		approver    *workflows.Approver
		accepted    bool
		rejection   string
		errType     string // final error type; "retry" for a retryable error
		sendsUpdate bool
	}{
		{name: "accepted", ft: &fakeTemporal{}, accepted: true, sendsUpdate: true},
		{name: "rejected by the validator", ft: &fakeTemporal{outcomeErr: temporal.NewApplicationError("step is not waiting for approval", "")},
			rejection: "step is not waiting for approval", sendsUpdate: true},
		{name: "workflow gone", ft: &fakeTemporal{updateErr: serviceerror.NewNotFound("workflow execution already completed")},
			errType: activities.ErrTypeNotFound, sendsUpdate: true},
		{name: "server unavailable", ft: &fakeTemporal{updateErr: serviceerror.NewUnavailable("try later")}, errType: "retry", sendsUpdate: true},
		{name: "not the drill identity", ft: &fakeTemporal{}, approver: &workflows.Approver{Subject: "keycloak:alice", Roles: []string{"ir-lead"}},
			errType: activities.ErrTypePermission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Activities{Temporal: tc.ft}
			x := in
			if tc.approver != nil {
				x.Decision.Approver = *tc.approver
			}
			res, err := a.Approve(context.Background(), x)
			var app *temporal.ApplicationError
			switch {
			case tc.errType == "retry":
				if err == nil || errors.As(err, &app) {
					t.Errorf("err = %v, want a retryable error", err)
				}
			case tc.errType != "":
				if !errors.As(err, &app) || app.Type() != tc.errType || !app.NonRetryable() {
					t.Errorf("err = %v, want final %s", err, tc.errType)
				}
			default:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if res.Accepted != tc.accepted || !strings.Contains(res.Rejection, tc.rejection) {
					t.Errorf("result = %+v", res)
				}
			}
			if got := len(tc.ft.updates) == 1; got != tc.sendsUpdate {
				t.Fatalf("updates sent: %d", len(tc.ft.updates))
			}
			if tc.sendsUpdate {
				u := tc.ft.updates[0]
				if u.UpdateName != workflows.ApproveUpdate || u.UpdateID != in.UpdateID || u.WorkflowID != in.WorkflowID || u.RunID != "r1" ||
					u.WaitForStage != client.WorkflowUpdateStageCompleted || len(u.Args) != 1 {
					t.Errorf("update options = %+v", u)
				}
			}
		})
	}
}

func TestReport(t *testing.T) {
	at := time.Date(2025, 3, 3, 3, 0, 0, 0, time.UTC)
	rep := workflows.DrillReport{
		Drill: "canary", Playbook: "container-compromise", Target: "drill-canary", Mode: "live", IncidentID: "drill-canary-20250303T030000Z-abc",
		StartedAt: at, FinishedAt: at.Add(5 * time.Minute), State: workflows.StateResolved, Reason: "all phases|completed",
		Phases: []workflows.DrillPhase{{Name: "containment", Reached: true, Start: at, End: at.Add(75 * time.Second), Duration: 75 * time.Second}, {Name: "recovery"}},
		Objectives: []workflows.ObjectiveResult{{Name: "contain_within", Within: time.Minute, Reached: true, Measured: 75 * time.Second,
			Detail: "took 1m15s, over 1m0s by 15s"}},
		AutoApproved:    []workflows.DrillApproval{{StepID: "shutdown", At: at, Accepted: true}},
		WaitedForPeople: []string{"restore"},
		Failures:        []string{"objective contain_within 1m0s: took 1m15s | over"},
	}
	store := &recordingStore{}
	a := &Activities{Evidence: store}
	res, err := a.Report(context.Background(), workflows.DrillReportInput{Report: rep})
	if err != nil {
		t.Fatal(err)
	}
	if len(store.items) != 2 || res.MarkdownRef != "evidence://"+rep.IncidentID+"/drill/canary/report.md" || res.JSONRef == "" {
		t.Fatalf("stored %d items, result %+v", len(store.items), res)
	}
	for _, it := range store.items {
		if it.IncidentID != rep.IncidentID || it.Class != activities.ClassOperational || it.CollectedBy != ReportCollector || it.Source != "drill:canary" {
			t.Errorf("item = %+v", it)
		}
	}
	md := store.body["drill/canary/report.md"]
	for _, want := range []string{"# Drill canary: FAILED", "| contain_within | 1m0s | 1m15s | FAIL: took 1m15s, over 1m0s by 15s |",
		"| recovery | not reached | | |", "- shutdown approved by system:drill", "- restore waited for a person", `| Incident state | resolved \(all phases\|completed\) |`, `- objective contain\_within 1m0s: took 1m15s \| over`} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	var back workflows.DrillReport
	if err := json.Unmarshal([]byte(store.body["drill/canary/report.json"]), &back); err != nil || back.Objectives[0].Measured != 75*time.Second {
		t.Errorf("JSON report = %+v, %v", back, err)
	}

	if _, err := a.Report(context.Background(), workflows.DrillReportInput{}); err == nil {
		t.Error("a report without incident id was stored")
	}
	store.fail = errors.New("disk full")
	if _, err := a.Report(context.Background(), workflows.DrillReportInput{Report: rep}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("err = %v, want the store's error", err)
	}
}
