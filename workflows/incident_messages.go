package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	decisionpkg "github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/severity"
	"github.com/iru-responder/responder/playbooks"
)

// Types of the ApplicationErrors with which the incident workflow refuses a
// message: the validators of the updates return them, and refused signals
// are recorded in the ledger with their text. Clients branch on the type
// ([RejectionType]), never on the message, which is for people.
const (
	// RejectNoIdentity refuses a decision without a verified subject.
	RejectNoIdentity = "NoIdentity"
	// RejectNotPending refuses a decision on a step that is not waiting for
	// approval.
	RejectNotPending = "NotPending"
	// RejectWrongRole refuses a caller without one of the roles needed.
	RejectWrongRole = "WrongRole"
	// RejectFourEyes refuses an approval by whoever requested the step or
	// escalated the incident.
	RejectFourEyes = "FourEyes"
	// RejectAlreadyDecided refuses a second decision by the same person.
	RejectAlreadyDecided = "AlreadyDecided"
	// RejectClosed refuses messages once the incident is halting or closed.
	RejectClosed = "IncidentClosing"
	// RejectNotStarted refuses messages before the playbook is loaded.
	RejectNotStarted = "IncidentNotStarted"
	// RejectStatement refuses a missing, forged, expired, replayed or
	// misbound decision statement, or a message whose identity is not the
	// statement's.
	RejectStatement = "StatementRefused"
	// RejectUnknownKey refuses a statement signed with a key the incident
	// has not loaded (yet): a refresh of the decision keys may help.
	RejectUnknownKey = "DecisionKeyUnknown"
	// RejectSubject refuses a decision by the person the incident is about.
	RejectSubject = "IncidentSubject"
	// RejectSecondFactor refuses a decision that needs a second factor (a
	// risk: high step, an ir-admin step) without one in the statement.
	RejectSecondFactor = "SecondFactorRequired"
	// RejectDrillOnly refuses a decision by the drill identity
	// ([DrillApproverSubject]) on an incident that is not a drill.
	RejectDrillOnly = "DrillIdentityOutsideDrill"
)

// reject returns the refusal of type typ (one of the Reject constants),
// with a message for people.
func reject(typ, format string, a ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, a...), typ, nil)
}

// RejectionType returns the Reject type of a refusal of the incident
// workflow, or "" when err is none.
func RejectionType(err error) string {
	if app, ok := errors.AsType[*temporal.ApplicationError](err); ok {
		return app.Type()
	}
	return ""
}

// rejectionText is the message of a refusal, without the SDK's type suffix.
func rejectionText(err error) string {
	if app, ok := errors.AsType[*temporal.ApplicationError](err); ok {
		return app.Message()
	}
	return err.Error()
}

func errNotStarted() error {
	return reject(RejectNotStarted, "incident has not started its playbook yet")
}

func errClosed() error { return reject(RejectClosed, "incident is closing") }

func errNoIdentity() error {
	return reject(RejectNoIdentity, "decision without a verified identity")
}

func errSubject(by Approver, incidentID string) error {
	return reject(RejectSubject, "the incident's subject cannot decide on it: %s is the account incident %s acts on", by.Username, incidentID)
}

func errFourEyes(format string, a ...any) error {
	return reject(RejectFourEyes, "four-eyes: whoever requested the step or escalated the incident cannot approve it (%s)", fmt.Sprintf(format, a...))
}

func (w *incident) setupUpdates(ctx workflow.Context) error {
	decision := func(approve bool, via string) (func(workflow.Context, DecisionInput) (DecisionResult, error), func(workflow.Context, DecisionInput) error) {
		handler := func(ctx workflow.Context, in DecisionInput) (DecisionResult, error) {
			w.messages++
			return w.decide(ctx, in, approve, via)
		}
		validator := func(ctx workflow.Context, in DecisionInput) error {
			_, _, err := w.validateDecision(ctx, in, approve)
			return err
		}
		return handler, validator
	}
	for _, u := range []struct {
		name    string
		approve bool
	}{{ApproveUpdate, true}, {DenyUpdate, false}} {
		h, v := decision(u.approve, "update")
		if err := workflow.SetUpdateHandlerWithOptions(ctx, u.name, h, workflow.UpdateHandlerOptions{Validator: v}); err != nil {
			return fmt.Errorf("register %s update: %w", u.name, err)
		}
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, EscalateUpdate,
		func(ctx workflow.Context, in EscalateInput) (EscalateResult, error) {
			w.messages++
			st, by, err := w.validateCaller(ctx, in.By, in.Statement, decisionpkg.Escalate)
			if err != nil {
				return EscalateResult{}, err
			}
			w.useNonce(st)
			w.acknowledge(ctx, by)
			if !slices.Contains(w.st.EscalatedBy, by.Subject) {
				w.st.EscalatedBy = append(w.st.EscalatedBy, by.Subject)
			}
			level, tier := w.escalateBy(ctx, by, cmp.Or(st.Reason, "escalated by a responder"), in.Statement)
			return EscalateResult{Level: level, Tier: tier}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, in EscalateInput) error {
			_, _, err := w.validateCaller(ctx, in.By, in.Statement, decisionpkg.Escalate)
			return err
		}},
	); err != nil {
		return fmt.Errorf("register %s update: %w", EscalateUpdate, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, RerouteUpdate,
		func(ctx workflow.Context, in RerouteInput) (RerouteResult, error) {
			w.messages++
			return w.reroute(ctx, in)
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, in RerouteInput) error {
			_, _, err := w.validateReroute(ctx, in)
			return err
		}},
	); err != nil {
		return fmt.Errorf("register %s update: %w", RerouteUpdate, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, AcknowledgeUpdate,
		func(ctx workflow.Context, in AcknowledgeInput) (AcknowledgeResult, error) {
			w.messages++
			st, by, err := w.validateCaller(ctx, in.By, in.Statement, decisionpkg.Acknowledge)
			if err != nil {
				return AcknowledgeResult{}, err
			}
			w.useNonce(st)
			w.acknowledgeBy(ctx, by, st, in.Statement)
			return AcknowledgeResult{AcknowledgedAt: w.st.Metrics.AcknowledgedAt}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, in AcknowledgeInput) error {
			_, _, err := w.validateCaller(ctx, in.By, in.Statement, decisionpkg.Acknowledge)
			return err
		}},
	); err != nil {
		return fmt.Errorf("register %s update: %w", AcknowledgeUpdate, err)
	}
	return nil
}

// validateCaller checks an escalate or acknowledge message: an open
// incident and a valid statement for kind.
func (w *incident) validateCaller(ctx workflow.Context, claimed Approver, s decisionpkg.Signed, kind decisionpkg.Kind) (decisionpkg.Statement, Approver, error) {
	switch {
	case w.pb == nil:
		return decisionpkg.Statement{}, Approver{}, errNotStarted()
	case w.st.State != StateOpen || w.halt != nil:
		return decisionpkg.Statement{}, Approver{}, errClosed()
	}
	st, by, err := w.verifyStatement(ctx, s, kind, "", claimed)
	if err == nil && by.Subject == "" {
		err = errNoIdentity()
	}
	return st, by, err
}

// validateDecision enforces, before anything is written to history: a
// valid signed statement for this workflow, run, step and decision (the
// identity is the statement's), a step waiting for approval, one of its
// roles, not the incident's subject, a second factor for risky steps
// (to approve them, and in runs with [secondFactorChange] to deny them: a
// denial halts the response as an abort does),
// four-eyes (approvals only: whoever requested the step or escalated the
// incident cannot approve; they may still deny it), one decision per
// person.
func (w *incident) validateDecision(ctx workflow.Context, in DecisionInput, approve bool) (decisionpkg.Statement, Approver, error) {
	var none decisionpkg.Statement
	if w.pb == nil {
		return none, Approver{}, errNotStarted()
	}
	if (w.halt != nil && (w.compensationWaiting == "" || w.compensationWaiting != in.StepID)) || w.st.State != StateOpen {
		return none, Approver{}, errClosed()
	}
	kind := decisionpkg.Deny
	if approve {
		kind = decisionpkg.Approve
	}
	st, by, err := w.verifyStatement(ctx, in.Statement, kind, in.StepID, in.Approver)
	if err != nil {
		return none, Approver{}, err
	}
	if by.Subject == "" {
		return none, Approver{}, errNoIdentity()
	}
	step := w.step(in.StepID)
	if step == nil {
		return none, Approver{}, reject(RejectNotPending, "step is not waiting for approval: no step %q", in.StepID)
	}
	if step.Status != StepWaitingApproval || step.Approval == nil || step.Approval.Outcome != "" {
		return none, Approver{}, reject(RejectNotPending, "step is not waiting for approval: %s is %s", in.StepID, step.Status)
	}
	if !slices.ContainsFunc(by.Roles, func(r string) bool { return slices.Contains(step.Approval.Roles, r) }) {
		return none, Approver{}, reject(RejectWrongRole, "approver lacks a required role: %s needs one of %v", in.StepID, step.Approval.Roles)
	}
	if w.isSubject(by) {
		return none, Approver{}, errSubject(by, w.st.IncidentID)
	}
	if (approve || w.factorAll) && w.needsSecondFactor(in.StepID) && !st.HasSecondFactor() {
		return none, Approver{}, reject(RejectSecondFactor, "a second authentication factor (otp) is required: %s %s (amr %v)", verbing(approve), in.StepID, st.AMR)
	}
	if approve {
		if samePerson(by, step.Approval.RequestedBy) {
			return none, Approver{}, errFourEyes("%s requested it", step.Approval.RequestedBy)
		}
		for _, e := range w.st.EscalatedBy {
			if samePerson(by, e) {
				return none, Approver{}, errFourEyes("%s escalated the incident", e)
			}
		}
	}
	for _, d := range step.Approval.Approvals {
		if d.By.Subject == by.Subject {
			return none, Approver{}, reject(RejectAlreadyDecided, "already decided by this approver: %s", cmp.Or(by.Username, by.Subject))
		}
	}
	return st, by, nil
}

// decide applies a validated decision.
func (w *incident) decide(ctx workflow.Context, in DecisionInput, approve bool, via string) (DecisionResult, error) {
	stmt, by, err := w.validateDecision(ctx, in, approve)
	if err != nil {
		return DecisionResult{}, err
	}
	w.useNonce(stmt)
	st := w.step(in.StepID)
	a := st.Approval
	d := Decision{By: by, Reason: stmt.Reason, At: workflow.Now(ctx).UTC(), Via: via, AMR: stmt.AMR}
	who := cmp.Or(by.Username, by.Subject)
	e := activities.LedgerAppendInput{Actor: by.Subject, SourceIP: by.SourceIP, StepID: in.StepID,
		Action: st.Action, Reason: stmt.Reason, Detail: statementDetail(map[string]string{"username": by.Username, "via": via}, in.Statement)}
	if approve {
		a.Approvals = append(a.Approvals, d)
		e.Kind, e.Outcome, e.Approvals, e.Quorum = "approval", approvalApproved, len(a.Approvals), a.Quorum
		if len(a.Approvals) >= a.Quorum {
			a.Outcome = approvalApproved
		}
		w.record(ctx, e, TimelineEntry{Actor: who, What: fmt.Sprintf("approved %s (%d/%d)", in.StepID, len(a.Approvals), a.Quorum)})
	} else {
		a.Denial, a.Outcome = &d, approvalDenied
		e.Kind, e.Outcome, e.Status = "denial", approvalDenied, activities.LedgerDenied
		w.record(ctx, e, TimelineEntry{Actor: who, What: "denied " + in.StepID})
	}
	w.acknowledge(ctx, by)
	status := st.Status
	if a.Outcome == approvalDenied {
		status = StepDenied
	}
	return DecisionResult{StepID: in.StepID, Status: status, Approvals: len(a.Approvals), Quorum: a.Quorum}, nil
}

// acknowledge records the first human action (time to acknowledge).
func (w *incident) acknowledge(ctx workflow.Context, by Approver) {
	if !w.st.Metrics.AcknowledgedAt.IsZero() || by.Subject == "" {
		return
	}
	now := workflow.Now(ctx).UTC()
	w.st.Metrics.AcknowledgedAt, w.st.Metrics.TimeToAcknowledge = now, now.Sub(w.st.OpenedAt)
	w.timeline(TimelineEntry{At: now, Actor: cmp.Or(by.Username, by.Subject), SourceIP: by.SourceIP, What: "acknowledged"})
}

// receiveSignals handles the alert, approval and abort signals for the life
// of the run.
func (w *incident) receiveSignals(ctx workflow.Context) {
	for {
		sel := workflow.NewSelector(ctx)
		w.addSignalReceivers(ctx, sel)
		sel.Select(ctx)
	}
}

func (w *incident) addSignalReceivers(ctx workflow.Context, sel workflow.Selector) {
	sel.AddReceive(workflow.GetSignalChannel(ctx, AlertSignal), func(c workflow.ReceiveChannel, _ bool) {
		var in AlertSignalInput
		if !c.ReceiveAsync(&in) {
			return
		}
		w.messages++
		w.onAlerts(ctx, in.Alerts)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, ApprovalSignal), func(c workflow.ReceiveChannel, _ bool) {
		var in ApprovalSignalInput
		// ReceiveAsync: a payload that does not decode (sent in clear by a
		// client without the key, refused by the codec) is dropped without
		// blocking the loop.
		if !c.ReceiveAsync(&in) {
			return
		}
		w.messages++
		w.onApprovalSignal(ctx, in)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, AbortSignal), func(c workflow.ReceiveChannel, _ bool) {
		var in AbortInput
		if !c.ReceiveAsync(&in) {
			return
		}
		w.messages++
		w.onAbort(ctx, in)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, LinkSignal), func(c workflow.ReceiveChannel, _ bool) {
		var in LinkSignalInput
		if !c.ReceiveAsync(&in) {
			return
		}
		w.messages++
		w.onLink(ctx, in)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, DecisionKeysSignal), func(c workflow.ReceiveChannel, _ bool) {
		// The payload is ignored: the keys come from the worker.
		c.ReceiveAsync(nil)
		w.messages++
		w.loadDecisionKeys(ctx)
	})
}

// drainSignals handles every signal already delivered, without blocking.
func (w *incident) drainSignals(ctx workflow.Context) {
	for w.signalsPending(ctx) {
		sel := workflow.NewSelector(ctx)
		w.addSignalReceivers(ctx, sel)
		sel.Select(ctx) // does not block: a channel has a message
	}
}

// signalsPending reports whether a signal is waiting in a channel.
func (w *incident) signalsPending(ctx workflow.Context) bool {
	for _, name := range []string{AlertSignal, ApprovalSignal, AbortSignal, LinkSignal, DecisionKeysSignal} {
		if workflow.GetSignalChannel(ctx, name).Len() > 0 {
			return true
		}
	}
	return false
}

func (w *incident) onApprovalSignal(ctx workflow.Context, in ApprovalSignalInput) {
	d := DecisionInput{StepID: in.StepID, Approver: in.Approver, Reason: in.Reason, Statement: in.Statement}
	if _, _, err := w.validateDecision(ctx, d, in.Approve); err != nil {
		w.refused(ctx, "approval signal", in.StepID, in.Approver, in.Statement, err)
		return
	}
	if _, err := w.decide(ctx, d, in.Approve, "signal"); err != nil {
		w.logger.Warn("approval signal not applied", "step", in.StepID, "error", err)
	}
}

// validateAbort checks an abort: a valid statement for an abort of this
// incident by an ir-lead or ir-admin who is not the incident's subject,
// signed in with a second factor (an abort undoes containment).
func (w *incident) validateAbort(ctx workflow.Context, in AbortInput) (decisionpkg.Statement, Approver, error) {
	st, by, err := w.verifyStatement(ctx, in.Statement, decisionpkg.Abort, "", in.By)
	switch {
	case err != nil:
		return st, by, err
	case by.Subject == "":
		return st, by, errNoIdentity()
	case !slices.ContainsFunc(by.Roles, func(r string) bool { return slices.Contains(abortRoles, r) }):
		return st, by, reject(RejectWrongRole, "approver lacks a required role: aborting needs one of %v", abortRoles)
	case w.isSubject(by):
		return st, by, errSubject(by, w.st.IncidentID)
	case w.factorAll && !st.HasSecondFactor():
		return st, by, reject(RejectSecondFactor, "a second authentication factor (otp) is required: aborting runs the compensations, which undo containment (amr %v)", st.AMR)
	}
	return st, by, nil
}

func (w *incident) onAbort(ctx workflow.Context, in AbortInput) {
	stmt, by, err := w.validateAbort(ctx, in)
	if err != nil {
		w.refused(ctx, "abort", "", in.By, in.Statement, err)
		return
	}
	w.useNonce(stmt)
	who := cmp.Or(by.Username, by.Subject)
	reason := cmp.Or(stmt.Reason, "aborted")
	if w.halt != nil || w.st.State != StateOpen || w.st.Phase == playbooks.PhasePostIncident {
		w.timeline(TimelineEntry{At: workflow.Now(ctx).UTC(), Actor: who, SourceIP: by.SourceIP, What: "abort ignored: incident already closing", Reason: reason})
		return
	}
	w.setHalt(StateAborted, fmt.Sprintf("aborted by %s: %s", who, reason), by)
	w.acknowledge(ctx, by)
	w.record(ctx, activities.LedgerAppendInput{Kind: "abort", Actor: by.Subject, SourceIP: by.SourceIP, Reason: reason,
		Detail: statementDetail(map[string]string{"username": by.Username}, in.Statement)},
		TimelineEntry{Actor: who, What: "abort requested"})
}

// onAlerts merges alerts: new fingerprints are recorded (one ledger entry
// per batch), duplicates only counted; a more severe alert raises the
// incident's severity. An alert whose ID was seen already is a redelivery
// of the same alert (the intake delivers at least once, and the first
// alert arrives both in the input and in the first signal): it is dropped.
// A resolution marks its alert resolved (see onResolved); an alert that
// fires again after its resolution is firing again.
func (w *incident) onAlerts(ctx workflow.Context, alerts []Alert) {
	now := workflow.Now(ctx).UTC()
	var fresh, resolved []string
	var recorded []activities.LedgerAlert
	raised := false
	for _, a := range alerts {
		if a.ID != "" {
			if w.alertIDs[a.ID] {
				continue
			}
			w.alertIDs[a.ID] = true
		}
		fp := stateFingerprint(cmp.Or(a.Fingerprint, a.ID))
		if a.Resolved {
			if w.resolveAlert(fp, a, now) {
				resolved = append(resolved, fp)
			}
			continue
		}
		w.st.AlertsReceived++
		if i, ok := w.alertIdx[fp]; ok {
			w.st.Alerts[i].Count++
			w.st.Alerts[i].LastSeen = now
			recorded = append(recorded, activities.LedgerAlert{Fingerprint: fp, Count: w.st.Alerts[i].Count})
			if !w.st.Alerts[i].ResolvedAt.IsZero() {
				w.st.Alerts[i].ResolvedAt = time.Time{}
				w.st.AllAlertsResolvedAt = time.Time{}
				w.timeline(TimelineEntry{At: now, What: fmt.Sprintf("alert %s (%s) fires again after its resolution", w.st.Alerts[i].Rule, fp)})
			}
			continue
		}
		w.st.AllAlertsResolvedAt = time.Time{}
		if w.st.Labels == nil && len(a.Labels) > 0 {
			var dropped int
			if w.st.Labels, dropped = stateLabels(a.Labels); dropped > 0 {
				w.timeline(TimelineEntry{At: now, What: fmt.Sprintf("%d bulky label(s) of the first alert left out of the incident state (byte budget); the alert keeps them", dropped)})
			}
		}
		fresh = append(fresh, fp)
		rec := stateAlertRecord(a, fp)
		recorded = append(recorded, activities.LedgerAlert{Fingerprint: fp, Source: rec.Source, Rule: rec.Rule, Severity: rec.Severity,
			Summary: rec.Summary, ObservedAt: rec.ObservedAt, ReceivedAt: rec.ReceivedAt, Count: 1})
		if len(w.st.Alerts) < maxAlertRecords && w.alertFits(rec) {
			rec.Count, rec.FirstSeen, rec.LastSeen = 1, now, now
			w.alertIdx[fp] = len(w.st.Alerts)
			w.st.Alerts = append(w.st.Alerts, rec)
		}
		if severity.Rank(a.Severity) > severity.Rank(w.st.Severity) {
			w.st.Severity, raised = a.Severity, true
		}
	}
	if len(fresh) > 0 {
		w.record(ctx, activities.LedgerAppendInput{Kind: "alert", Actor: actorWorkflow, Outcome: fmt.Sprintf("%d new", len(fresh)), Alerts: recorded,
			Detail: map[string]string{"fingerprints": joinMax(fresh, 20), "received_total": fmt.Sprint(w.st.AlertsReceived)}},
			TimelineEntry{What: fmt.Sprintf("%d new alert(s)", len(fresh))})
	}
	if raised && w.st.Phase != "" {
		w.upsert(ctx, false)
	}
	if len(resolved) > 0 {
		w.onResolved(ctx, resolved, now)
	}
}

// resolveAlert marks the incident's alert fp resolved at the detector's
// time (else now); it reports false when the incident does not hold the
// alert or it is resolved already.
func (w *incident) resolveAlert(fp string, a Alert, now time.Time) bool {
	i, ok := w.alertIdx[fp]
	if !ok || !w.st.Alerts[i].ResolvedAt.IsZero() {
		return false
	}
	at := a.ResolvedAt.UTC()
	if at.IsZero() {
		at = now
	}
	w.st.Alerts[i].ResolvedAt = at
	return true
}

// onResolved records resolutions (one ledger entry per batch). When every
// alert of an open incident that has not yet contained its asset is
// resolved, the responders are told (timeline and notification): the
// detector no longer sees the problem, and a responder decides whether to
// go on or abort. Nothing is done automatically.
func (w *incident) onResolved(ctx workflow.Context, fps []string, now time.Time) {
	var recorded []activities.LedgerAlert
	for _, fp := range fps {
		recorded = append(recorded, activities.LedgerAlert{Fingerprint: fp, ResolvedAt: w.st.Alerts[w.alertIdx[fp]].ResolvedAt})
	}
	w.record(ctx, activities.LedgerAppendInput{Kind: "alert", Actor: actorWorkflow, Outcome: fmt.Sprintf("%d resolved", len(fps)),
		Detail: map[string]string{"resolved": joinMax(fps, 20)}, Alerts: recorded},
		TimelineEntry{What: fmt.Sprintf("%d alert(s) resolved at the detector", len(fps))})
	for _, a := range w.st.Alerts {
		if a.ResolvedAt.IsZero() {
			return
		}
	}
	if len(w.st.Alerts) == 0 || !w.st.AllAlertsResolvedAt.IsZero() {
		return
	}
	w.st.AllAlertsResolvedAt = now
	if w.st.State != StateOpen || w.halt != nil || !w.st.Metrics.ContainedAt.IsZero() {
		return
	}
	msg := "every alert of the incident is resolved at its detector while containment is still under way; nothing was done automatically: decide whether to continue or abort"
	w.timeline(TimelineEntry{At: now, What: msg})
	w.notify(ctx, fmt.Sprintf("alerts-resolved-%d", w.st.AlertsReceived), "alerts_resolved", "incident-response", msg)
}

// joinMax joins at most n strings with commas, noting how many were left out.
func joinMax(s []string, n int) string {
	if len(s) <= n {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v (+%d more)", s[:n], len(s)-n)
}
