package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/playbooks"
)

// Protected accounts: an action the activity refuses with
// [activities.ErrTypeProtected] never runs on its own. The step becomes an
// approval for [activities.ProtectedRole] with quorum
// [activities.ProtectedQuorum] (whatever the playbook asked for before),
// and once granted it runs again carrying an [activities.Override] built
// from the recorded approvals.

// protectedApproval is the approval policy of a step turned into a
// protected-account approval.
var protectedApproval = playbooks.Approval{
	Roles: []string{activities.ProtectedRole}, Quorum: activities.ProtectedQuorum,
	Timeout: time.Hour, OnTimeout: playbooks.TimeoutEscalate, MaxEscalations: 2,
}

// reenableApproval is the approval a compensation that re-enables an
// account waits for when an incident aborts; without it the account stays
// disabled.
var reenableApproval = playbooks.Approval{
	Roles: []string{"ir-lead", activities.ProtectedRole}, Quorum: 1,
	Timeout: 4 * time.Hour, OnTimeout: playbooks.TimeoutDeny,
}

// isProtectedApproval reports whether a is the protected-account approval
// (and not the playbook's own approval of step s).
func isProtectedApproval(s playbooks.Step, a *ApprovalState) bool {
	if a == nil || a.Quorum != protectedApproval.Quorum || !slices.Equal(a.Roles, protectedApproval.Roles) {
		return false
	}
	return s.Approval == nil || s.Approval.Quorum != a.Quorum || !slices.Equal(s.Approval.Roles, a.Roles)
}

// approvalPolicy returns the approval step s waits for (nil: none): the
// protected-account approval once the step was turned into one, else the
// playbook's.
func approvalPolicy(s playbooks.Step, st *StepState) *playbooks.Approval {
	if isProtectedApproval(s, st.Approval) {
		p := protectedApproval
		return &p
	}
	return s.Approval
}

// override returns the step's override when its approval was granted by
// enough distinct holders of the protected role (nil otherwise).
func override(s playbooks.Step, st *StepState) *activities.Override {
	if st.Approval == nil || st.Approval.Outcome != approvalApproved {
		return nil
	}
	o := &activities.Override{StepID: s.ID}
	for _, d := range st.Approval.Approvals {
		o.Approvers = append(o.Approvers, activities.OverrideApprover{Subject: d.By.Subject, Username: d.By.Username, Roles: slices.Clone(d.By.Roles)})
	}
	if !o.Grants(s.ID) {
		return nil
	}
	return o
}

// protectedRefusal returns the details of an activity's protected-account
// refusal.
func protectedRefusal(err error) (activities.ProtectedRefusal, bool) {
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeProtected {
		return activities.ProtectedRefusal{}, false
	}
	var r activities.ProtectedRefusal
	if ae.HasDetails() {
		_ = ae.Details(&r)
	}
	return r, true
}

// requestProtectedApproval turns step s, refused because its target is a
// protected account, into an approval for the protected role; the ledger
// and the timeline say why, and the approvers are notified.
func (w *incident) requestProtectedApproval(ctx workflow.Context, s playbooks.Step, st *StepState, r activities.ProtectedRefusal, cause error) {
	a := protectedApproval
	account := cmp.Or(r.Username, r.UserID, "the target account")
	why := strings.Join(r.Reasons, ", ")
	if why == "" {
		why = cause.Error()
	}
	reason := fmt.Sprintf("%s (%s) did not run: account %s in realm %s is protected (%s); it runs only with %d approvals from %s",
		s.ID, s.Action, account, cmp.Or(r.Realm, "?"), why, a.Quorum, strings.Join(a.Roles, "|"))
	st.Approval = &ApprovalState{Roles: slices.Clone(a.Roles), Quorum: a.Quorum, RequestedBy: w.st.OpenedBy,
		Deadline: workflow.Now(ctx).UTC().Add(a.Timeout)}
	st.Status, st.StartedAt, st.Summary = StepWaitingApproval, time.Time{}, reason
	w.record(ctx, activities.LedgerAppendInput{Kind: "approval_requested", Actor: actorWorkflow, StepID: s.ID, Action: s.Action,
		Outcome: "protected_account", Status: "protected_account", Reason: reason,
		Detail: map[string]string{"roles": strings.Join(a.Roles, ","), "quorum": fmt.Sprint(a.Quorum), "timeout": a.Timeout.String(),
			"realm": r.Realm, "user_id": r.UserID, "username": r.Username, "protected_because": why}},
		TimelineEntry{What: fmt.Sprintf("approval requested for %s (%s, quorum %d): protected account %s", s.ID, strings.Join(a.Roles, "|"), a.Quorum, account)})
	msg := fmt.Sprintf("%s; approve before %s", reason, st.Approval.Deadline.Format(time.RFC3339))
	w.notify(ctx, "approval-"+s.ID, "approval_needed", strings.Join(a.Roles, ","), msg)
}

// protectedDenied records the denial of a protected-account approval: the
// step is denied and the account left alone; the incident goes on (the
// rest of the response does not depend on acting on that account).
func (w *incident) protectedDenied(ctx workflow.Context, s playbooks.Step, st *StepState) {
	st.Status, st.FinishedAt = StepDenied, workflow.Now(ctx).UTC()
	reason := "protected account left alone"
	if d := st.Approval.Denial; d != nil {
		reason = fmt.Sprintf("protected account left alone: denied by %s: %s", cmp.Or(d.By.Username, d.By.Subject), d.Reason)
	}
	w.timeline(TimelineEntry{At: st.FinishedAt, What: "did not run " + s.ID + " (" + s.Action + ")", StepID: s.ID, Reason: reason})
}

// compensationNeedsApproval reports whether compensation c re-enables an
// account: it never runs unapproved.
func compensationNeedsApproval(c PendingCompensation) bool {
	return c.Action == activities.KCEnableUser
}

// approveCompensation waits for the approval of compensation c (an
// account's re-enabling) while the incident aborts. Whoever aborted cannot
// approve it (four-eyes). It reports whether the compensation may run;
// without a decision before the timeout it does not.
func (w *incident) approveCompensation(ctx workflow.Context, c PendingCompensation) bool {
	st := w.step(c.StepID)
	if st == nil {
		return false
	}
	a := reenableApproval
	requested := w.st.OpenedBy
	if w.halt != nil && w.halt.by.Subject != "" {
		requested = w.halt.by.Subject
	}
	prev := st.Status
	st.Approval = &ApprovalState{Roles: slices.Clone(a.Roles), Quorum: a.Quorum, RequestedBy: requested,
		Deadline: workflow.Now(ctx).UTC().Add(a.Timeout)}
	st.Status = StepWaitingApproval
	w.compensationWaiting = c.StepID
	defer func() { w.compensationWaiting = "" }()
	reason := fmt.Sprintf("the compensation of %s (%s) re-enables an account; it runs only when approved", c.StepID, c.Action)
	w.record(ctx, activities.LedgerAppendInput{Kind: "approval_requested", Actor: actorWorkflow, StepID: c.StepID, Action: c.Action,
		Outcome: "compensation", Status: "compensation", Reason: reason,
		Detail: map[string]string{"roles": strings.Join(a.Roles, ","), "quorum": fmt.Sprint(a.Quorum), "timeout": a.Timeout.String(),
			"realm": c.Params["realm"], "user_id": c.Params["user_id"]}},
		TimelineEntry{What: fmt.Sprintf("approval requested for the compensation of %s (%s, quorum %d)", c.StepID, strings.Join(a.Roles, "|"), a.Quorum)})
	w.notify(ctx, "approval-"+c.StepID+"-compensate", "approval_needed", strings.Join(a.Roles, ","),
		fmt.Sprintf("%s; approve step %s before %s or the account stays disabled", reason, c.StepID, st.Approval.Deadline.Format(time.RFC3339)))
	ok, err := workflow.AwaitWithTimeout(ctx, a.Timeout, func() bool { return st.Approval.Outcome != "" })
	st.Status = prev
	if err == nil && ok && st.Approval.Outcome == approvalApproved {
		return true
	}
	if st.Approval.Outcome == "" {
		st.Approval.Denial = &Decision{By: Approver{Subject: actorWorkflow}, Reason: "approval timed out", At: workflow.Now(ctx).UTC(), Via: "timeout"}
		st.Approval.Outcome = approvalDenied
	}
	why := "not approved before the timeout"
	if d := st.Approval.Denial; d != nil && d.Via != "timeout" {
		why = fmt.Sprintf("denied by %s: %s", cmp.Or(d.By.Username, d.By.Subject), d.Reason)
	}
	w.record(ctx, activities.LedgerAppendInput{Kind: "denial", Actor: actorWorkflow, StepID: c.StepID, Action: c.Action,
		Outcome: approvalDenied, Status: activities.LedgerDenied, Reason: "compensation " + why + "; the account stays disabled"},
		TimelineEntry{What: "compensation of " + c.StepID + " not run (" + c.Action + ")"})
	return false
}
