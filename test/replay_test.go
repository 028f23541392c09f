package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/workflows"
)

// TestReplayRecordedHistories replays the committed histories of full
// playbook runs against the current workflow code: a change that is not
// deterministic (without workflow.GetVersion) fails here. Record new ones
// with IRU_RECORD_HISTORIES=1 go test -tags integration -run EndToEnd ./test/.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata/histories")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Incident, workflow.RegisterOptions{Name: workflows.IncidentWorkflow})
			r.RegisterWorkflowWithOptions(workflows.Controls, workflow.RegisterOptions{Name: workflows.ControlsWorkflow})
			if err := r.ReplayWorkflowHistoryWithOptions(nil, readHistory(t, f), worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: originalExecution(t, f),
			}); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}

// readHistory reads a history recorded as JSON.
func readHistory(t *testing.T, file string) *historypb.History {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return h
}

// originalExecution is the recorded run's workflow id (from the .wfid file
// beside the history) and first run id: decision statements are bound to
// both, so a replay under another id would refuse the recorded decisions.
func originalExecution(t *testing.T, file string) workflow.Execution {
	t.Helper()
	id, err := os.ReadFile(strings.TrimSuffix(file, ".json") + ".wfid")
	if err != nil {
		t.Fatalf("the workflow id of %s: %v (record histories with IRU_RECORD_HISTORIES=1)", file, err)
	}
	h := readHistory(t, file)
	start := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
	return workflow.Execution{ID: strings.TrimSpace(string(id)), RunID: start.GetFirstExecutionRunId()}
}
