package platform

import (
	"testing"

	"github.com/iru-responder/responder/internal/ledger"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		in   string
		want ledger.Status
	}{
		{"", ledger.StatusOK},
		{"succeeded", ledger.StatusOK},
		{"approved 1/1", ledger.StatusOK},
		{"3 new", ledger.StatusOK},
		{"denied", ledger.StatusDenied},
		{"failed", ledger.StatusFailed},
		{"escalated_failed", ledger.StatusFailed},
		{"skipped", ledger.StatusSkipped},
		{"compensated", ledger.Status("compensated")},
		{"Weird-Thing!", ledger.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := status(tt.in); got != tt.want {
				t.Errorf("status(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestActor(t *testing.T) {
	for in, want := range map[string]string{"": "system:workflow", "workflow": "system:workflow", "keycloak:iru/bob": "keycloak:iru/bob", "system:intake": "system:intake"} {
		if got := actor(in); got != want {
			t.Errorf("actor(%q) = %q, want %q", in, got, want)
		}
	}
}
