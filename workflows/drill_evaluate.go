package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/drillreport"
	"github.com/iru-responder/responder/playbooks"
)

// ErrNoObjectives is reported (as a failure) for a drill without objectives.
var ErrNoObjectives = errors.New("the drill has no objectives")

// EvaluateDrill fills rep's state, phases, objectives, failures and Passed
// from the incident's result (nil if the incident failed) and its final
// status (nil if it could not be read). It is a pure function, so the
// workflow and tests share it.
func EvaluateDrill(rep *drillreport.Report, in DrillInput, res *IncidentResult, final *DrillChildStatus) {
	var metrics Metrics
	switch {
	case res != nil:
		rep.State, rep.Reason, metrics = res.State, res.Reason, res.Metrics
	case final != nil:
		rep.State, rep.Reason, metrics = final.State, final.Reason, final.Metrics
	}
	if final != nil {
		rep.Phases = measurePhases(*final, metrics)
	}
	if rep.State != StateResolved {
		rep.Failures = append(rep.Failures, fmt.Sprintf("incident ended %s, want %s: %s", cmp.Or(rep.State, "unknown"), StateResolved, rep.Reason))
	}
	for _, a := range rep.AutoApproved {
		if !a.Accepted {
			rep.Failures = append(rep.Failures, fmt.Sprintf("auto-approval of step %s was not accepted: %s", a.StepID, a.Rejection))
		}
	}
	for _, id := range in.AutoApprove {
		if !slices.ContainsFunc(rep.AutoApproved, func(a drillreport.Approval) bool { return a.StepID == id }) && final != nil &&
			slices.ContainsFunc(final.Steps, func(s DrillStepStatus) bool { return s.ID == id && s.Status != StepSkipped && s.Status != StepPending }) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("step %s is in auto_approve but never waited for approval", id))
		}
	}
	if len(in.Objectives) == 0 {
		rep.Failures = append(rep.Failures, ErrNoObjectives.Error())
	}
	for _, o := range in.Objectives {
		r := measureObjective(o, metrics, rep.Phases, final)
		rep.Objectives = append(rep.Objectives, r)
		if !r.Pass {
			rep.Failures = append(rep.Failures, fmt.Sprintf("objective %s %s: %s", o.Name, o.Within, r.Detail))
		}
	}
	rep.Passed = len(rep.Failures) == 0
}

// measurePhases measures each phase from the final status: a phase ends
// when its last step finished (containment and recovery: when the
// incident recorded them), and starts where the previous reached phase
// ended (the incident's opening for the first), so approval waits count.
func measurePhases(st DrillChildStatus, m Metrics) []drillreport.Phase {
	var out []drillreport.Phase
	prevEnd := st.OpenedAt
	for _, name := range playbooks.Phases {
		p := drillreport.Phase{Name: name}
		var end time.Time
		for _, s := range st.Steps {
			if s.Phase != name {
				continue
			}
			if !s.StartedAt.IsZero() || !s.FinishedAt.IsZero() {
				p.Reached = true
			}
			if s.FinishedAt.After(end) {
				end = s.FinishedAt
			}
		}
		switch {
		case name == playbooks.PhaseContainment && !m.ContainedAt.IsZero():
			p.Reached, end = true, m.ContainedAt
		case name == playbooks.PhaseRecovery && !m.RecoveredAt.IsZero():
			p.Reached, end = true, m.RecoveredAt
		case name == playbooks.PhasePostIncident && p.Reached && !st.ClosedAt.IsZero():
			end = st.ClosedAt
		}
		if p.Reached {
			if end.Before(prevEnd) {
				end = prevEnd
			}
			p.Start, p.End, p.Duration = prevEnd, end, end.Sub(prevEnd)
			prevEnd = end
		}
		out = append(out, p)
	}
	return out
}

// measureObjective measures one objective.
func measureObjective(o DrillObjective, m Metrics, phases []drillreport.Phase, final *DrillChildStatus) drillreport.ObjectiveResult {
	r := drillreport.ObjectiveResult{Name: o.Name, Within: o.Within}
	switch o.Name {
	case ObjectiveContain:
		r.Reached, r.Measured = !m.ContainedAt.IsZero(), m.TimeToContain
		if !r.Reached {
			r.Detail = "containment did not complete"
		}
	case ObjectiveRecover:
		r.Reached, r.Measured = !m.RecoveredAt.IsZero(), m.TimeToRecover
		if !r.Reached {
			r.Detail = "recovery did not complete"
		}
	case ObjectiveReport:
		r.Detail = "no report was written"
		if final == nil {
			r.Detail = "the incident status could not be read"
		} else {
			for _, s := range final.Steps {
				if s.Action == activities.ReportGenerate && s.Status == StepSucceeded {
					r.Reached, r.Measured = true, s.FinishedAt.Sub(final.OpenedAt)
					break
				}
			}
		}
	default:
		phase, _ := strings.CutSuffix(o.Name, "_within")
		r.Detail = "phase " + phase + " was not reached"
		if final == nil {
			r.Detail = "the incident status could not be read"
		}
		for _, p := range phases {
			if p.Name == phase && p.Reached {
				r.Reached, r.Measured = true, p.Duration
			}
		}
	}
	if r.Reached {
		r.Pass = r.Measured <= o.Within
		if r.Pass {
			r.Detail = fmt.Sprintf("%s within %s", r.Measured, o.Within)
		} else {
			r.Detail = fmt.Sprintf("took %s, over %s by %s", r.Measured, o.Within, r.Measured-o.Within)
		}
	}
	return r
}
