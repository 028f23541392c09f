package workflows

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/decision"
)

// signAt signs st with signer, filling the test workflow's binding where
// st leaves it empty.
func signAt(t *testing.T, signer decision.Signer, st decision.Statement) decision.Signed {
	t.Helper()
	if st.WorkflowID == "" {
		st.WorkflowID = "default-test-workflow-id"
	}
	if st.RunID == "" {
		st.RunID = "default-test-run-id"
	}
	if st.Nonce == "" {
		st.Nonce = "n-" + st.StepID + "-" + st.IssuedAt.String() + "-" + st.Username
	}
	sg, err := decision.Sign(context.Background(), signer, st)
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

func stmtOf(kind decision.Kind, step string, who Approver, at time.Time) decision.Statement {
	return decision.Statement{StepID: step, Decision: kind, Subject: who.Subject, Username: who.Username, Roles: who.Roles,
		SourceIP: who.SourceIP, SessionID: "sid", TokenID: "jti", AMR: []string{"pwd", "otp"}, IssuedAt: at, ExpiresAt: at.Add(5 * time.Minute)}
}

// TestForgedDecisionsRefused performs the attacks of a sender who can
// reach Temporal directly: no statement, a statement signed by its own key,
// an altered statement, a statement replayed, bound to another step, run or
// workflow, expired, a message claiming a role the statement does not
// give. Each is refused by the validator, the step still waits, and only
// the one genuine approval lands in the ledger.
func TestForgedDecisionsRefused(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{approval: "{roles: [ir-lead], quorum: 2, timeout: 30m}"}))
	attacker, err := decision.NewLocalSigner()
	if err != nil {
		t.Fatal(err)
	}
	start := h.env.Now().UTC()
	at := func(d time.Duration) time.Time { return start.Add(d) }
	alice := Approver{Subject: "sub-alice", Username: "alice", Roles: []string{"ir-responder"}}
	aliceAsLead := alice
	aliceAsLead.Roles = []string{"ir-lead"}
	genuine := signAt(t, h.signer, stmtOf(decision.Approve, "stop", lead, at(time.Minute)))
	altered := genuine
	altered.Payload = []byte(strings.Replace(string(genuine.Payload), `"lena"`, `"lars"`, 1))
	in := func(s decision.Signed, who Approver) DecisionInput {
		return DecisionInput{StepID: "stop", Approver: who, Reason: "x", Statement: s}
	}
	otherStep := stmtOf(decision.Approve, "enable", lead2, at(70*time.Second))
	otherRun := stmtOf(decision.Approve, "stop", lead2, at(70*time.Second))
	otherRun.RunID = "another-run"
	otherWF := stmtOf(decision.Approve, "stop", lead2, at(70*time.Second))
	otherWF.WorkflowID = "incident:other"
	denyAsApprove := stmtOf(decision.Deny, "stop", lead2, at(70*time.Second))
	cases := []struct {
		name string
		o    *updateOutcome
		want error
	}{
		{"no statement, made-up lead", h.update(50*time.Second, ApproveUpdate, DecisionInput{StepID: "stop", Reason: "x",
			Approver:  Approver{Subject: "keycloak:iru/mallory", Username: "mallory", Roles: []string{"ir-lead"}},
			Statement: decision.Signed{KeyID: "none"}}), decision.ErrUnknownKey},
		{"signed by the attacker's key", h.update(55*time.Second, ApproveUpdate, in(signAt(t, attacker, stmtOf(decision.Approve, "stop", lead2, at(55*time.Second))), lead2)), decision.ErrUnknownKey},
		{"genuine", h.update(time.Minute, ApproveUpdate, in(genuine, lead)), nil},
		{"replayed", h.update(61*time.Second, ApproveUpdate, in(genuine, Approver{})), decision.ErrReplayed},
		{"altered", h.update(62*time.Second, ApproveUpdate, in(altered, Approver{})), decision.ErrBadSignature},
		{"other step", h.update(70*time.Second, ApproveUpdate, in(signAt(t, h.signer, otherStep), Approver{})), decision.ErrMisbound},
		{"other run", h.update(71*time.Second, ApproveUpdate, in(signAt(t, h.signer, otherRun), Approver{})), decision.ErrMisbound},
		{"other workflow", h.update(72*time.Second, ApproveUpdate, in(signAt(t, h.signer, otherWF), Approver{})), decision.ErrMisbound},
		{"deny statement on approve", h.update(73*time.Second, ApproveUpdate, in(signAt(t, h.signer, denyAsApprove), Approver{})), decision.ErrMisbound},
		{"expired", h.update(10*time.Minute, ApproveUpdate, in(signAt(t, h.signer, stmtOf(decision.Approve, "stop", lead2, at(4*time.Minute))), Approver{})), decision.ErrExpired},
		{"alice writes ir-lead into the message", h.update(11*time.Minute, ApproveUpdate, in(signAt(t, h.signer, stmtOf(decision.Approve, "stop", alice, at(11*time.Minute))), aliceAsLead)), errors.New("decision statement refused: the message names alice")},
		{"alice's own statement", h.update(12*time.Minute, ApproveUpdate, in(signAt(t, h.signer, stmtOf(decision.Approve, "stop", alice, at(12*time.Minute))), Approver{})), errors.New("approver lacks a required role")},
	}
	var waiting string
	h.env.RegisterDelayedCallback(func() { waiting = h.status().Steps[h.stepIndex("stop")].Status }, 13*time.Minute)
	h.approve(14*time.Minute, "stop", lead2)
	res, _ := h.run(input("wf-test"))
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	for _, c := range cases {
		if !c.o.done {
			t.Errorf("%s: never answered", c.name)
			continue
		}
		switch {
		case c.want == nil && (c.o.rejected != nil || c.o.err != nil):
			t.Errorf("%s: refused: %v %v", c.name, c.o.rejected, c.o.err)
		case c.want != nil && (c.o.rejected == nil || !strings.Contains(c.o.rejected.Error(), c.want.Error())):
			t.Errorf("%s: rejection = %v, want %v", c.name, c.o.rejected, c.want)
		}
	}
	if waiting != StepWaitingApproval {
		t.Errorf("after the attacks the step is %q, want still waiting", waiting)
	}
	approvals := h.fake.ledgerKinds("approval")
	if len(approvals) != 2 || approvals[0].Detail["statement"] == "" || approvals[0].Detail["statement_key"] != genuine.KeyID {
		t.Errorf("approval ledger entries = %+v", approvals)
	}
}

func (h *harness) stepIndex(id string) int {
	for i, s := range h.status().Steps {
		if s.ID == id {
			return i
		}
	}
	h.t.Fatalf("no step %s", id)
	return -1
}

// TestSignalsNeedStatements: an approval signal and an abort signal from
// a made-up lead without a valid statement are not applied; each refusal
// is in the ledger and the timeline, and the incident goes on.
func TestSignalsNeedStatements(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	mallory := Approver{Subject: "keycloak:iru/mallory", Username: "mallory", Roles: []string{"ir-lead", "ir-admin"}}
	attacker, err := decision.NewLocalSigner()
	if err != nil {
		t.Fatal(err)
	}
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(ApprovalSignal, ApprovalSignalInput{StepID: "stop", Approver: mallory, Approve: true})
		h.env.SignalWorkflow(AbortSignal, AbortInput{By: mallory, Reason: "stop it",
			Statement: signAt(t, attacker, stmtOf(decision.Abort, "", mallory, h.env.Now()))})
	}, time.Minute)
	h.approve(2*time.Minute, "stop", lead)
	res, st := h.run(input("wf-test"))
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s): a forged abort or approval was applied", res.State, res.Reason)
	}
	rej := h.fake.ledgerKinds("decision_rejected")
	// Appends complete in any order; the sequence numbers give the order.
	slices.SortFunc(rej, func(a, b activities.LedgerAppendInput) int { return int(a.Seq - b.Seq) })
	if len(rej) != 2 || rej[0].Detail["message"] != "approval signal" || rej[1].Detail["message"] != "abort" ||
		!strings.Contains(rej[1].Reason, decision.ErrUnknownKey.Error()) || rej[0].Actor != mallory.Subject {
		t.Errorf("refusals in the ledger = %+v", rej)
	}
	n := 0
	for _, e := range st.Timeline {
		if strings.HasPrefix(e.What, "rejected ") && e.Actor == "mallory" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d refusals in the timeline, want 2", n)
	}
}

// TestSubjectCannotDecide: the user the incident is about (its username
// label, here bob, an ir-lead) cannot approve, deny or abort it; the
// refused abort leaves the account disabled (no compensation runs).
func TestSubjectCannotDecide(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	bob := Approver{Subject: "keycloak:iru/bob", Username: "bob", Roles: []string{"ir-lead", "ir-responder"}}
	ap := h.approve(time.Minute, "stop", bob)
	dn := h.update(61*time.Second, DenyUpdate, DecisionInput{StepID: "stop", Approver: bob, Reason: "mine"})
	h.env.RegisterDelayedCallback(func() { h.signal(AbortSignal, AbortInput{By: bob, Reason: "false positive"}) }, 62*time.Second)
	h.approve(3*time.Minute, "stop", lead)
	res, _ := h.run(input("wf-test"))
	for name, o := range map[string]*updateOutcome{"approve": ap, "deny": dn} {
		if RejectionType(o.rejected) != RejectSubject {
			t.Errorf("%s by the subject: %v", name, o.rejected)
		}
	}
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s): the subject's abort was applied", res.State, res.Reason)
	}
	if rej := h.fake.ledgerKinds("decision_rejected"); len(rej) != 1 || !strings.Contains(rej[0].Reason, "the incident's subject cannot decide on it") {
		t.Errorf("abort refusal = %+v", rej)
	}
	if len(h.fake.ledgerKinds("compensation")) != 0 {
		t.Error("a compensation ran: the subject's abort re-enabled the account")
	}
}

// TestHighRiskNeedsSecondFactor: approving a risk: high step with a
// statement whose amr lacks otp is refused; with otp it counts.
func TestHighRiskNeedsSecondFactor(t *testing.T) {
	pb := strings.Replace(makePlaybook(pbOpts{}), "      compensation: none\n", "      compensation: none\n      risk: high\n", 1)
	h := newHarness(t, pb)
	noOTP := &updateOutcome{}
	h.env.RegisterDelayedCallback(func() {
		s := h.statement(decision.Approve, "stop", lead, "ok", "pwd")
		h.env.UpdateWorkflow(ApproveUpdate, "no-otp", updateCallback(noOTP), DecisionInput{StepID: "stop", Approver: lead, Statement: s})
	}, time.Minute)
	ok := h.approve(2*time.Minute, "stop", lead2)
	res, st := h.run(input("wf-test"))
	if RejectionType(noOTP.rejected) != RejectSecondFactor {
		t.Errorf("approval without otp: %v", noOTP.rejected)
	}
	if ok.rejected != nil || res.State != StateResolved {
		t.Fatalf("approval with otp: %v, state %s", ok.rejected, res.State)
	}
	if a := st.Steps[h.stepIndexIn(st, "stop")].Approval; len(a.Approvals) != 1 || a.Approvals[0].By.Subject != lead2.Subject {
		t.Errorf("approvals = %+v", a.Approvals)
	}
}

// TestAbortAndDenyNeedSecondFactor: a lead whose statement shows only a
// password cannot abort the incident (which would undo containment) nor
// deny a risk: high step (a denial halts the response); both refusals are
// in the ledger, and the incident goes on to resolve with the approval of
// a lead who has a second factor.
func TestAbortAndDenyNeedSecondFactor(t *testing.T) {
	pb := strings.Replace(makePlaybook(pbOpts{}), "      compensation: none\n", "      compensation: none\n      risk: high\n", 1)
	h := newHarness(t, pb)
	deny := &updateOutcome{}
	h.env.RegisterDelayedCallback(func() {
		s := h.statement(decision.Deny, "stop", lead, "false positive", "pwd")
		h.env.UpdateWorkflow(DenyUpdate, "deny-no-otp", updateCallback(deny), DecisionInput{StepID: "stop", Approver: lead, Reason: "false positive", Statement: s})
		h.env.SignalWorkflow(AbortSignal, AbortInput{By: lead, Reason: "stop it",
			Statement: h.statement(decision.Abort, "", lead, "stop it", "pwd")})
	}, time.Minute)
	h.approve(2*time.Minute, "stop", lead2)
	res, _ := h.run(input("wf-test"))
	if RejectionType(deny.rejected) != RejectSecondFactor {
		t.Errorf("deny without otp: %v, want %s", deny.rejected, RejectSecondFactor)
	}
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s): an abort or denial without a second factor was applied", res.State, res.Reason)
	}
	rej := h.fake.ledgerKinds("decision_rejected")
	if len(rej) != 1 || rej[0].Detail["message"] != "abort" || !strings.Contains(rej[0].Reason, "second authentication factor") {
		t.Errorf("abort refusal in the ledger = %+v", rej)
	}
	if n := len(h.fake.ledgerKinds("abort")); n != 0 {
		t.Errorf("%d abort entries in the ledger, want 0", n)
	}
}

func (h *harness) stepIndexIn(st IncidentStatus, id string) int {
	for i, s := range st.Steps {
		if s.ID == id {
			return i
		}
	}
	h.t.Fatalf("no step %s", id)
	return -1
}

// TestEscalatorCannotApprove: four-eyes compares people: whoever
// escalated the incident cannot approve its steps (they may deny).
func TestEscalatorCannotApprove(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	h.update(30*time.Second, EscalateUpdate, EscalateInput{By: lead, Reason: "need a second lead"})
	self := h.approve(time.Minute, "stop", lead)
	other := h.approve(2*time.Minute, "stop", lead2)
	res, _ := h.run(input("wf-test"))
	if RejectionType(self.rejected) != RejectFourEyes {
		t.Errorf("escalator's approval: %v", self.rejected)
	}
	if other.rejected != nil || res.State != StateResolved {
		t.Errorf("other lead: %v, state %s", other.rejected, res.State)
	}
}

// TestDecisionKeyRefresh: the workflow takes its keys from the worker, not
// from the sender. After a rotation the new key's statements are refused
// until the refresh signal makes it re-read them (the signal's payload is
// ignored: an attacker's key in it changes nothing); then they count.
func TestDecisionKeyRefresh(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{approval: "{roles: [ir-lead], quorum: 2, timeout: 30m}"}))
	next, err := decision.NewLocalSigner()
	if err != nil {
		t.Fatal(err)
	}
	rotated := false
	old := h.signer
	h.env.RegisterActivityWithOptions(func(context.Context, DecisionKeysInput) (DecisionKeysResult, error) {
		keys := []decision.Key{old.Key(time.Time{}, time.Time{})}
		if rotated {
			keys = append(keys, next.Key(time.Time{}, time.Time{}))
		}
		return DecisionKeysResult{Keys: decision.KeySet{Keys: keys}}, nil
	}, activity.RegisterOptions{Name: DecisionKeysActivity, DisableAlreadyRegisteredCheck: true})
	h.env.RegisterDelayedCallback(func() { h.signer = next; rotated = true }, 50*time.Second)
	before := h.approve(time.Minute, "stop", lead)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(DecisionKeysSignal, DecisionKeysResult{Keys: decision.KeySet{Keys: []decision.Key{next.Key(time.Time{}, time.Time{})}}})
	}, 2*time.Minute)
	after := h.approve(3*time.Minute, "stop", lead)
	h.env.RegisterDelayedCallback(func() { h.signer = old }, 3*time.Minute+time.Second)
	stillOld := h.approve(4*time.Minute, "stop", lead2)
	res, _ := h.run(input("wf-test"))
	if before.rejected == nil || !strings.Contains(before.rejected.Error(), decision.ErrUnknownKey.Error()) {
		t.Errorf("new key before the refresh: %v", before.rejected)
	}
	if after.rejected != nil || stillOld.rejected != nil || res.State != StateResolved {
		t.Errorf("after the refresh: %v, old key %v, state %s", after.rejected, stillOld.rejected, res.State)
	}
}

// updateCallback records an update's outcome in o.
func updateCallback(o *updateOutcome) *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { o.rejected, o.done = err, true },
		OnComplete: func(r any, err error) { o.result, o.err, o.done = r, err, true },
	}
}
