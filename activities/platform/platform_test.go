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
	st := sqliteStore(t)
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

// TestLedgerAppendStatus: the ledger stores the status the workflow sends,
// whatever the outcome's wording; no status is ok.
func TestLedgerAppendStatus(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t)
	a := &Activities{Ledger: ledger.New(st, nil)}
	tests := []struct {
		outcome string
		status  activities.LedgerStatus
		want    ledger.Status
	}{
		{"3 new", "", ledger.StatusOK},
		{"failed", "", ledger.StatusOK}, // the wording alone decides nothing
		{"succeeded", activities.LedgerFailed, ledger.StatusFailed},
		{"denied", activities.LedgerDenied, ledger.StatusDenied},
		{"compensated", "compensated", ledger.Status("compensated")},
	}
	for i, tt := range tests {
		in := activities.LedgerAppendInput{IncidentID: "INC-1", Seq: int64(i + 1), At: time.Unix(1700000000, 0), Kind: "step", Actor: "workflow",
			Outcome: tt.outcome, Status: tt.status}
		if _, err := a.LedgerAppend(ctx, in); err != nil {
			t.Fatalf("append %d: %v", i+1, err)
		}
	}
	var got []ledger.Status
	if err := st.Entries(ctx, "INC-1", func(e ledger.Entry) error { got = append(got, e.Outcome.Status); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(tests) {
		t.Fatalf("%d entries, want %d", len(got), len(tests))
	}
	for i, tt := range tests {
		if got[i] != tt.want {
			t.Errorf("entry %d (outcome %q, status %q): stored %q, want %q", i+1, tt.outcome, tt.status, got[i], tt.want)
		}
	}
}

// sqliteStore is a ledger store in a new SQLite file, closed when t ends.
func sqliteStore(t *testing.T) *ledger.SQLiteStore {
	t.Helper()
	st, err := ledger.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}
