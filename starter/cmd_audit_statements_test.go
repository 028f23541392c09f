package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/ledger"
)

// approvalOf is the ledger's record of an approval with statement s.
func approvalOf(s decision.Signed) *ledger.Decision {
	return &ledger.Decision{Approvals: 1, Quorum: 1, StatementKeyID: s.KeyID, StatementSig: s.Sig, StatementPayload: s.Payload}
}

// seedDecisions appends INC-43: an opening entry, then an approval whose
// statement the HSM's decision key signed, then a closing entry; no
// checkpoint (an open incident).
func seedDecisions(t *testing.T, f *storesFixture) decision.Statement {
	t.Helper()
	ctx := context.Background()
	st, km, closeStores := f.openStores(t)
	defer closeStores()
	now := time.Now().UTC()
	stmt := decision.Statement{WorkflowID: "incident:k43", RunID: "r1", StepID: "restore", Decision: decision.Approve,
		Subject: "keycloak:iru/bob", Username: "bob", Roles: []string{"ir-lead"}, SessionID: "s", TokenID: "j", AMR: []string{"pwd", "otp"},
		Reason: "rebuild", IssuedAt: now, ExpiresAt: now.Add(decision.DefaultTTL), Nonce: "n1"}
	signed, err := decision.Sign(ctx, km.DecisionSigner(), stmt)
	if err != nil {
		t.Fatal(err)
	}
	for seq, e := range []struct {
		actor, detail string
		decision      *ledger.Decision
	}{
		{"system:workflow", "opened", nil}, {"keycloak:iru/bob", "rebuild", approvalOf(signed)}, {"system:workflow", "closed", nil},
	} {
		if _, err := st.Ledger.Append(ctx, ledger.AppendRequest{Incident: "INC-43", Seq: int64(seq + 1), Actor: e.actor, Action: "approval",
			Target: "remediation/restore", Params: map[string]int{"seq": seq}, Outcome: ledger.Outcome{Status: "ok", Detail: e.detail},
			Decision: e.decision, IdempotencyKey: fmt.Sprint("k", seq)}); err != nil {
			t.Fatal(err)
		}
	}
	return stmt
}

// rewrite replaces the decision of entry seq of INC-43 and recomputes the
// hash chain from there, as an attacker with write access to the database
// can (nothing keyed covers an open incident's chain).
func (f *storesFixture) rewrite(t *testing.T, seq int64, d *ledger.Decision) {
	t.Helper()
	ctx := context.Background()
	st, err := ledger.Open(ctx, f.cfg.Ledger)
	if err != nil {
		t.Fatal(err)
	}
	var entries []ledger.Entry
	if err := st.Entries(ctx, "INC-43", func(e ledger.Entry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	stmts := []string{"DROP TRIGGER ledger_entries_no_update"}
	var prev ledger.Digest
	for _, e := range entries {
		if e.Seq == seq {
			e.Decision = d
		}
		e.PrevHash = prev
		e.Hash = e.ComputeHash()
		prev = e.Hash
		col := "NULL"
		if e.Decision != nil {
			b, err := json.Marshal(e.Decision)
			if err != nil {
				t.Fatal(err)
			}
			col = "'" + strings.ReplaceAll(string(b), "'", "''") + "'"
		}
		stmts = append(stmts, fmt.Sprintf("UPDATE ledger_entries SET decision = %s, prev_hash = x'%s', hash = x'%s' WHERE incident_id = 'INC-43' AND seq = %d",
			col, e.PrevHash, e.Hash, e.Seq))
	}
	f.tamper(t, stmts...)
}

// TestAuditVerifyStatements: audit verify re-verifies every stored
// decision statement and names the first bad one, even when the attacker
// recomputed the hash chain so that it still links.
func TestAuditVerifyStatements(t *testing.T) {
	attacker, err := decision.NewLocalSigner()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		forge func(t *testing.T, stmt decision.Statement, orig *ledger.Decision) *ledger.Decision
		code  int
		want  string
	}{
		{name: "intact", want: "1 decision statements verified"},
		{name: "roles rewritten in the stored statement", code: 1, want: "first bad decision statement: seq 2 (approval): decision: signature does not verify",
			forge: func(t *testing.T, stmt decision.Statement, orig *ledger.Decision) *ledger.Decision {
				if !orig.HasStatement() {
					t.Fatalf("stored decision %+v has no statement", orig)
				}
				stmt.Roles = []string{"ir-admin"}
				forged := *orig
				var err error
				if forged.StatementPayload, err = stmt.Encode(); err != nil {
					t.Fatal(err)
				}
				return &forged
			}},
		{name: "statement signed by another key", code: 1, want: "first bad decision statement: seq 2 (approval): decision: unknown key",
			forge: func(t *testing.T, stmt decision.Statement, _ *ledger.Decision) *ledger.Decision {
				s, err := decision.Sign(context.Background(), attacker, stmt)
				if err != nil {
					t.Fatal(err)
				}
				return approvalOf(s)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newStoresFixture(t)
			stmt := seedDecisions(t, f)
			if tc.forge != nil {
				f.rewrite(t, 2, tc.forge(t, stmt, f.decision(t, 2)))
			}
			out, err := runCLI(t, "audit", "verify", "INC-43")
			wantExit(t, err, tc.code, out)
			if !strings.Contains(out, tc.want) {
				t.Errorf("output %q lacks %q", out, tc.want)
			}
			if tc.forge != nil && strings.Contains(out, "first broken entry") {
				t.Errorf("the recomputed chain should still link (the statement check is what catches it): %s", out)
			}
		})
	}
}

// decision reads the stored decision of entry seq of INC-43.
func (f *storesFixture) decision(t *testing.T, seq int64) *ledger.Decision {
	t.Helper()
	ctx := context.Background()
	st, err := ledger.Open(ctx, f.cfg.Ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	var d *ledger.Decision
	if err := st.Entries(ctx, "INC-43", func(e ledger.Entry) error {
		if e.Seq == seq {
			d = e.Decision
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDecisionKeyExport: the exported PEM parses as a key set holding the
// HSM's decision key with the window asked for.
func TestDecisionKeyExport(t *testing.T) {
	f := newStoresFixture(t)
	out, err := runCLI(t, "keys", "decision-key", "--not-after", "2027-01-01T00:00:00Z")
	wantExit(t, err, 0, out)
	ks, err := decision.ParsePEM([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	km, err := keys.Open(f.kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = km.Close() }()
	if len(ks.Keys) != 1 || ks.Keys[0].ID != km.DecisionKey(time.Time{}).ID || ks.Keys[0].NotAfter.Year() != 2027 {
		t.Errorf("exported keys = %+v", ks.Keys)
	}
}
