package workerhost

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/workflows"
)

// jsonValue is a query result held as JSON.
type jsonValue []byte

func (v jsonValue) HasValue() bool    { return len(v) > 0 }
func (v jsonValue) Get(ptr any) error { return json.Unmarshal(v, ptr) }

// fakeQuerier answers the status query with st, or fails with err.
type fakeQuerier struct {
	st          workflows.IncidentStatus
	err         error
	wfID, runID string
	query       string
}

func (f *fakeQuerier) QueryWorkflow(_ context.Context, workflowID, runID, queryType string, _ ...any) (converter.EncodedValue, error) {
	f.wfID, f.runID, f.query = workflowID, runID, queryType
	if f.err != nil {
		return nil, f.err
	}
	b, err := json.Marshal(f.st)
	return jsonValue(b), err
}

func TestIncidentStatus(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	st := workflows.IncidentStatus{IncidentID: "INC-1", Playbook: "container-compromise", Asset: "web-1", State: workflows.StateResolved,
		Steps: []workflows.StepState{{ID: "isolate", Action: "pve.isolate", Status: workflows.StepSucceeded,
			Approval: &workflows.ApprovalState{Approvals: []workflows.Decision{{By: workflows.Approver{Username: "alice", SourceIP: "10.0.0.1"}, Reason: "ok", At: at}}}}},
		Timeline: []workflows.TimelineEntry{{At: at, Actor: "alice", What: "approved"}}}
	q := &fakeQuerier{st: st}
	inc, err := incidentStatus(q)(context.Background(), "incident:INC-1", "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if q.wfID != "incident:INC-1" || q.runID != "run-1" || q.query != workflows.StatusQuery {
		t.Errorf("queried %s/%s %q, want incident:INC-1/run-1 %q", q.wfID, q.runID, q.query, workflows.StatusQuery)
	}
	if inc.ID != "INC-1" || inc.Asset != "web-1" || inc.State != workflows.StateResolved || len(inc.Steps) != 1 || len(inc.Timeline) != 1 {
		t.Fatalf("incident = %+v", inc)
	}
	if d := inc.Steps[0].Decisions; len(d) != 1 || d[0].Decision != "approved" || d[0].By != "alice" || d[0].SourceIP != "10.0.0.1" {
		t.Errorf("decisions = %+v, want alice's approval", d)
	}

	boom := errors.New("no worker")
	if _, err := incidentStatus(&fakeQuerier{err: boom})(context.Background(), "incident:INC-1", "run-1"); !errors.Is(err, boom) {
		t.Errorf("err = %v, want %v", err, boom)
	}
}

func TestIncidentLink(t *testing.T) {
	if incidentLink("") != nil {
		t.Error("a link builder without a Web UI address")
	}
	link := incidentLink("https://ui.example.org")
	if got, want := link("INC-1"), "https://ui.example.org/namespaces/default/workflows/"+workflows.IncidentWorkflowID("INC-1"); got != want {
		t.Errorf("link = %q, want %q", got, want)
	}
}
