package workflows

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/playbooks"
)

// Approval outcomes ([ApprovalState.Outcome]).
const (
	approvalApproved        = "approved"
	approvalAutoApproved    = "auto_approved"
	approvalDrillApproved   = "drill_approved"
	approvalDenied          = "denied"
	approvalEscalatedFailed = "escalated_failed"
)

// Compensation states ([StepState.Compensation]).
const (
	compRegistered  = "registered"
	compLifted      = "lifted"
	compCompensated = "compensated"
	compFailed      = "failed"
)

func terminal(status string) bool {
	switch status {
	case StepSucceeded, StepFailed, StepSkipped, StepDenied, StepCompensated:
		return true
	}
	return false
}

// step returns the state of step id (which the playbook defines).
func (w *incident) step(id string) *StepState {
	i, ok := w.stepIdx[id]
	if !ok {
		return nil
	}
	return &w.st.Steps[i]
}

// setHalt records the first halt; later ones are ignored.
func (w *incident) setHalt(state, reason string, by Approver) {
	if w.halt == nil {
		w.halt = &halt{state: state, reason: reason, by: by}
	}
}

// data is what templates see right now.
func (w *incident) data() playbooks.Data {
	d := playbooks.Data{
		IncidentID: w.st.IncidentID, Asset: w.st.Asset, Severity: w.st.Severity, Playbook: w.st.Playbook,
		Drill: w.st.Drill, OpenedAt: w.st.OpenedAt.Format(time.RFC3339), Labels: w.st.Labels,
		Steps: map[string]map[string]string{},
	}
	if len(w.st.Alerts) > 0 {
		a := w.st.Alerts[0]
		d.Alert = playbooks.AlertData{Rule: a.Rule, Source: a.Source, Fingerprint: a.Fingerprint, Summary: a.Summary}
	}
	for _, s := range w.st.Steps {
		if s.Status == StepSucceeded || s.Status == StepCompensated {
			out := map[string]string{}
			for _, k := range workflow.DeterministicKeys(s.Outputs) {
				out[k] = s.Outputs[k]
			}
			d.Steps[s.ID] = out
		}
	}
	return d
}

// render renders a parameter map (keys in sorted order).
func render(params map[string]string, d playbooks.Data) (map[string]string, error) {
	out := make(map[string]string, len(params))
	for _, k := range workflow.DeterministicKeys(params) {
		// See runStep: rendering is deterministic.
		v, err := playbooks.Render(params[k], d) //workflowcheck:ignore
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// runStep runs one step: condition, parameters, approval, action,
// compensation registration, ledger. Failures are handled by the step's
// on_failure policy (turning into w.halt); it returns only errContinueAsNew.
// s is the playbook's, read only.
func (w *incident) runStep(ctx workflow.Context, phase string, s *playbooks.Step) error {
	st := w.step(s.ID)
	if st == nil || terminal(st.Status) {
		return nil
	}
	// After a halt only the post-incident phase runs, best effort.
	if w.halt != nil && phase != playbooks.PhasePostIncident {
		return nil
	}
	if w.halt != nil {
		ctx = disconnected(ctx)
	}
	if !w.prepareStep(ctx, s, st) {
		return nil
	}
	// A step whose target turns out to be a protected account becomes an
	// approval for the protected role (execute returns true) and runs again
	// once approved, with the override.
	for {
		if pol := approvalPolicy(*s, st); pol != nil && (st.Approval == nil || st.Approval.Outcome == "") {
			protected := isProtectedApproval(*s, st.Approval)
			ps := *s
			ps.Approval = pol
			if err := w.awaitApproval(ctx, &ps, st); err != nil {
				return err
			}
			if !w.approved(ctx, s, st, protected) {
				return nil
			}
		}
		if !w.execute(ctx, *s, st) {
			return nil
		}
	}
}

// prepareStep evaluates the step's condition and renders its parameters;
// it reports false when the step does not run (skipped, or failed).
func (w *incident) prepareStep(ctx workflow.Context, s *playbooks.Step, st *StepState) bool {
	if s.When != "" && st.Status == StepPending {
		// text/template is deterministic for the same text and data (maps
		// are read by key, never ranged); workflowcheck cannot see that.
		ok, err := playbooks.RenderBool(s.When, w.data()) //workflowcheck:ignore
		if err != nil {
			w.fail(ctx, *s, st, fmt.Errorf("condition: %w", err))
			return false
		}
		if !ok {
			st.Status, st.FinishedAt, st.Summary = StepSkipped, workflow.Now(ctx).UTC(), "condition is false"
			w.record(ctx, activities.LedgerAppendInput{Kind: "step", Actor: actorWorkflow, StepID: s.ID, Action: s.Action,
				Outcome: StepSkipped, Status: activities.LedgerSkipped, Reason: "condition is false"}, TimelineEntry{What: "skipped " + s.ID})
			return false
		}
	}
	params, err := render(s.Params, w.data())
	if err != nil {
		w.fail(ctx, *s, st, err)
		return false
	}
	st.Params = params
	return true
}

// approved handles the outcome of the step's approval wait: it reports
// whether the step's action runs now (denials, exhausted escalations and
// halts end the step).
func (w *incident) approved(ctx workflow.Context, s *playbooks.Step, st *StepState, protected bool) bool {
	switch st.Approval.Outcome {
	case approvalApproved, approvalAutoApproved, approvalDrillApproved:
		return true
	case approvalDenied:
		if protected {
			w.protectedDenied(ctx, *s, st)
		} else {
			w.denied(ctx, *s, st)
		}
	case approvalEscalatedFailed:
		st.Status, st.FinishedAt, st.Error = StepFailed, workflow.Now(ctx).UTC(), "approval escalations exhausted"
		w.setHalt(StateEscalatedFailed, fmt.Sprintf("step %s: no approval after %d escalations", s.ID, st.Approval.Escalations), Approver{})
	default: // halted while waiting
	}
	return false
}

// execute runs the step's action and handles its outcome. It returns true
// when the action refused a protected account and the step now waits for
// the protected-account approval.
func (w *incident) execute(ctx workflow.Context, s playbooks.Step, st *StepState) bool {
	act, err := activities.Lookup(s.Action)
	if err != nil {
		w.fail(ctx, s, st, err)
		return false
	}
	if w.in.DryRun && !act.DryRun {
		st.Status, st.FinishedAt, st.Summary = StepSkipped, workflow.Now(ctx).UTC(), "dry run: the action cannot plan"
		w.record(ctx, activities.LedgerAppendInput{Kind: "step", Actor: actorWorkflow, StepID: s.ID, Action: s.Action,
			Outcome: StepSkipped, Status: activities.LedgerSkipped, Reason: st.Summary}, TimelineEntry{What: "skipped " + s.ID})
		return false
	}
	opts := act.Options()
	if s.Timeout > 0 {
		opts.StartToCloseTimeout = s.Timeout
	}
	if r := s.Retry; r != nil {
		rp := *opts.RetryPolicy
		rp.MaximumAttempts = r.MaxAttempts
		if r.InitialInterval > 0 {
			rp.InitialInterval = r.InitialInterval
		}
		if r.MaximumInterval > 0 {
			rp.MaximumInterval = max(r.MaximumInterval, rp.InitialInterval)
		}
		opts.RetryPolicy = &rp
	}
	in := activities.ActionInput{
		IncidentID: w.st.IncidentID, StepID: s.ID, Action: s.Action, Params: st.Params, Asset: w.st.Asset, Resolved: w.st.AssetRef,
		Drill: w.drill(), DryRun: w.in.DryRun, IdempotencyKey: w.st.IncidentID + "/" + s.ID, LedgerSeq: w.st.LedgerSeq,
		Phase: w.st.Phase,
	}
	w.inheritInput(s.ID, &in)
	st.Status, st.StartedAt = StepRunning, workflow.Now(ctx).UTC()
	w.running++
	// Only an approval of enough holders of the protected role lets the
	// action touch a protected account.
	in.Override = override(s, st)
	var res activities.ActionResult
	err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), s.Action, in).Get(ctx, &res)
	w.running--
	if err != nil {
		if r, ok := protectedRefusal(err); ok && in.Override == nil && w.halt == nil && ctx.Err() == nil {
			w.requestProtectedApproval(ctx, s, st, r, err)
			return true
		}
		if temporal.IsCanceledError(err) || ctx.Err() != nil {
			w.setHalt(StateAborted, "workflow cancelled", Approver{})
		}
		w.fail(ctx, s, st, err)
		return false
	}
	st.Status, st.FinishedAt = StepSucceeded, workflow.Now(ctx).UTC()
	st.Outputs, st.EvidenceRefs, st.Plan, st.Summary = res.Outputs, res.EvidenceRefs, res.Plan, res.Summary
	detail := map[string]string{}
	for _, k := range workflow.DeterministicKeys(res.Undo) {
		detail["undo."+k] = res.Undo[k]
	}
	if !w.in.DryRun {
		w.registerCompensation(ctx, s, st, res.Undo)
	}
	w.record(ctx, activities.LedgerAppendInput{Kind: "step", Actor: actorWorkflow, StepID: s.ID, Action: s.Action,
		Outcome: StepSucceeded, Reason: res.Summary, StartedAt: st.StartedAt, Params: st.Params, Outputs: res.Outputs,
		EvidenceRefs: res.EvidenceRefs, Compensation: st.Compensation, Detail: detail}, TimelineEntry{What: "ran " + s.ID + " (" + s.Action + ")"})
	return false
}

// registerCompensation pushes the step's undo action and retires the
// compensation of the step this one compensates.
func (w *incident) registerCompensation(ctx workflow.Context, s playbooks.Step, st *StepState, undo map[string]string) {
	if s.Compensates != "" {
		for i := len(w.st.Compensations) - 1; i >= 0; i-- {
			if w.st.Compensations[i].StepID == s.Compensates {
				w.st.Compensations = slices.Delete(w.st.Compensations, i, i+1)
				if prev := w.step(s.Compensates); prev != nil {
					prev.Compensation = compLifted
				}
			}
		}
	}
	if s.Compensation == nil {
		return
	}
	params, err := render(s.Compensation.Params, w.data())
	if err != nil {
		st.Compensation = compFailed
		w.timeline(TimelineEntry{At: workflow.Now(ctx).UTC(), What: "compensation of " + s.ID + " not registered", StepID: s.ID, Reason: err.Error()})
		return
	}
	st.Compensation = compRegistered
	w.st.Compensations = append(w.st.Compensations, PendingCompensation{StepID: s.ID, Action: s.Compensation.Action, Params: params, Undo: undo})
}

// fail records a failed step and applies its on_failure policy.
func (w *incident) fail(ctx workflow.Context, s playbooks.Step, st *StepState, err error) {
	st.Status, st.FinishedAt, st.Error = StepFailed, workflow.Now(ctx).UTC(), err.Error()
	w.record(ctx, activities.LedgerAppendInput{Kind: "step", Actor: actorWorkflow, StepID: s.ID, Action: s.Action,
		Outcome: StepFailed, Status: activities.LedgerFailed, Reason: err.Error(), StartedAt: st.StartedAt, Params: st.Params},
		TimelineEntry{What: "failed " + s.ID + " (" + s.Action + ")"})
	// A step that ran and failed may have changed part of what it was asked
	// to (an isolation that failed at its last call). Its compensation is
	// idempotent and works from what the action recorded, so it is
	// registered too: an abort then undoes the part that was done.
	if !st.StartedAt.IsZero() && s.Compensation != nil {
		w.registerCompensation(ctx, s, st, nil)
	}
	w.applyFailurePolicy(ctx, s, fmt.Sprintf("step %s (%s) failed: %v", s.ID, s.Action, err))
}

// denied records a denied step and applies its on_failure policy.
func (w *incident) denied(ctx workflow.Context, s playbooks.Step, st *StepState) {
	st.Status, st.FinishedAt = StepDenied, workflow.Now(ctx).UTC()
	d := st.Approval.Denial
	reason := fmt.Sprintf("step %s denied", s.ID)
	if d != nil {
		reason = fmt.Sprintf("step %s denied by %s: %s", s.ID, cmp.Or(d.By.Username, d.By.Subject), d.Reason)
	}
	w.applyFailurePolicy(ctx, s, reason)
}

func (w *incident) applyFailurePolicy(ctx workflow.Context, s playbooks.Step, reason string) {
	if w.halt != nil {
		return // post-incident after a halt: best effort
	}
	switch s.OnFailure {
	case playbooks.OnFailureContinue:
	case playbooks.OnFailureEscalate:
		w.setHalt(StateEscalatedFailed, reason, Approver{})
		w.escalate(ctx, Approver{}, reason)
	default:
		w.setHalt(StateAborted, reason, Approver{})
	}
}

// compensate runs the registered compensations in reverse order, on the
// disconnected context. Each one is recorded; a failed compensation does not
// stop the others.
func (w *incident) compensate(ctx workflow.Context) {
	ctx = disconnected(ctx)
	for len(w.st.Compensations) > 0 {
		c := w.st.Compensations[len(w.st.Compensations)-1]
		w.st.Compensations = w.st.Compensations[:len(w.st.Compensations)-1]
		if compensationNeedsApproval(c) && !w.approveCompensation(ctx, c) {
			if st := w.step(c.StepID); st != nil {
				st.Compensation = compFailed
			}
			continue
		}
		act, err := activities.Lookup(c.Action)
		if err == nil {
			in := activities.ActionInput{
				IncidentID: w.st.IncidentID, StepID: c.StepID + ":compensate", Action: c.Action, Params: c.Params,
				Asset: w.st.Asset, Resolved: w.st.AssetRef, Drill: w.drill(), IdempotencyKey: w.st.IncidentID + "/" + c.StepID + "/compensate",
				LedgerSeq: w.st.LedgerSeq, Undo: c.Undo,
			}
			var res activities.ActionResult
			err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, act.Options()), c.Action, in).Get(ctx, &res)
		}
		st := w.step(c.StepID)
		outcome, status, reason := compCompensated, activities.LedgerStatus(compCompensated), ""
		if err != nil {
			outcome, status, reason = compFailed, activities.LedgerFailed, err.Error()
		}
		if st != nil {
			st.Compensation = outcome
			if err == nil {
				st.Status = StepCompensated
			}
		}
		w.record(ctx, activities.LedgerAppendInput{Kind: "compensation", Actor: actorWorkflow, StepID: c.StepID, Action: c.Action,
			Outcome: outcome, Status: status, Reason: reason}, TimelineEntry{What: "compensated " + c.StepID + " (" + c.Action + ")"})
	}
}

// awaitApproval waits until the step is approved, denied, escalated out,
// or the incident halts. Every wait has a timer (the approval timeout). It
// returns errContinueAsNew when the run should continue as new while waiting.
func (w *incident) awaitApproval(ctx workflow.Context, s *playbooks.Step, st *StepState) error {
	if st.Approval == nil && w.requestApproval(ctx, s, st) {
		return nil
	}
	for st.Approval.Outcome == "" {
		if w.halt != nil {
			return nil
		}
		remaining := st.Approval.Deadline.Sub(workflow.Now(ctx))
		if remaining > 0 {
			ok, err := workflow.AwaitWithTimeout(ctx, remaining, func() bool {
				return st.Approval.Outcome != "" || w.halt != nil || w.canNow(ctx)
			})
			if err != nil {
				w.setHalt(StateAborted, "workflow cancelled", Approver{})
				return nil
			}
			if ok && st.Approval.Outcome == "" && w.halt == nil && w.canNow(ctx) {
				return errContinueAsNew
			}
			continue
		}
		w.approvalTimedOut(ctx, s, st)
	}
	return nil
}

// requestApproval opens the step's approval: it records the request and
// tells the approvers, without waiting for the delivery. It reports true
// when the drill that started the incident approved the step at once.
func (w *incident) requestApproval(ctx workflow.Context, s *playbooks.Step, st *StepState) bool {
	a := s.Approval
	st.Approval = &ApprovalState{Roles: a.Roles, Quorum: a.Quorum, RequestedBy: w.st.OpenedBy,
		Deadline: workflow.Now(ctx).UTC().Add(a.Timeout)}
	st.Status = StepWaitingApproval
	w.record(ctx, activities.LedgerAppendInput{Kind: "approval_requested", Actor: actorWorkflow, StepID: s.ID, Action: s.Action,
		Detail: map[string]string{"roles": strings.Join(a.Roles, ","), "quorum": fmt.Sprint(a.Quorum), "timeout": a.Timeout.String()}},
		TimelineEntry{What: fmt.Sprintf("approval requested for %s (%s, quorum %d)", s.ID, strings.Join(a.Roles, "|"), a.Quorum)})
	if w.drillApproves(s.ID) {
		w.drillApprove(ctx, *s, st)
		return true
	}
	msg := fmt.Sprintf("step %s (%s) needs %d approval(s) from %s before %s", s.ID, s.Action, a.Quorum,
		strings.Join(a.Roles, " or "), st.Approval.Deadline.Format(time.RFC3339))
	w.notify(ctx, "approval-"+s.ID, "approval_needed", strings.Join(a.Roles, ","), msg)
	return false
}

// drillApproves reports whether the drill that started this incident
// approves step id itself ([IncidentInput.AutoApprove]; drills only).
func (w *incident) drillApproves(id string) bool {
	return w.drill() && slices.Contains(w.in.AutoApprove, id)
}

// drillApprove approves a step the drill listed, as the drill identity.
func (w *incident) drillApprove(ctx workflow.Context, s playbooks.Step, st *StepState) {
	now := workflow.Now(ctx).UTC()
	by := Approver{Subject: DrillApproverSubject, Username: DrillApproverUsername}
	reason := "drill: step listed in auto_approve"
	st.Approval.Approvals = append(st.Approval.Approvals, Decision{By: by, Reason: reason, At: now, Via: "drill"})
	st.Approval.Outcome = approvalDrillApproved
	w.record(ctx, activities.LedgerAppendInput{Kind: "approval", Actor: DrillApproverSubject, StepID: s.ID, Action: s.Action,
		Outcome: approvalDrillApproved, Status: approvalDrillApproved, Reason: reason}, TimelineEntry{Actor: DrillApproverUsername, What: "approved " + s.ID + " (drill)"})
}

// approvalTimedOut applies the step's on_timeout policy.
func (w *incident) approvalTimedOut(ctx workflow.Context, s *playbooks.Step, st *StepState) {
	a, now := s.Approval, workflow.Now(ctx).UTC()
	switch {
	case a.OnTimeout == playbooks.TimeoutAutoApprove && w.drill() && (a.DrillOnly || w.pb.Drill):
		st.Approval.Outcome = approvalAutoApproved
		w.record(ctx, activities.LedgerAppendInput{Kind: "approval", Actor: actorWorkflow, StepID: s.ID, Action: s.Action,
			Outcome: approvalAutoApproved, Status: approvalAutoApproved, Reason: "drill: approval timed out, auto-approved"},
			TimelineEntry{What: "auto-approved " + s.ID + " (drill)"})
	case a.OnTimeout == playbooks.TimeoutDeny:
		st.Approval.Denial = &Decision{By: Approver{Subject: actorWorkflow}, Reason: "approval timed out", At: now, Via: "timeout"}
		st.Approval.Outcome = approvalDenied
		w.record(ctx, activities.LedgerAppendInput{Kind: "denial", Actor: actorWorkflow, StepID: s.ID, Action: s.Action,
			Outcome: approvalDenied, Status: activities.LedgerDenied, Reason: "approval timed out"}, TimelineEntry{What: "denied " + s.ID + " (timeout)"})
	case st.Approval.Escalations < a.MaxEscalations:
		// escalate (also auto_approve outside a drill): notify the next
		// tier and extend the wait.
		st.Approval.Escalations++
		st.Approval.Deadline = now.Add(a.Timeout)
		w.escalate(ctx, Approver{}, fmt.Sprintf("approval of %s timed out (%d/%d)", s.ID, st.Approval.Escalations, a.MaxEscalations))
	default:
		st.Approval.Outcome = approvalEscalatedFailed
		w.record(ctx, activities.LedgerAppendInput{Kind: "approval", Actor: actorWorkflow, StepID: s.ID, Action: s.Action,
			Outcome: approvalEscalatedFailed, Status: activities.LedgerFailed, Reason: "no decision after every escalation"},
			TimelineEntry{What: "approval of " + s.ID + " ran out of escalations"})
	}
}

// escalate raises the escalation level and notifies the next tier.
func (w *incident) escalate(ctx workflow.Context, by Approver, reason string) (int, string) {
	w.st.EscalationLevel++
	level := w.st.EscalationLevel
	tiers := w.pb.Escalation
	if len(tiers) == 0 {
		tiers = playbooks.DefaultEscalation
	}
	tier := tiers[min(level, len(tiers)-1)]
	w.record(ctx, activities.LedgerAppendInput{Kind: "escalation", Actor: cmp.Or(by.Subject, actorWorkflow), SourceIP: by.SourceIP,
		Outcome: tier, Reason: reason, Detail: map[string]string{"level": fmt.Sprint(level)}},
		TimelineEntry{Actor: cmp.Or(by.Username, by.Subject), What: fmt.Sprintf("escalated to %s (level %d)", tier, level)})
	w.notify(ctx, fmt.Sprintf("escalation-%d", level), "escalation", tier, reason)
	return level, tier
}

// notify sends a notification from the interpreter itself (approvals
// needed, escalations) without waiting for its delivery: it runs in its
// own coroutine (see sendNotification), and the run waits for it only
// before it closes or continues as new. A failure is recorded, never
// fatal.
func (w *incident) notify(ctx workflow.Context, stepID, event, channel, message string) {
	in := activities.ActionInput{
		IncidentID: w.st.IncidentID, StepID: stepID, Action: activities.NotifySend, Asset: w.st.Asset, Drill: w.drill(),
		DryRun: w.in.DryRun, IdempotencyKey: w.st.IncidentID + "/" + stepID, LedgerSeq: w.st.LedgerSeq,
		Params: map[string]string{"event": event, "channel": channel, "severity": w.st.Severity,
			"message": fmt.Sprintf("%s incident %s (%s on %s): %s", w.st.Severity, w.st.IncidentID, w.st.Playbook, w.st.Asset, message)},
	}
	w.notifying++
	workflow.Go(disconnected(ctx), func(gctx workflow.Context) {
		defer func() { w.notifying-- }()
		if err := w.sendNotification(gctx, in); err != nil {
			w.timeline(TimelineEntry{At: workflow.Now(gctx).UTC(), What: "notification to " + channel + " failed", Reason: err.Error()})
		}
	})
}

// notifyLocalOptions bound the first attempt of a notification as a
// local activity (runs with [notifyLocalChange]): the workflow task it
// runs in waits for it, so it tries each channel once and answers within
// three quarters of this (activities/platform.NotifySend), and is not
// retried: what it did not deliver goes as an activity.
var notifyLocalOptions = workflow.LocalActivityOptions{
	ScheduleToCloseTimeout: 2 * time.Second,
	RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
}

// sendNotification delivers a notification. In runs with
// [notifyLocalChange], while no step's action runs and the incident has
// not halted (it waits for a person's decision, or between phases), the
// first attempt is a local activity: a marker in the workflow task that
// requested it, where an activity costs a task through the server, its
// start and completion (each a history write) and another workflow task,
// about a quarter of what an incident waiting for an approval costs the
// server to open. The channels it did not reach get the notification as
// an activity, with the retries (all of them when the attempt failed).
// Beside a running action, the notification is an activity at once: the
// action's commands would otherwise wait for the attempt.
func (w *incident) sendNotification(ctx workflow.Context, in activities.ActionInput) error {
	act, err := activities.Lookup(activities.NotifySend)
	if err != nil {
		return err
	}
	if w.notifyLocal && w.running == 0 && w.halt == nil {
		var res activities.ActionResult
		err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, notifyLocalOptions), activities.NotifySend, in).Get(ctx, &res)
		switch {
		case err == nil && res.Outputs[activities.OutputUndelivered] == "":
			return nil
		case err == nil:
			in.Params = maps.Clone(in.Params)
			in.Params["only"] = res.Outputs[activities.OutputUndelivered]
		case RejectionType(err) == activities.ErrTypeBadParams:
			return err
		default:
			w.logger.Warn("notification: the first attempt failed; sending as an activity", "step", in.StepID, "error", err)
		}
	}
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, act.Options()), activities.NotifySend, in).Get(ctx, nil)
}
