package platform

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"

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

// TestLedgerAppendRerun: a local activity may run again after the workflow
// task that ran it was lost (worker crash), with a later workflow time. The
// second append must find the first, not conflict with it.
func TestLedgerAppendRerun(t *testing.T) {
	ctx := context.Background()
	st, err := ledger.OpenSQLite(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &Activities{Ledger: ledger.New(st, nil)}
	in := activities.LedgerAppendInput{IncidentID: "INC-1", Seq: 1, At: time.Unix(1700000000, 0), Kind: "incident_opened", Actor: "workflow", Outcome: "opened"}
	first, err := a.LedgerAppend(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	in.At = in.At.Add(7 * time.Second) // the re-run's workflow time
	again, err := a.LedgerAppend(ctx, in)
	if err != nil || again.Hash != first.Hash {
		t.Fatalf("re-run: %+v, %v; want the first entry %s", again, err, first.Hash)
	}
	in.Outcome = "failed" // a different entry at the same seq is a conflict
	if _, err := a.LedgerAppend(ctx, in); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Fatalf("conflicting entry: err = %v", err)
	}
}
