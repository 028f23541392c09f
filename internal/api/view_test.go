package api

import (
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/iru-responder/responder/workflows"
)

// snakeRE is a snake_case JSON key.
var snakeRE = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// dataKeys hold objects whose keys are data (labels, step parameters and
// outputs), not field names.
var dataKeys = []string{"labels", "params", "outputs", "undo"}

// nonSnakeKeys walks a JSON document and returns the path of every object
// key that is not snake_case.
func nonSnakeKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("not JSON: %q: %v", raw, err)
	}
	var bad []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if !snakeRE.MatchString(k) {
					bad = append(bad, path+"."+k)
				}
				if !slices.Contains(dataKeys, k) {
					walk(path+"."+k, e)
				}
			}
		case []any:
			for _, e := range v {
				walk(path+"[]", e)
			}
		}
	}
	walk("", doc)
	slices.Sort(bad)
	return bad
}

// fill sets every field of the value v points to, recursively, to a
// non-zero value, so that omitempty fields show up in JSON.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString("Some Value")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	}
}

// TestViewsHaveSnakeCaseKeys: every answer type about an incident, made
// from workflow values with every field set, has snake_case keys only, and
// the walk finds the workflow's own PascalCase keys.
func TestViewsHaveSnakeCaseKeys(t *testing.T) {
	var st workflows.IncidentStatus
	fill(reflect.ValueOf(&st).Elem())
	var dec workflows.DecisionResult
	fill(reflect.ValueOf(&dec).Elem())
	for name, v := range map[string]any{
		"incident": IncidentView{ID: "k", WorkflowID: "incident:k", RunID: "r", Execution: "Running", Status: statusView(st)},
		"decision": DecisionAnswer{ID: "k", Decision: workflows.ApproveUpdate, Result: DecisionResultView{StepID: dec.StepID, Status: dec.Status, Approvals: dec.Approvals, Quorum: dec.Quorum}},
		"escalate": EscalateAnswer{ID: "k", Result: EscalationView{Level: 1, Tier: "t"}},
		"ack":      AcknowledgeAnswer{ID: "k", Result: AcknowledgementView{AcknowledgedAt: time.Now()}},
		"list":     IncidentList{Incidents: []IncidentSummary{{ID: "k", ClosedAt: new(time.Time)}}, NextPageToken: "t", Query: "q"},
		"error":    apiError{Error: "e", Code: "c", Need: []string{"ir-lead"}},
	} {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if bad := nonSnakeKeys(t, raw); len(bad) > 0 {
			t.Errorf("%s: keys not snake_case: %v", name, bad)
		}
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if bad := nonSnakeKeys(t, raw); !slices.Contains(bad, ".IncidentID") || !slices.Contains(bad, ".Steps[].Approval.Approvals[].By.Subject") {
		t.Errorf("the workflow's status has PascalCase keys, the walk found %v", bad)
	}
}

// TestStatusViewKeepsEveryValue: the view carries the status's values.
func TestStatusViewKeepsEveryValue(t *testing.T) {
	var st workflows.IncidentStatus
	fill(reflect.ValueOf(&st).Elem())
	st.Metrics.TimeToAcknowledge = 90 * time.Second
	st.Metrics.TimeToContain, st.Metrics.ContainmentPhase = time.Second, 3*time.Second
	v := statusView(st)
	s := v.Steps[0]
	a := s.Approval
	switch {
	case v.IncidentID != st.IncidentID || v.State != st.State || v.Runs != st.Runs || v.LedgerSeq != st.LedgerSeq || !v.Drill:
		t.Errorf("status = %+v", v)
	case s.ID != st.Steps[0].ID || s.Params["Some Value"] != "Some Value" || s.Compensation != st.Steps[0].Compensation:
		t.Errorf("step = %+v", s)
	case a == nil || a.Quorum != 7 || len(a.Approvals) != 1 || a.Denial == nil || a.Approvals[0].By.Subject != "Some Value" || a.Approvals[0].AMR[0] != "Some Value":
		t.Errorf("approval = %+v", a)
	case v.Metrics.TimeToAcknowledgeSeconds != 90 || len(v.Timeline) != 1 || len(v.Alerts) != 1 || v.Alerts[0].Count != 7:
		t.Errorf("metrics, timeline, alerts = %+v %+v %+v", v.Metrics, v.Timeline, v.Alerts)
	case v.Metrics.TimeToContainSeconds != 1 || v.Metrics.ContainmentPhaseSeconds != 3 || !v.Metrics.ContainmentPhaseDoneAt.Equal(st.Metrics.ContainmentPhaseDoneAt):
		t.Errorf("containment metrics = %+v", v.Metrics)
	case len(v.Compensations) != 1 || v.Compensations[0].Undo["Some Value"] != "Some Value":
		t.Errorf("compensations = %+v", v.Compensations)
	}
}

// TestStatusViewRelated: a linked incident shows with its API id, so a
// client can open it (GET /incidents/{id}), and both directions keep
// their word.
func TestStatusViewRelated(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	v := statusView(workflows.IncidentStatus{Related: []workflows.RelatedIncident{
		{WorkflowID: workflows.IncidentWorkflowID("ssh-brute-force:web-1"), Playbook: "ssh-brute-force", How: workflows.RelatedFound, At: at},
		{WorkflowID: workflows.IncidentWorkflowID("container-compromise:web-1"), IncidentID: "INC-9", Playbook: "container-compromise", How: workflows.RelatedReported, At: at},
	}})
	want := []RelatedView{
		{ID: "ssh-brute-force:web-1", WorkflowID: "incident:ssh-brute-force:web-1", Playbook: "ssh-brute-force", How: "found", At: at},
		{ID: "container-compromise:web-1", WorkflowID: "incident:container-compromise:web-1", IncidentID: "INC-9", Playbook: "container-compromise", How: "reported", At: at},
	}
	if !slices.Equal(v.Related, want) {
		t.Errorf("related = %+v, want %+v", v.Related, want)
	}
	raw, err := json.Marshal(statusView(workflows.IncidentStatus{}))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"related":\[\]`).Match(raw) {
		t.Errorf("an incident without links lacks an empty related list: %s", raw)
	}
}
