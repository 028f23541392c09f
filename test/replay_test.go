package test

import (
	"path/filepath"
	"strings"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/iru-responder/responder/workflows"
)

func historyFromIterator(it client.HistoryEventIterator) ([]byte, error) {
	var h historypb.History
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, err
		}
		h.Events = append(h.Events, e)
	}
	return protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(&h)
}

// TestReplayRecordedHistories replays the committed histories of full
// playbook runs against the current workflow code: a change that is not
// deterministic (without workflow.GetVersion) fails here. Record new ones
// with IRU_RECORD_HISTORIES=1 go test -run EndToEnd ./test/.
func TestReplayRecordedHistories(t *testing.T) {
	// The current recordings, and older ones (v0/: before the ledger went
	// to local activities) that running incidents may still have.
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	older, err := filepath.Glob(filepath.Join("testdata", "histories", "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, older...)
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata/histories")
	}
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, filepath.Join("testdata", "histories")+"/"), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Incident, workflow.RegisterOptions{Name: workflows.IncidentWorkflow})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
