//go:build integration

package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// ledgerRows returns the entries of chain whose action has prefix.
func ledgerRows(t *testing.T, p *testplatform.Platform, chain, prefix string) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	_ = p.Host.Stores().Ledger.Store().Entries(context.Background(), chain, func(e ledger.Entry) error {
		if strings.HasPrefix(e.Action, prefix) {
			out = append(out, e)
		}
		return nil
	})
	return out
}

// waitRows polls until chain holds at least n rows with action prefix.
func waitRows(t *testing.T, p *testplatform.Platform, chain, prefix string, n int) []ledger.Entry {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows := ledgerRows(t, p, chain, prefix)
		if len(rows) >= n || time.Now().After(deadline) {
			return rows
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sign signs st with the test API server key, bound to wfID's first run
// unless st names a run.
func sign(t *testing.T, p *testplatform.Platform, wfID string, st decision.Statement) decision.Signed {
	t.Helper()
	if st.RunID == "" {
		run, err := testplatform.FirstRunID(p.Client, wfID)
		if err != nil {
			t.Fatal(err)
		}
		st.RunID = run
	}
	if st.WorkflowID == "" {
		st.WorkflowID = wfID
	}
	if st.Nonce == "" {
		st.Nonce = decision.NewNonce()
	}
	if st.IssuedAt.IsZero() {
		st.IssuedAt = time.Now().UTC()
		st.ExpiresAt = st.IssuedAt.Add(decision.DefaultTTL)
	}
	s, err := decision.Sign(context.Background(), testplatform.DecisionSigner(), st)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stmtBy(who workflows.Approver, kind decision.Kind, step string, amr ...string) decision.Statement {
	if amr == nil {
		amr = []string{"pwd", "otp"}
	}
	return decision.Statement{StepID: step, Decision: kind, Subject: who.Subject, Username: who.Username, Roles: who.Roles,
		SourceIP: who.SourceIP, SessionID: "sid-" + who.Username, TokenID: "jti-" + who.Username, AMR: amr, Reason: "attack test"}
}

func update(c client.Client, wfID, name string, arg any) error {
	h, err := c.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{WorkflowID: wfID, UpdateName: name,
		WaitForStage: client.WorkflowUpdateStageCompleted, Args: []any{arg}})
	if err != nil {
		return err
	}
	return h.Get(context.Background(), nil)
}

// wantRefused checks err is a refusal containing want ("" : any refusal;
// a plain client cannot even read the worker's encrypted failure).
func wantStatementRefused(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: err = %v, want a refusal containing %q", what, err, want)
	}
}

// TestForgedDecisions performs, on the chosen target (the dev server, or the
// cluster with IRU_TEST_TARGET=cluster, where the platform client holds the
// API server's own Temporal credentials) against the
// lab, the forged-decision and hostile-input attacks on a credential-compromise incident
// about bob (an ir-lead), whose account containment disabled:
//   - a plain Temporal client (no payload key) sends an approve Update, an
//     approval signal and an abort signal as a made-up ir-lead: refused,
//     each recorded in the ledger's security chain;
//   - a client holding the platform's Temporal credentials and payload key
//     sends the same with no statement, a statement signed by its own key,
//     a statement replayed from another step or another incident run, an
//     expired statement, alice's statement with ir-lead written into the
//     message: every Update refused (and recorded by the worker), every
//     signal refused (and recorded by the workflow);
//   - bob, the incident's subject, tries to abort it: refused, his account
//     stays disabled;
//   - carol approves the risk: high step with a statement lacking otp:
//     refused; with otp: the step runs and bob's account is enabled again.
//
// Until the genuine approval the step waits and bob's account stays disabled.
func TestForgedDecisions(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	ctx := context.Background()
	start := func(key string) string {
		in := workflows.IncidentInput{IncidentID: "INC-" + strings.ReplaceAll(key, ":", "-"), Key: key, Asset: "api-gateway", Severity: "high",
			Playbook: "credential-compromise", OpenedBy: "detector:siem",
			Alerts: []workflows.Alert{{ID: key, Fingerprint: key, Source: "siem", Rule: "impossible travel", Severity: "high",
				Asset: "api-gateway", Summary: "bob logged in from two continents", Labels: map[string]string{"realm": keycloak.Realm, "username": "bob"},
				ReceivedAt: time.Now()}},
		}
		wfID := workflows.IncidentWorkflowID(in.Key)
		if _, err := p.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wfID, TaskQueue: p.TaskQueue}, workflows.IncidentWorkflow, in); err != nil {
			t.Fatal(err)
		}
		return wfID
	}
	wfID := start("cred:bob-1")
	other := start("cred:bob-2")
	// bob holds ir-lead: acting on his account needs two ir-admins
	// (protected accounts, test/hostile_protect_test.go).
	for _, id := range []string{wfID, other} {
		for _, step := range []string{"disable", "logout"} {
			testplatform.WaitStep(t, p.Client, id, step, workflows.StepWaitingApproval, 60*time.Second)
			for _, admin := range []workflows.Approver{testplatform.Carol, protectDave} {
				if _, err := testplatform.Decide(p.Client, id, workflows.ApproveUpdate, step, admin); err != nil {
					t.Fatalf("%s approves %s on %s: %v", admin.Username, step, id, err)
				}
			}
		}
	}
	testplatform.WaitStep(t, p.Client, wfID, "enable", workflows.StepWaitingApproval, 60*time.Second)
	testplatform.WaitStep(t, p.Client, other, "enable", workflows.StepWaitingApproval, 60*time.Second)
	if on, err := p.Lab.Keycloak.UserEnabled(keycloak.Realm, "bob"); err != nil || on {
		t.Fatalf("bob enabled=%v (%v) after containment, want disabled", on, err)
	}
	mallory := workflows.Approver{Subject: "keycloak:iru/mallory", Username: "mallory", Roles: []string{"ir-lead", "ir-admin"}}
	security := accesslog.Chain(time.Now())

	// 1. A plain client: no payload key.
	plain := testenv.Client(t, client.Options{})
	wantStatementRefused(t, "plain approve update", update(plain, wfID, workflows.ApproveUpdate,
		workflows.DecisionInput{StepID: "enable", Approver: mallory, Reason: "ok"}), "")
	if err := plain.SignalWorkflow(ctx, wfID, "", workflows.ApprovalSignal, workflows.ApprovalSignalInput{StepID: "enable", Approver: mallory, Approve: true}); err != nil {
		t.Fatal(err)
	}
	if err := plain.SignalWorkflow(ctx, wfID, "", workflows.AbortSignal, workflows.AbortInput{By: mallory, Reason: "stop"}); err != nil {
		t.Fatal(err)
	}
	if rows := waitRows(t, p, security, "payload.refused", 3); len(rows) < 3 {
		t.Errorf("%d payload.refused rows in %s, want 3 (update, approval signal, abort signal)", len(rows), security)
	}

	// 2. The platform's own credentials and payload key, forged statements.
	attacker, err := decision.NewLocalSigner()
	if err != nil {
		t.Fatal(err)
	}
	forgedStmt := stmtBy(mallory, decision.Approve, "enable")
	forgedStmt.WorkflowID, forgedStmt.RunID, forgedStmt.Nonce = wfID, "x", "n"
	forgedStmt.IssuedAt, forgedStmt.ExpiresAt = time.Now(), time.Now().Add(time.Minute)
	forged, err := decision.Sign(ctx, attacker, forgedStmt)
	if err != nil {
		t.Fatal(err)
	}
	carol := testplatform.Carol
	otherStep := sign(t, p, wfID, stmtBy(carol, decision.Approve, "revoke_realm"))
	otherRun := sign(t, p, other, stmtBy(carol, decision.Approve, "enable"))
	expiredStmt := stmtBy(carol, decision.Approve, "enable")
	expiredStmt.IssuedAt, expiredStmt.ExpiresAt = time.Now().Add(-10*time.Minute), time.Now().Add(-5*time.Minute)
	aliceAsLead := testplatform.Alice
	aliceAsLead.Roles = []string{"ir-responder", "ir-lead"}
	noOTP := sign(t, p, wfID, stmtBy(carol, decision.Approve, "enable", "pwd"))
	for _, c := range []struct {
		name string
		in   workflows.DecisionInput
		want string
	}{
		{"no statement", workflows.DecisionInput{StepID: "enable", Approver: mallory}, decision.ErrMissing.Error()},
		{"attacker's key", workflows.DecisionInput{StepID: "enable", Approver: mallory, Statement: forged}, decision.ErrUnknownKey.Error()},
		{"another step's statement", workflows.DecisionInput{StepID: "enable", Statement: otherStep}, decision.ErrMisbound.Error()},
		{"another incident's statement", workflows.DecisionInput{StepID: "enable", Statement: otherRun}, decision.ErrMisbound.Error()},
		{"expired", workflows.DecisionInput{StepID: "enable", Statement: sign(t, p, wfID, expiredStmt)}, decision.ErrExpired.Error()},
		{"alice writes ir-lead", workflows.DecisionInput{StepID: "enable", Approver: aliceAsLead,
			Statement: sign(t, p, wfID, stmtBy(testplatform.Alice, decision.Approve, "enable"))}, "decision statement refused"},
		{"bob, the subject", workflows.DecisionInput{StepID: "enable", Statement: sign(t, p, wfID, stmtBy(testplatform.Bob, decision.Approve, "enable"))}, "the incident's subject cannot decide on it"},
		{"risk high without otp", workflows.DecisionInput{StepID: "enable", Statement: noOTP}, "a second authentication factor (otp) is required"},
	} {
		wantStatementRefused(t, c.name, update(p.Client, wfID, workflows.ApproveUpdate, c.in), c.want)
	}
	if rows := waitRows(t, p, security, "decision.refused", 8); len(rows) < 8 {
		t.Errorf("%d decision.refused rows, want 8", len(rows))
	} else if !strings.Contains(rows[0].Outcome.Detail, "claimed=mallory") || rows[0].Actor != mallory.Subject {
		t.Errorf("first refusal row = %+v", rows[0])
	}
	// Signals with forged statements, and the subject's abort.
	if err := p.Client.SignalWorkflow(ctx, wfID, "", workflows.ApprovalSignal, workflows.ApprovalSignalInput{StepID: "enable", Approver: mallory, Approve: true, Statement: forged}); err != nil {
		t.Fatal(err)
	}
	if err := p.Client.SignalWorkflow(ctx, wfID, "", workflows.AbortSignal, workflows.AbortInput{By: testplatform.Bob, Reason: "mine",
		Statement: sign(t, p, wfID, stmtBy(testplatform.Bob, decision.Abort, ""))}); err != nil {
		t.Fatal(err)
	}
	incidentID := "INC-cred-bob-1"
	rej := waitRows(t, p, incidentID, "decision_rejected", 2)
	if len(rej) != 2 || !strings.Contains(rej[0].Outcome.Detail, decision.ErrUnknownKey.Error()) || !strings.Contains(rej[1].Outcome.Detail, "the incident's subject cannot decide on it") {
		t.Errorf("refused signals in the incident's chain = %+v", rej)
	}
	st := testplatform.WaitStep(t, p.Client, wfID, "enable", workflows.StepWaitingApproval, 10*time.Second)
	if st.State != workflows.StateOpen {
		t.Fatalf("incident %s after the attacks", st.State)
	}
	if on, _ := p.Lab.Keycloak.UserEnabled(keycloak.Realm, "bob"); on {
		t.Fatal("bob's account was re-enabled by a refused decision")
	}

	// The genuine approval, with a second factor.
	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "enable", carol); err != nil {
		t.Fatalf("carol's approval: %v", err)
	}
	testplatform.WaitStep(t, p.Client, wfID, "enable", workflows.StepSucceeded, 30*time.Second)
	if on, _ := p.Lab.Keycloak.UserEnabled(keycloak.Realm, "bob"); !on {
		t.Error("bob's account not enabled after the genuine approval")
	}
	approvals := ledgerRows(t, p, incidentID, "approval:kc.enable_user")
	if len(approvals) != 1 || approvals[0].Actor != carol.Subject || !approvals[0].Decision.HasStatement() ||
		approvals[0].Decision.Approvals != 1 || approvals[0].Decision.Quorum < 1 {
		t.Errorf("approvals in the ledger = %+v", approvals)
	} else if st, err := decision.Decode(approvals[0].Decision.StatementPayload); err != nil || st.Subject != carol.Subject {
		t.Errorf("the approval's stored statement = %+v, %v; want carol's", st, err)
	}
}
