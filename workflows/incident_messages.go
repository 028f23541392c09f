package workflows

import (
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/playbooks"
)

// Validation errors of the approve and deny updates (and the approval signal).
var (
	// ErrNoIdentity rejects a decision without a verified subject.
	ErrNoIdentity = errors.New("decision without a verified identity")
	// ErrNotPending rejects a decision on a step that is not waiting for approval.
	ErrNotPending = errors.New("step is not waiting for approval")
	// ErrWrongRole rejects an approver without one of the step's roles.
	ErrWrongRole = errors.New("approver lacks a required role")
	// ErrFourEyes rejects an approval by whoever triggered the step.
	ErrFourEyes = errors.New("four-eyes: whoever triggered the step cannot approve it")
	// ErrAlreadyDecided rejects a second decision by the same person.
	ErrAlreadyDecided = errors.New("already decided by this approver")
	// ErrClosed rejects messages once the incident is halting or closed.
	ErrClosed = errors.New("incident is closing")
)

// severityRank orders severities; unknown ones rank lowest.
func severityRank(s string) int {
	return slices.Index([]string{"info", "low", "medium", "high", "critical"}, s)
}

func (w *incident) setupUpdates(ctx workflow.Context) error {
	decision := func(approve bool, via string) (func(workflow.Context, DecisionInput) (DecisionResult, error), func(workflow.Context, DecisionInput) error) {
		handler := func(ctx workflow.Context, in DecisionInput) (DecisionResult, error) {
			w.messages++
			return w.decide(ctx, in, approve, via)
		}
		validator := func(_ workflow.Context, in DecisionInput) error { return w.validateDecision(in, approve) }
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
	identityOnly := func(by Approver) error {
		switch {
		case w.pb == nil:
			return errNotStarted
		case by.Subject == "":
			return ErrNoIdentity
		case w.st.State != StateOpen || w.halt != nil:
			return ErrClosed
		}
		return nil
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, EscalateUpdate,
		func(ctx workflow.Context, in EscalateInput) (EscalateResult, error) {
			w.messages++
			w.acknowledge(ctx, in.By)
			level, tier := w.escalate(ctx, in.By, cmpOr(in.Reason, "escalated by a responder"))
			return EscalateResult{Level: level, Tier: tier}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, in EscalateInput) error { return identityOnly(in.By) }},
	); err != nil {
		return fmt.Errorf("register %s update: %w", EscalateUpdate, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, AcknowledgeUpdate,
		func(ctx workflow.Context, in AcknowledgeInput) (AcknowledgeResult, error) {
			w.messages++
			w.acknowledge(ctx, in.By)
			return AcknowledgeResult{AcknowledgedAt: w.st.Metrics.AcknowledgedAt}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, in AcknowledgeInput) error { return identityOnly(in.By) }},
	); err != nil {
		return fmt.Errorf("register %s update: %w", AcknowledgeUpdate, err)
	}
	return nil
}

// validateDecision enforces, before anything is written to history: a
// verified identity, a step waiting for approval, one of its roles,
// four-eyes (approvals only: whoever triggered the step cannot approve it;
// they may still deny it), one decision per person.
func (w *incident) validateDecision(in DecisionInput, approve bool) error {
	if w.pb == nil {
		return errNotStarted
	}
	if in.Approver.Subject == "" {
		return ErrNoIdentity
	}
	if w.halt != nil || w.st.State != StateOpen {
		return ErrClosed
	}
	st := w.step(in.StepID)
	if st == nil {
		return fmt.Errorf("%w: no step %q", ErrNotPending, in.StepID)
	}
	if st.Status != StepWaitingApproval || st.Approval == nil || st.Approval.Outcome != "" {
		return fmt.Errorf("%w: %s is %s", ErrNotPending, in.StepID, st.Status)
	}
	if !slices.ContainsFunc(in.Approver.Roles, func(r string) bool { return slices.Contains(st.Approval.Roles, r) }) {
		return fmt.Errorf("%w: %s needs one of %v", ErrWrongRole, in.StepID, st.Approval.Roles)
	}
	if approve && st.Approval.RequestedBy != "" &&
		(in.Approver.Subject == st.Approval.RequestedBy || in.Approver.Username == st.Approval.RequestedBy) {
		return fmt.Errorf("%w (%s)", ErrFourEyes, st.Approval.RequestedBy)
	}
	for _, d := range st.Approval.Approvals {
		if d.By.Subject == in.Approver.Subject {
			return fmt.Errorf("%w: %s", ErrAlreadyDecided, cmpOr(in.Approver.Username, in.Approver.Subject))
		}
	}
	return nil
}

// decide applies a validated decision.
func (w *incident) decide(ctx workflow.Context, in DecisionInput, approve bool, via string) (DecisionResult, error) {
	if err := w.validateDecision(in, approve); err != nil {
		return DecisionResult{}, err
	}
	st := w.step(in.StepID)
	a := st.Approval
	d := Decision{By: in.Approver, Reason: in.Reason, At: workflow.Now(ctx).UTC(), Via: via}
	who := cmpOr(in.Approver.Username, in.Approver.Subject)
	e := activities.LedgerAppendInput{Actor: in.Approver.Subject, SourceIP: in.Approver.SourceIP, StepID: in.StepID,
		Action: st.Action, Reason: in.Reason, Detail: map[string]string{"username": in.Approver.Username, "via": via}}
	if approve {
		a.Approvals = append(a.Approvals, d)
		e.Kind, e.Outcome = "approval", fmt.Sprintf("approved %d/%d", len(a.Approvals), a.Quorum)
		if len(a.Approvals) >= a.Quorum {
			a.Outcome = approvalApproved
		}
		w.record(ctx, e, TimelineEntry{Actor: who, What: fmt.Sprintf("approved %s (%d/%d)", in.StepID, len(a.Approvals), a.Quorum)})
	} else {
		a.Denial, a.Outcome = &d, approvalDenied
		e.Kind, e.Outcome = "denial", approvalDenied
		w.record(ctx, e, TimelineEntry{Actor: who, What: "denied " + in.StepID})
	}
	w.acknowledge(ctx, in.Approver)
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
	w.timeline(TimelineEntry{At: now, Actor: cmpOr(by.Username, by.Subject), SourceIP: by.SourceIP, What: "acknowledged"})
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
		c.Receive(ctx, &in)
		w.messages++
		w.onAlerts(ctx, in.Alerts)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, ApprovalSignal), func(c workflow.ReceiveChannel, _ bool) {
		var in ApprovalSignalInput
		c.Receive(ctx, &in)
		w.messages++
		w.onApprovalSignal(ctx, in)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, AbortSignal), func(c workflow.ReceiveChannel, _ bool) {
		var in AbortInput
		c.Receive(ctx, &in)
		w.messages++
		w.onAbort(ctx, in)
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
	for _, name := range []string{AlertSignal, ApprovalSignal, AbortSignal} {
		if workflow.GetSignalChannel(ctx, name).Len() > 0 {
			return true
		}
	}
	return false
}

func (w *incident) onApprovalSignal(ctx workflow.Context, in ApprovalSignalInput) {
	d := DecisionInput{StepID: in.StepID, Approver: in.Approver, Reason: in.Reason}
	if err := w.validateDecision(d, in.Approve); err != nil {
		w.record(ctx, activities.LedgerAppendInput{Kind: "decision_rejected", Actor: cmpOr(in.Approver.Subject, "unknown"),
			SourceIP: in.Approver.SourceIP, StepID: in.StepID, Outcome: "rejected", Reason: err.Error()},
			TimelineEntry{Actor: cmpOr(in.Approver.Username, in.Approver.Subject, "unknown"), What: "rejected decision on " + in.StepID})
		return
	}
	if _, err := w.decide(ctx, d, in.Approve, "signal"); err != nil {
		w.logger.Warn("approval signal not applied", "step", in.StepID, "error", err)
	}
}

func (w *incident) onAbort(ctx workflow.Context, in AbortInput) {
	who := cmpOr(in.By.Username, in.By.Subject, "unknown")
	reason := cmpOr(in.Reason, "aborted")
	if w.halt != nil || w.st.State != StateOpen || w.st.Phase == playbooks.PhasePostIncident {
		w.timeline(TimelineEntry{At: workflow.Now(ctx).UTC(), Actor: who, SourceIP: in.By.SourceIP, What: "abort ignored: incident already closing", Reason: reason})
		return
	}
	w.setHalt(StateAborted, fmt.Sprintf("aborted by %s: %s", who, reason), in.By)
	w.acknowledge(ctx, in.By)
	w.record(ctx, activities.LedgerAppendInput{Kind: "abort", Actor: cmpOr(in.By.Subject, "unknown"), SourceIP: in.By.SourceIP, Reason: reason},
		TimelineEntry{Actor: who, What: "abort requested"})
}

// onAlerts merges alerts: new fingerprints are recorded (one ledger entry
// per batch), duplicates only counted; a more severe alert raises the
// incident's severity. An alert whose ID was seen already is a redelivery
// of the same alert (the intake delivers at least once, and the first
// alert arrives both in the input and in the first signal): it is dropped.
func (w *incident) onAlerts(ctx workflow.Context, alerts []Alert) {
	now := workflow.Now(ctx).UTC()
	var fresh []string
	raised := false
	for _, a := range alerts {
		if a.ID != "" {
			if w.alertIDs[a.ID] {
				continue
			}
			w.alertIDs[a.ID] = true
		}
		w.st.AlertsReceived++
		fp := stateFingerprint(cmpOr(a.Fingerprint, a.ID))
		if i, ok := w.alertIdx[fp]; ok {
			w.st.Alerts[i].Count++
			w.st.Alerts[i].LastSeen = now
			continue
		}
		if w.st.Labels == nil && len(a.Labels) > 0 {
			var dropped int
			if w.st.Labels, dropped = stateLabels(a.Labels); dropped > 0 {
				w.timeline(TimelineEntry{At: now, What: fmt.Sprintf("%d bulky label(s) of the first alert left out of the incident state (byte budget); the alert keeps them", dropped)})
			}
		}
		fresh = append(fresh, fp)
		if rec := stateAlertRecord(a, fp); len(w.st.Alerts) < maxAlertRecords && w.alertFits(rec) {
			rec.Count, rec.FirstSeen, rec.LastSeen = 1, now, now
			w.alertIdx[fp] = len(w.st.Alerts)
			w.st.Alerts = append(w.st.Alerts, rec)
		}
		if severityRank(a.Severity) > severityRank(w.st.Severity) {
			w.st.Severity, raised = a.Severity, true
		}
	}
	if len(fresh) > 0 {
		w.record(ctx, activities.LedgerAppendInput{Kind: "alert", Actor: actorWorkflow, Outcome: fmt.Sprintf("%d new", len(fresh)),
			Detail: map[string]string{"fingerprints": joinMax(fresh, 20), "received_total": fmt.Sprint(w.st.AlertsReceived)}},
			TimelineEntry{What: fmt.Sprintf("%d new alert(s)", len(fresh))})
	}
	if raised && w.st.Phase != "" {
		w.upsert(ctx, false)
	}
}

// joinMax joins at most n strings with commas, noting how many were left out.
func joinMax(s []string, n int) string {
	if len(s) <= n {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v (+%d more)", s[:n], len(s)-n)
}
