package workflows

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/iru-responder/responder/activities"
)

var (
	admin1 = Approver{Subject: "sub-adm1", Username: "ada", Roles: []string{"ir-admin", "ir-lead"}, SourceIP: "10.1.0.11"}
	admin2 = Approver{Subject: "sub-adm2", Username: "ali", Roles: []string{"ir-admin"}, SourceIP: "10.1.0.12"}
)

// protectDisable makes kc.disable_user refuse, as the Keycloak activity
// does for a protected account, unless the step carries an override that
// grants it.
func protectDisable(h *harness) {
	h.env.OnActivity(activities.KCDisableUser, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
			if !in.Override.Grants(in.StepID) {
				h.fake.mu.Lock()
				h.fake.calls = append(h.fake.calls, in)
				h.fake.mu.Unlock()
				return activities.ActionResult{}, activities.NewProtectedError("kc.disable_user: account bob in realm iru is protected",
					activities.ProtectedRefusal{Realm: "iru", UserID: "u-1", Username: "bob", Reasons: []string{"holds realm role ir-lead"}})
			}
			return h.fake.run(ctx, in)
		})
}

func stepOf(st IncidentStatus, id string) StepState {
	for _, s := range st.Steps {
		if s.ID == id {
			return s
		}
	}
	return StepState{}
}

// TestProtectedAccountBecomesApproval: the action refuses a protected
// account; the step becomes an approval for two ir-admins (a lead cannot
// approve it, one admin is not enough), the ledger and the timeline say
// why, and once granted it runs again carrying the override.
func TestProtectedAccountBecomesApproval(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	protectDisable(h)
	var waiting StepState
	h.env.RegisterDelayedCallback(func() { waiting = stepOf(h.status(), "disable") }, 30*time.Second)
	byLead := h.approve(time.Minute, "disable", lead)
	first := h.approve(2*time.Minute, "disable", admin1)
	var afterOne StepState
	h.env.RegisterDelayedCallback(func() { afterOne = stepOf(h.status(), "disable") }, 2*time.Minute+time.Second)
	second := h.approve(3*time.Minute, "disable", admin2)
	h.approve(10*time.Minute, "stop", lead)
	res, st := h.run(input("wf-test"))

	if waiting.Status != StepWaitingApproval || waiting.Approval == nil || waiting.Approval.Quorum != 2 ||
		!slices.Equal(waiting.Approval.Roles, []string{activities.ProtectedRole}) || !strings.Contains(waiting.Summary, "protected") {
		t.Fatalf("disable while refused = %+v (approval %+v), want waiting for 2 ir-admin", waiting, waiting.Approval)
	}
	if RejectionType(byLead.rejected) != RejectWrongRole {
		t.Errorf("a lead's approval of the protected step: rejected=%v", byLead.rejected)
	}
	if first.rejected != nil || second.rejected != nil {
		t.Fatalf("admin approvals rejected: %v / %v", first.rejected, second.rejected)
	}
	if afterOne.Status != StepWaitingApproval {
		t.Errorf("after one admin the step is %s, want still waiting", afterOne.Status)
	}
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if got := stepStatus(st, "disable"); got != StepCompensated && got != StepSucceeded {
		t.Errorf("disable = %s", got)
	}
	calls := 0
	var granted *activities.Override
	for _, c := range h.fake.calls {
		if c.StepID == "disable" {
			calls++
			granted = c.Override
		}
	}
	if calls != 2 || granted == nil || len(granted.Approvers) != 2 || !granted.Grants("disable") {
		t.Fatalf("disable ran %d times, last override %+v; want a refusal and one run with the two admins' override", calls, granted)
	}
	var req *activities.LedgerAppendInput
	for _, e := range h.fake.ledgerKinds("approval_requested") {
		if e.StepID == "disable" {
			req = &e
		}
	}
	if req == nil || req.Outcome != "protected_account" || !strings.Contains(req.Reason, "bob") || req.Detail["protected_because"] != "holds realm role ir-lead" || req.Detail["quorum"] != "2" {
		t.Fatalf("ledger approval request = %+v", req)
	}
	found := false
	for _, e := range st.Timeline {
		if e.StepID == "disable" && strings.Contains(e.What, "protected account bob") && strings.Contains(e.Reason, "holds realm role ir-lead") {
			found = true
		}
	}
	if !found {
		t.Errorf("timeline does not say why: %+v", st.Timeline)
	}
	h.fake.checkLedger(t, st.LedgerSeq)
}

// TestProtectedAccountDenied: a denial leaves the account alone and the
// incident goes on (containment of the rest is not undone).
func TestProtectedAccountDenied(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	protectDisable(h)
	h.update(time.Minute, DenyUpdate, DecisionInput{StepID: "disable", Approver: admin1, Reason: "bob is on call"})
	h.approve(10*time.Minute, "stop", lead)
	res, st := h.run(input("wf-test"))
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if got := stepStatus(st, "disable"); got != StepDenied {
		t.Errorf("disable = %s, want denied", got)
	}
	for _, c := range h.fake.calls {
		if c.StepID == "disable" && c.Override != nil {
			t.Fatalf("disable ran with an override after a denial: %+v", c)
		}
	}
	if len(h.fake.steps(activities.PVEUnisolate)) != 0 && stepStatus(st, "isolate") == StepCompensated {
		t.Error("the denial undid the containment")
	}
}

// TestProtectedApprovalTimesOut: nobody approves; the escalations run out
// and the account is never touched.
func TestProtectedApprovalTimesOut(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	protectDisable(h)
	res, st := h.run(input("wf-test"))
	if res.State != StateEscalatedFailed {
		t.Fatalf("state = %s (%s), want escalated_failed", res.State, res.Reason)
	}
	for _, c := range h.fake.calls {
		if c.StepID == "disable" && c.Override != nil {
			t.Fatal("the protected action ran without approval")
		}
	}
	if a := stepOf(st, "disable").Approval; a == nil || a.Escalations != protectedApproval.MaxEscalations {
		t.Errorf("approval = %+v", a)
	}
}

// TestProtectedApprovalSurvivesContinueAsNew: a run continued while the
// protected approval waits keeps waiting for two ir-admins and runs the
// action with the override.
func TestProtectedApprovalSurvivesContinueAsNew(t *testing.T) {
	pb := makePlaybook(pbOpts{})
	h := newHarness(t, pb)
	protectDisable(h)
	in := input("wf-test")
	in.ContinueAsNewAfter = 2
	h.approve(time.Minute, "disable", admin1)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(AlertSignal, AlertSignalInput{Alerts: []Alert{{ID: "b1", Fingerprint: "fp-b1"}}})
	}, 2*time.Minute)
	next := h.continuedAsNew(in)
	if d := stepOf(next.Carry.Status, "disable"); d.Status != StepWaitingApproval || d.Approval == nil || len(d.Approval.Approvals) != 1 {
		t.Fatalf("carried disable = %+v", d)
	}
	h.fake.mu.Lock()
	h.fake.calls = nil
	h.fake.mu.Unlock()
	next.ContinueAsNewAfter = 0
	h2 := newHarnessWith(t, h.fake, pb)
	protectDisable(h2)
	byLead := h2.approve(time.Minute, "disable", lead)
	h2.approve(2*time.Minute, "disable", admin2)
	h2.approve(10*time.Minute, "stop", lead)
	res, _ := h2.run(next)
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if byLead.rejected == nil {
		t.Error("a lead approved the protected step after continue-as-new")
	}
	c, ok := h2.fake.call("disable")
	if !ok || !c.Override.Grants("disable") {
		t.Fatalf("disable after continue-as-new ran with %+v", c.Override)
	}
}

// TestReenableCompensationNeedsApproval: an abort does not re-enable the
// disabled account on its own: the compensation waits for an approval that
// whoever aborted cannot give, and without one the account stays disabled.
func TestReenableCompensationNeedsApproval(t *testing.T) {
	for _, tc := range []struct {
		name     string
		approver *Approver
		runs     bool
	}{
		{"approved by another lead", &lead2, true},
		{"nobody approves", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, makePlaybook(pbOpts{}))
			h.env.RegisterDelayedCallback(func() {
				h.signal(AbortSignal, AbortInput{By: lead, Reason: "it is me, stop"})
			}, time.Minute)
			self := h.approve(2*time.Minute, "disable", lead)
			var other *updateOutcome
			if tc.approver != nil {
				other = h.approve(3*time.Minute, "disable", *tc.approver)
			}
			res, st := h.run(input("wf-test"))
			if res.State != StateAborted {
				t.Fatalf("state = %s (%s)", res.State, res.Reason)
			}
			if RejectionType(self.rejected) != RejectFourEyes {
				t.Errorf("whoever aborted approved the re-enable: rejected=%v", self.rejected)
			}
			ran := slices.Contains(h.fake.steps(activities.KCEnableUser), "disable:compensate")
			if ran != tc.runs {
				t.Fatalf("re-enable ran = %v, want %v (calls %v)", ran, tc.runs, h.fake.steps(""))
			}
			if other != nil && other.rejected != nil {
				t.Fatalf("approval by %s rejected: %v", tc.approver.Username, other.rejected)
			}
			if !slices.Contains(h.fake.steps(activities.PVEUnisolate), "isolate:compensate") {
				t.Error("the other compensations did not run")
			}
			want := compCompensated
			if !tc.runs {
				want = compFailed
				if n := len(h.fake.ledgerKinds("denial")); n != 1 {
					t.Errorf("%d denial ledger entries, want the unapproved compensation recorded", n)
				}
			}
			if got := stepOf(st, "disable").Compensation; got != want {
				t.Errorf("disable compensation = %s, want %s", got, want)
			}
			h.fake.checkLedger(t, st.LedgerSeq)
		})
	}
}
