package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities/housekeeping"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
	"github.com/iru-responder/responder/workflows"
)

// signDay writes three access-log entries to the chain of day and, when
// sign is set, runs the daily signing activity for it, on the fixture's
// stores (closed again before the CLI opens them).
func (f *storesFixture) signDay(t *testing.T, day time.Time, sign bool) string {
	t.Helper()
	ctx := context.Background()
	st, _, closeStores := f.openStores(t)
	defer closeStores()
	chain := accesslog.Chain(day)
	for i := range 3 {
		at := day.Add(time.Duration(i) * time.Hour)
		if _, err := housekeeping.AppendNext(ctx, st.Ledger, ledger.AppendRequest{Incident: chain, Time: at, Actor: "detector:falco/key-1",
			Action: accesslog.ActionAuthSuccess, Target: "POST /v1/alerts/falco", Params: i, Outcome: ledger.Outcome{Status: ledger.StatusOK},
			IdempotencyKey: fmt.Sprintf("access/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if sign {
		acts := &housekeeping.Activities{Ledger: st.Ledger, Signer: st.Signer, Evidence: st.Evidence}
		env := activitytest.New(nil)
		env.RegisterActivityWithOptions(acts.SignDailyChains, activity.RegisterOptions{Name: workflows.SignDailyChainsActivity})
		env.RegisterActivityWithOptions(acts.SweepEvidence, activity.RegisterOptions{Name: workflows.SweepEvidenceActivity})
		res, err := activitytest.Run[housekeeping.SignDailyChainsResult](env, workflows.SignDailyChainsActivity,
			housekeeping.SignDailyChainsInput{Day: day.Format(time.DateOnly)})
		if err != nil || len(res.Chains) != 1 || res.Chains[0].Seq != 3 {
			t.Fatalf("SignDailyChains = %+v, %v", res, err)
		}
	}
	return chain
}

// TestAuditVerifyDailyChain: `starter audit verify access:<day>` on a day
// the checkpoint activity signed reports the signed checkpoint, and names
// a changed entry, a forged checkpoint and a removed tail entry (which
// the unsigned chain could not show).
func TestAuditVerifyDailyChain(t *testing.T) {
	day := time.Now().UTC().AddDate(0, 0, -2).Truncate(24 * time.Hour)
	t.Run("unsigned day", func(t *testing.T) {
		f := newStoresFixture(t)
		chain := f.signDay(t, day, false)
		out, err := runCLI(t, "audit", "verify", chain)
		wantExit(t, err, 0, out)
		if !strings.Contains(out, "0 checkpoints") || !strings.Contains(out, "entries 1 to 3 are chained but not yet covered") {
			t.Errorf("output %q", out)
		}
		// Without a checkpoint, removing the last entry goes unnoticed.
		f.tamper(t, "DROP TRIGGER ledger_entries_no_delete", fmt.Sprintf("DELETE FROM ledger_entries WHERE incident_id = '%s' AND seq = 3", chain))
		out, err = runCLI(t, "audit", "verify", chain)
		wantExit(t, err, 0, out)
	})
	for _, tc := range []struct {
		name   string
		tamper []string
		code   int
		want   string
	}{
		{name: "signed", want: "3 entries, head seq 3 hash"},
		{name: "entry changed", tamper: []string{"DROP TRIGGER ledger_entries_no_update",
			"UPDATE ledger_entries SET actor = 'anonymous:203.0.113.9' WHERE incident_id = '%s' AND seq = 2"},
			code: 1, want: "first broken entry: seq 2 (hash_mismatch)"},
		{name: "last entry removed", tamper: []string{"DROP TRIGGER ledger_entries_no_delete",
			"DELETE FROM ledger_entries WHERE incident_id = '%s' AND seq = 3"},
			code: 1, want: "first broken entry: seq 3 (checkpoint_mismatch)"},
		{name: "checkpoint forged", tamper: []string{"DROP TRIGGER ledger_checkpoints_no_update",
			"UPDATE ledger_checkpoints SET signature = zeroblob(length(signature)) WHERE incident_id = '%s'"},
			code: 1, want: "first broken entry: seq 3 (bad_signature)"},
		{name: "checkpoint moved to another head", tamper: []string{"DROP TRIGGER ledger_checkpoints_no_update",
			"UPDATE ledger_checkpoints SET seq = 2 WHERE incident_id = '%s'"},
			code: 1, want: "(bad_signature)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newStoresFixture(t)
			chain := f.signDay(t, day, true)
			for _, s := range tc.tamper {
				if strings.Contains(s, "%s") {
					s = fmt.Sprintf(s, chain)
				}
				f.tamper(t, s)
			}
			out, err := runCLI(t, "audit", "verify", chain)
			wantExit(t, err, tc.code, out)
			if !strings.Contains(out, tc.want) {
				t.Errorf("output %q lacks %q", out, tc.want)
			}
			if tc.code == 0 && !strings.Contains(out, "1 checkpoints, signed up to seq 3") {
				t.Errorf("output %q does not report the signed checkpoint", out)
			}
		})
	}
}

// TestEvidenceSweepDryRun: the dry run lists what a sweep would destroy
// (nothing now, both objects once their retention ended) and changes
// nothing: the custody log and the objects stay as they were.
func TestEvidenceSweepDryRun(t *testing.T) {
	f := newStoresFixture(t)
	before := f.manifest(t)
	out, err := runCLI(t, "evidence", "sweep", "--dry-run")
	wantExit(t, err, 0, out)
	if !strings.Contains(out, "0 object(s) would destroy") {
		t.Errorf("dry run now: %q", out)
	}
	later := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339) // the fixture's retention is 1 h
	out, err = runCLI(t, "evidence", "sweep", "--dry-run", "--as-of", later)
	wantExit(t, err, 0, out)
	for _, ref := range f.refs {
		if !strings.Contains(out, "would destroy "+string(ref)) {
			t.Errorf("dry run output lacks %s:\n%s", ref, out)
		}
	}
	if !strings.Contains(out, "2 object(s) would destroy") || !strings.Contains(out, "nothing changed") {
		t.Errorf("dry run output:\n%s", out)
	}
	if after := f.manifest(t); len(after.Events) != len(before.Events) || after.Head != before.Head {
		t.Errorf("the dry run changed the custody log: %d → %d events", len(before.Events), len(after.Events))
	}
	out, err = runCLI(t, "evidence", "verify", f.incident)
	wantExit(t, err, 0, out)
	if !strings.Contains(out, "2 objects") {
		t.Errorf("after the dry run: %q", out)
	}
	out, err = runCLI(t, "evidence", "sweep", "--as-of", later)
	wantExit(t, err, 2, out)
}
