package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/api"
)

// TestPrintIncidentRelated: `starter incident show` lists the linked
// incidents with the id to show them by and how they came to be linked.
func TestPrintIncidentRelated(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	v := api.IncidentView{ID: "container-compromise:web-1", Status: api.StatusView{IncidentID: "INC-9", Asset: "web-1", Related: []api.RelatedView{
		{ID: "ssh-brute-force:web-1", WorkflowID: "incident:ssh-brute-force:web-1", Playbook: "ssh-brute-force", How: "found", At: at},
		{ID: "lateral:web-1", WorkflowID: "incident:lateral:web-1", IncidentID: "INC-12", Playbook: "lateral", How: "reported", At: at},
	}}}
	var out bytes.Buffer
	if err := printIncident(&out, v); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Related:   ssh-brute-force:web-1 (ssh-brute-force), open on the asset when this one opened",
		"Related:   INC-12 lateral:web-1 (lateral), opened on the asset later",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
