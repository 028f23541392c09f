package platform

import (
	"encoding/base64"
	"testing"

	"github.com/iru-responder/responder/activities"
)

// TestLedgerDecision: the approval count and the signed statement the
// workflow passes become the entry's decision fields.
func TestLedgerDecision(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	stmt := map[string]string{"statement": b64([]byte(`{"sub":"alice"}`)), "statement_key": "dk-1", "statement_sig": b64([]byte{1, 2, 3})}
	for _, tc := range []struct {
		name            string
		in              activities.LedgerAppendInput
		none, fails     bool
		approvals, keyN int
	}{
		{name: "no decision", in: activities.LedgerAppendInput{Kind: "step", Outcome: "succeeded"}, none: true},
		{name: "approval with statement", in: activities.LedgerAppendInput{Kind: "approval", Outcome: "approved", Approvals: 1, Quorum: 2, Detail: stmt}, approvals: 1, keyN: 4},
		{name: "denial with statement", in: activities.LedgerAppendInput{Kind: "denial", Outcome: "denied", Detail: stmt}, keyN: 4},
		{name: "approval count only", in: activities.LedgerAppendInput{Kind: "approval", Outcome: "auto_approved", Approvals: 1, Quorum: 1}, approvals: 1},
		{name: "statement not base64", in: activities.LedgerAppendInput{Kind: "approval", Detail: map[string]string{"statement": "%%%"}}, fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ledgerDecision(tc.in)
			switch {
			case tc.fails:
				if err == nil {
					t.Fatalf("decision = %+v, want an error", d)
				}
			case err != nil:
				t.Fatal(err)
			case tc.none:
				if d != nil {
					t.Fatalf("decision = %+v, want none", d)
				}
			case d == nil || d.Approvals != tc.approvals || d.Quorum != tc.in.Quorum || len(d.StatementKeyID) != tc.keyN:
				t.Fatalf("decision = %+v", d)
			case tc.keyN > 0 && (string(d.StatementPayload) != `{"sub":"alice"}` || string(d.StatementSig) != "\x01\x02\x03"):
				t.Fatalf("statement = %q %x", d.StatementPayload, d.StatementSig)
			}
		})
	}
}
