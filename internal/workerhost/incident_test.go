package workerhost

import (
	"encoding/json"
	"testing"

	"github.com/iru-responder/responder/workflows"
)

// jsonValue is a query result held as JSON.
type jsonValue []byte

func (v jsonValue) HasValue() bool    { return len(v) > 0 }
func (v jsonValue) Get(ptr any) error { return json.Unmarshal(v, ptr) }

func TestIncidentLink(t *testing.T) {
	if incidentLink("") != nil {
		t.Error("a link builder without a Web UI address")
	}
	link := incidentLink("https://ui.example.org")
	if got, want := link("INC-1"), "https://ui.example.org/namespaces/default/workflows/"+workflows.IncidentWorkflowID("INC-1"); got != want {
		t.Errorf("link = %q, want %q", got, want)
	}
}
