package related

import (
	"context"
	"errors"
	"slices"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
)

// fakeVisibility answers ListWorkflow with pages of executions.
type fakeVisibility struct {
	pages   [][]*workflowpb.WorkflowExecutionInfo
	queries []string
	sizes   []int32 // the page sizes asked for
	err     error
}

func (f *fakeVisibility) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.queries = append(f.queries, req.GetQuery())
	f.sizes = append(f.sizes, req.GetPageSize())
	if f.err != nil {
		return nil, f.err
	}
	i := 0
	if len(req.GetNextPageToken()) > 0 {
		i = int(req.GetNextPageToken()[0])
	}
	resp := &workflowservice.ListWorkflowExecutionsResponse{Executions: f.pages[i]}
	if i+1 < len(f.pages) {
		resp.NextPageToken = []byte{byte(i + 1)}
	}
	return resp, nil
}

func execution(t *testing.T, id, playbook string, drill bool) *workflowpb.WorkflowExecutionInfo {
	t.Helper()
	attr := func(v any) *commonpb.Payload {
		p, err := converter.GetDefaultDataConverter().ToPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: "run-" + id},
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
			"IruPlaybook": attr(playbook), "IruDrill": attr(drill), "IruAsset": attr("web-1"),
		}},
	}
}

func newActivities(v Lister) *Activities {
	return &Activities{Temporal: v, WorkflowType: "Incident", AssetAttr: "IruAsset", PlaybookAttr: "IruPlaybook", DrillAttr: "IruDrill"}
}

// TestFind: the running incidents on the asset over every page, without
// the asking incident, drills or repeats, with their playbooks.
func TestFind(t *testing.T) {
	v := &fakeVisibility{pages: [][]*workflowpb.WorkflowExecutionInfo{
		{execution(t, "incident:self", "container-compromise", false), execution(t, "incident:ssh", "ssh-brute-force", false)},
		{execution(t, "incident:ssh", "ssh-brute-force", false), execution(t, "incident:drill", "container-compromise", true), execution(t, "incident:exfil", "data-exfiltration", false)},
	}}
	res, err := newActivities(v).Find(context.Background(), FindInput{Asset: "web-1", Self: "incident:self"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Incident{
		{WorkflowID: "incident:ssh", RunID: "run-incident:ssh", Playbook: "ssh-brute-force"},
		{WorkflowID: "incident:exfil", RunID: "run-incident:exfil", Playbook: "data-exfiltration"},
	}
	if !slices.Equal(res.Incidents, want) {
		t.Errorf("incidents = %+v, want %+v", res.Incidents, want)
	}
	wantQ := "WorkflowType = 'Incident' AND ExecutionStatus = 'Running' AND IruAsset = 'web-1'"
	if len(v.queries) != 2 || v.queries[0] != wantQ {
		t.Errorf("queries = %q, want two pages of %q", v.queries, wantQ)
	}
}

// TestFindBounded: at most MaxRelated incidents come back.
func TestFindBounded(t *testing.T) {
	var page []*workflowpb.WorkflowExecutionInfo
	for i := range MaxRelated + 5 {
		page = append(page, execution(t, "incident:"+string(rune('a'+i)), "pb", false))
	}
	v := &fakeVisibility{pages: [][]*workflowpb.WorkflowExecutionInfo{page}}
	res, err := newActivities(v).Find(context.Background(), FindInput{Asset: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != MaxRelated {
		t.Errorf("%d incidents, want %d", len(res.Incidents), MaxRelated)
	}
	// The server's cost is per row listed: no page asks for many more
	// rows than Find keeps.
	for _, n := range v.sizes {
		if n <= 0 || n > MaxRelated+2 {
			t.Errorf("page size %d asked for, want 1..%d", n, MaxRelated+2)
		}
	}
}

// TestFindRefusesInjection: an asset that would change the visibility
// query (a quote closes the string and adds a clause) is refused as bad
// input before any query; an empty asset too.
func TestFindRefusesInjection(t *testing.T) {
	for _, asset := range []string{"", "web-1' OR WorkflowType != '", `web-1\`, `web"1`} {
		v := &fakeVisibility{pages: [][]*workflowpb.WorkflowExecutionInfo{{execution(t, "incident:other", "pb", false)}}}
		_, err := newActivities(v).Find(context.Background(), FindInput{Asset: asset})
		if app, ok := errors.AsType[*temporal.ApplicationError](err); !ok || app.Type() != activities.ErrTypeBadParams || !app.NonRetryable() {
			t.Errorf("asset %q: error %v, want a final bad-params error", asset, err)
		}
		if len(v.queries) != 0 {
			t.Errorf("asset %q: queried %q", asset, v.queries)
		}
	}
}

// TestFindVisibilityDown: a visibility error is returned (retryable).
func TestFindVisibilityDown(t *testing.T) {
	_, err := newActivities(&fakeVisibility{err: errors.New("unavailable")}).Find(context.Background(), FindInput{Asset: "web-1"})
	if _, final := errors.AsType[*temporal.ApplicationError](err); err == nil || final {
		t.Errorf("error %v, want a retryable error", err)
	}
}
