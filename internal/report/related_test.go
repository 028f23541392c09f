package report

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
)

// TestRelatedIncidents: the related entries of the ledger become the
// report's related incidents (one per incident; a later entry adds the
// incident id), in Markdown and JSON.
func TestRelatedIncidents(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	link := func(how, id string) activities.LedgerAppendInput {
		return activities.LedgerAppendInput{Kind: kindRelated, Actor: "workflow", Outcome: how,
			Related: &activities.LedgerRelated{WorkflowID: "incident:ssh-brute-force:web-1", IncidentID: id, Playbook: "ssh-brute-force", How: how}}
	}
	later := activities.LedgerAppendInput{Kind: kindRelated, Actor: "workflow", Outcome: relatedReported,
		Related: &activities.LedgerRelated{WorkflowID: "incident:container-compromise:web-1", IncidentID: "INC-9", Playbook: "container-compromise", How: relatedReported}}
	tests := []struct {
		name    string
		entries []activities.LedgerAppendInput
		want    []Related
		md      []string
	}{
		{"none", nil, []Related{}, []string{"No other incident was open on the asset."}},
		{"found, then named", []activities.LedgerAppendInput{link("found", ""), link("found", "INC-3")},
			[]Related{{WorkflowID: "incident:ssh-brute-force:web-1", IncidentID: "INC-3", Playbook: "ssh-brute-force", How: "found", At: t0.Add(time.Second)}},
			[]string{"| INC-3 | `incident:ssh-brute-force:web-1` | ssh-brute-force | open on the asset when this incident opened |"}},
		{"both ways", []activities.LedgerAppendInput{link("found", ""), later},
			[]Related{
				{WorkflowID: "incident:ssh-brute-force:web-1", Playbook: "ssh-brute-force", How: "found", At: t0.Add(time.Second)},
				{WorkflowID: "incident:container-compromise:web-1", IncidentID: "INC-9", Playbook: "container-compromise", How: relatedReported, At: t0.Add(2 * time.Second)},
			},
			[]string{"| — | `incident:ssh-brute-force:web-1` |", "| INC-9 | `incident:container-compromise:web-1` | container-compromise | opened on the asset later |"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc, err := FromLedger(chain(t, t0, tt.entries...))
			if err != nil {
				t.Fatal(err)
			}
			r := Build(Input{Incident: inc})
			got, _ := json.Marshal(r.Related)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("related = %s, want %s", got, want)
			}
			js, err := JSON(r)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(js), `"related": [`) {
				t.Errorf("JSON lacks the related list:\n%s", js)
			}
			md := string(Markdown(r))
			if !strings.Contains(md, "## Related incidents") {
				t.Error("Markdown lacks the related incidents section")
			}
			for _, line := range tt.md {
				if !strings.Contains(md, line) {
					t.Errorf("Markdown lacks %q:\n%s", line, md)
				}
			}
		})
	}
}
