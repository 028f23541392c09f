//go:build integration

package api

import (
	"net/http"
	"slices"
	"testing"

	"github.com/iru-responder/responder/workflows"
)

// TestRerouteRefusals: POST /reroute needs a lead or admin (checked by the
// route and again by the workflow's validator), an asset and a reason, and
// an unknown-asset triage; every refusal leaves the incident open.
func TestRerouteRefusals(t *testing.T) {
	s := newStack(t)
	alice, carol := login(t, s.kc, "alice"), login(t, s.kc, "carol")
	triage := workflows.UnknownAssetPlaybook + ":ghost-api"
	s.startPlaybook(triage, workflows.UnknownAssetPlaybook, map[string]string{"iru.unmapped": "true", workflows.RoutedPlaybookLabel: "container-compromise"})
	other := s.start("container-compromise:web-01-reroute", "detector:falco/key-1")
	s.waitStatus(alice, triage, "the triage to wait", func(v IncidentView) bool { return v.Status.Phase != "" })
	s.waitStatus(alice, other.Key, "the incident to start", func(v IncidentView) bool { return v.Status.Phase != "" })

	tests := []struct {
		name  string
		id    string
		token string
		body  map[string]string
		code  int
		error string
	}{
		{"responder without the role", triage, alice, map[string]string{"asset": "web-01", "reason": "mine"}, http.StatusForbidden, "forbidden"},
		{"no asset", triage, carol, map[string]string{"reason": "why"}, http.StatusBadRequest, ""},
		{"no reason", triage, carol, map[string]string{"asset": "web-01"}, http.StatusBadRequest, ""},
		{"not a triage", other.Key, carol, map[string]string{"asset": "web-02", "reason": "move"}, http.StatusConflict, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e apiError
			code, raw := s.call("POST", "/api/v1/incidents/"+tt.id+"/reroute", tt.token, tt.body, &e)
			if code != tt.code || (tt.error != "" && e.Error != tt.error) {
				t.Fatalf("status %d %s, want %d", code, raw, tt.code)
			}
			if tt.code == http.StatusForbidden && !slices.Equal(e.Need, []string{"ir-lead", "ir-admin"}) {
				t.Errorf("need %v", e.Need)
			}
			if tt.code == http.StatusConflict && e.Code != "not_triage" {
				t.Errorf("code %q, want not_triage", e.Code)
			}
		})
	}
	for _, id := range []string{triage, other.Key} {
		var v IncidentView
		if code, raw := s.call("GET", "/api/v1/incidents/"+id, alice, nil, &v); code != http.StatusOK || v.Status.State != workflows.StateOpen {
			t.Errorf("%s after the refusals: %d %s", id, code, raw)
		}
	}
}
