package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/playbooks"
)

// Ledger entry kinds the report reads (activities.LedgerAppendInput.Kind).
const (
	kindOpened            = "incident_opened"
	kindClosed            = "incident_closed"
	kindAlert             = "alert"
	kindStep              = "step"
	kindApprovalRequested = "approval_requested"
	kindApproval          = "approval"
	kindDenial            = "denial"
	kindCompensation      = "compensation"
	kindAbort             = "abort"
	kindAcknowledgement   = "acknowledgement"
	kindEscalation        = "escalation"
	kindRelated           = "related"
)

// Step statuses and decision outcomes as the incident workflow records them.
const (
	stepPending         = "pending"
	stepWaitingApproval = "waiting_approval"
	stepRunning         = "running"
	stepFailed          = "failed"
	stepSkipped         = "skipped"
	stepDenied          = "denied"
	stepCompensated     = "compensated"
	outcomeApproved     = "approved"
	outcomeDrill        = "drill_approved"
	outcomeEscalFailed  = "escalated_failed"
	outcomeProtected    = "protected_account"
	relatedReported     = "reported"
	relatedRerouted     = "rerouted"
)

// FromLedger folds an incident's ledger entries, in seq order, into the
// report's account of the incident: the opening (playbook, asset, planned
// steps), the alerts with their counts, every step with its status,
// timings, parameters, outputs, summary or error and decisions, the
// timeline, the closing when there is one, and the response times:
//
//   - time to acknowledge: the first decision, acknowledgement, escalation
//     or abort of a person (an actor that is neither the workflow nor a
//     system identity);
//   - time to contain: when the last containing action of the containment
//     phase finished successfully (an action whose catalog entry has
//     [activities.Action.Contains]: the isolation verified, the sessions
//     revoked);
//   - time to recover: when the last step of the recovery phase finished,
//     when every recovery step succeeded or was skipped and nobody aborted.
//
// All three are measured from the incident_opened entry. Entries without
// a record (stores older than records) are left out; a record that does not
// decode is an error. The caller verifies the chain: FromLedger trusts the
// records it is given.
func FromLedger(entries []ledger.Entry) (Incident, error) {
	f := folder{steps: map[string]int{}, alerts: map[string]int{}}
	for _, e := range entries {
		if e.Record == nil {
			continue
		}
		var r activities.LedgerAppendInput
		if err := json.Unmarshal(e.Record, &r); err != nil {
			return Incident{}, fmt.Errorf("report: ledger entry %d: record: %w", e.Seq, err)
		}
		f.entry(e.Time, r)
	}
	return f.done(), nil
}

// folder accumulates the incident while entries are folded in.
type folder struct {
	inc    Incident
	steps  map[string]int // step id → index in inc.Steps
	alerts map[string]int // fingerprint → index in inc.Alerts
	// acked, contained, recovered are the metric instants found so far.
	acked, contained, recovered time.Time
	recoveryBroken              bool
}

func (f *folder) entry(at time.Time, r activities.LedgerAppendInput) {
	f.inc.ID = cmp.Or(f.inc.ID, r.IncidentID)
	actor := cmp.Or(r.ActorName, r.Actor)
	if r.What != "" {
		f.inc.Timeline = append(f.inc.Timeline, TimelineEntry{At: at, Actor: actor, SourceIP: r.SourceIP, What: r.What, StepID: r.StepID, Reason: r.Reason})
	}
	switch r.Kind {
	case kindOpened:
		f.opened(at, r)
	case kindClosed:
		f.inc.State, f.inc.Reason, f.inc.ClosedAt = r.Outcome, r.Reason, at
	case kindAlert:
		f.alert(at, r.Alerts)
	case kindStep:
		f.stepDone(at, r)
	case kindApprovalRequested:
		s := f.step(r)
		if !terminal(s.Status) {
			s.Status = stepWaitingApproval
		}
		if r.Outcome == outcomeProtected {
			s.StartedAt, s.Summary = time.Time{}, r.Reason
		}
	case kindApproval:
		s := f.step(r)
		switch r.Outcome {
		case outcomeApproved, outcomeDrill:
			s.Decisions = append(s.Decisions, Approval{Decision: outcomeApproved, By: actor, SourceIP: r.SourceIP, Reason: r.Reason, At: at})
		case outcomeEscalFailed:
			s.Status, s.FinishedAt, s.Error = stepFailed, at, "approval escalations exhausted"
			f.breakRecovery(r)
		}
		if s.Status == stepWaitingApproval && r.Outcome != outcomeEscalFailed && (r.Quorum == 0 || r.Approvals >= r.Quorum) {
			s.Status = stepPending
		}
	case kindDenial:
		s := f.step(r)
		s.Decisions = append(s.Decisions, Approval{Decision: stepDenied, By: actor, SourceIP: r.SourceIP, Reason: r.Reason, At: at})
		s.Status, s.FinishedAt = stepDenied, at
		f.breakRecovery(r)
	case kindCompensation:
		s := f.step(r)
		s.Compensation = r.Outcome
		if r.Outcome == stepCompensated {
			s.Status = stepCompensated
		}
	case kindAbort:
		f.recoveryBroken = true
	case kindRelated:
		f.related(at, r.Related)
	}
	if human(r) && f.acked.IsZero() {
		f.acked = at
	}
}

// opened takes the incident_opened entry: the incident and its planned steps.
func (f *folder) opened(at time.Time, r activities.LedgerAppendInput) {
	f.inc.OpenedAt, f.inc.State = at, StateOpen
	o := r.Opening
	if o == nil {
		return
	}
	f.inc.Playbook, f.inc.PlaybookVersion, f.inc.Asset, f.inc.Severity, f.inc.Drill = o.Playbook, o.PlaybookVersion, o.Asset, o.Severity, o.Drill
	for _, p := range o.Steps {
		if _, ok := f.steps[p.ID]; !ok {
			f.steps[p.ID] = len(f.inc.Steps)
			f.inc.Steps = append(f.inc.Steps, Step{ID: p.ID, Phase: p.Phase, Action: p.Action, Status: stepPending})
		}
	}
}

// related takes a related entry: a link to another incident on the same
// asset, once per incident (a later entry may add its incident id).
func (f *folder) related(at time.Time, l *activities.LedgerRelated) {
	if l == nil || l.WorkflowID == "" {
		return
	}
	for i := range f.inc.Related {
		if f.inc.Related[i].WorkflowID == l.WorkflowID {
			f.inc.Related[i].IncidentID = cmp.Or(f.inc.Related[i].IncidentID, l.IncidentID)
			return
		}
	}
	f.inc.Related = append(f.inc.Related, Related{WorkflowID: l.WorkflowID, IncidentID: l.IncidentID, Playbook: l.Playbook, How: l.How, At: at})
}

// alert takes an alert entry: new alerts are added, known ones counted.
func (f *folder) alert(at time.Time, alerts []activities.LedgerAlert) {
	for _, a := range alerts {
		i, ok := f.alerts[a.Fingerprint]
		if !a.ResolvedAt.IsZero() {
			// A resolution: it marks a known alert, and counts as no alert.
			if ok {
				f.inc.Alerts[i].ResolvedAt = a.ResolvedAt
			}
			continue
		}
		if !ok {
			i = len(f.inc.Alerts)
			f.alerts[a.Fingerprint] = i
			f.inc.Alerts = append(f.inc.Alerts, Alert{Source: a.Source, Rule: a.Rule, Severity: a.Severity, Summary: a.Summary,
				ObservedAt: a.ObservedAt, ReceivedAt: a.ReceivedAt, FirstSeen: at})
		}
		x := &f.inc.Alerts[i]
		x.Count, x.LastSeen = max(x.Count, a.Count), at
		x.ResolvedAt = time.Time{} // fired again after a resolution
		if x.Severity == "" {
			x.Severity = a.Severity
		}
	}
}

// stepDone takes the entry of a step that ran, failed or was skipped.
func (f *folder) stepDone(at time.Time, r activities.LedgerAppendInput) {
	s := f.step(r)
	s.Status, s.FinishedAt, s.StartedAt = r.Outcome, at, r.StartedAt
	s.Params, s.Outputs, s.EvidenceRefs = r.Params, r.Outputs, r.EvidenceRefs
	s.Compensation = cmp.Or(r.Compensation, s.Compensation)
	if r.Outcome == stepFailed {
		s.Error, s.Summary = r.Reason, ""
	} else {
		s.Summary, s.Error = r.Reason, ""
	}
	switch s.Phase {
	case playbooks.PhaseContainment:
		if act, err := activities.Lookup(s.Action); err == nil && act.Contains && r.Outcome == stepSucceeded && at.After(f.contained) {
			f.contained = at
		}
	case playbooks.PhaseRecovery:
		if r.Outcome != stepSucceeded && r.Outcome != stepSkipped {
			f.recoveryBroken = true
		}
		if at.After(f.recovered) {
			f.recovered = at
		}
	}
}

// breakRecovery notes a step of the recovery phase that did not succeed.
func (f *folder) breakRecovery(r activities.LedgerAppendInput) {
	if s := f.step(r); s.Phase == playbooks.PhaseRecovery {
		f.recoveryBroken = true
	}
}

// step returns the step an entry is about, adding it when the opening did
// not plan it.
func (f *folder) step(r activities.LedgerAppendInput) *Step {
	i, ok := f.steps[r.StepID]
	if !ok {
		i = len(f.inc.Steps)
		f.steps[r.StepID] = i
		f.inc.Steps = append(f.inc.Steps, Step{ID: r.StepID, Phase: r.Phase, Action: r.Action, Status: stepPending})
	}
	return &f.inc.Steps[i]
}

// done computes the response times and returns the incident.
func (f *folder) done() Incident {
	since := func(t time.Time) time.Duration {
		if t.IsZero() || f.inc.OpenedAt.IsZero() {
			return 0
		}
		return t.Sub(f.inc.OpenedAt)
	}
	f.inc.TimeToAcknowledge, f.inc.TimeToContain = since(f.acked), since(f.contained)
	if !f.recoveryBroken {
		f.inc.TimeToRecover = since(f.recovered)
	}
	f.inc.ContainmentPhase = phaseDuration(f.inc.Steps, playbooks.PhaseContainment)
	return f.inc
}

// phaseDuration is how long a phase's steps that ended took, from the
// first to start (its end, when it never started: skipped) until the last
// to end; 0 when none ended.
func phaseDuration(steps []Step, phase string) time.Duration {
	var first, last time.Time
	for _, s := range steps {
		if s.Phase != phase || s.FinishedAt.IsZero() {
			continue
		}
		start := cmp.Or(s.StartedAt, s.FinishedAt)
		if first.IsZero() || start.Before(first) {
			first = start
		}
		if s.FinishedAt.After(last) {
			last = s.FinishedAt
		}
	}
	return last.Sub(first)
}

// human reports whether r is a person's decision, acknowledgement,
// escalation or abort (the first one acknowledges the incident).
func human(r activities.LedgerAppendInput) bool {
	switch r.Kind {
	case kindApproval, kindDenial, kindAcknowledgement, kindEscalation, kindAbort:
	default:
		return false
	}
	return r.Actor != "" && r.Actor != "workflow" && !strings.HasPrefix(r.Actor, "system:")
}

// terminal reports whether a step status is final.
func terminal(status string) bool {
	return slices.Contains([]string{stepSucceeded, stepFailed, stepSkipped, stepDenied, stepCompensated}, status)
}

// MarkRunning sets the status of step id to running, for the step that
// writes the report while the ledger has not recorded it yet.
func (inc *Incident) MarkRunning(id string, since time.Time) {
	for i := range inc.Steps {
		if s := &inc.Steps[i]; s.ID == id && !terminal(s.Status) {
			s.Status, s.StartedAt = stepRunning, since
		}
	}
}
