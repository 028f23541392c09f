package workerhost

import (
	"context"
	"encoding/json"
	"testing"

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

func TestIncidentLink(t *testing.T) {
	if incidentLink("") != nil {
		t.Error("a link builder without a Web UI address")
	}
	link := incidentLink("https://ui.example.org")
	if got, want := link("INC-1"), "https://ui.example.org/namespaces/default/workflows/"+workflows.IncidentWorkflowID("INC-1"); got != want {
		t.Errorf("link = %q, want %q", got, want)
	}
}
