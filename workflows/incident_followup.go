package workflows

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/playbooks"
)

// InheritedApproval is the approval every inherited compensation of a
// follow-up incident waits for: a lead decides whether the change the
// stopped run made (an isolation, a disabled account) is undone now. A
// denial keeps it and the incident goes on with the next one.
var InheritedApproval = playbooks.Approval{
	Roles: []string{"ir-lead"}, Quorum: 1, Timeout: 4 * time.Hour,
	OnTimeout: playbooks.TimeoutEscalate, MaxEscalations: 3,
}

// InheritedStepID is the step id of the i-th (from 0) inherited
// compensation, c, of a follow-up incident.
func InheritedStepID(i int, c PendingCompensation) string {
	return fmt.Sprintf("undo_%d_%s", i+1, c.StepID)
}

// inherit adds one recovery step per inherited compensation to the
// resolved playbook, as one parallel group before the playbook's own
// recovery steps. Only the
// follow-up playbook takes inherited compensations, and only catalog
// actions a playbook may use; the steps' parameters were rendered by the
// stopped run and are used literally.
func (w *incident) inherit() error {
	inh := w.in.Inherited
	if inh == nil {
		return nil
	}
	bad := func(format string, a ...any) error {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, a...), activities.ErrTypeBadParams, nil)
	}
	if w.pb.Name != OrphanedCompensationsPlaybook {
		return bad("inherited compensations are only taken by playbook %s, not %s", OrphanedCompensationsPlaybook, w.pb.Name)
	}
	steps := make([]playbooks.Step, 0, len(inh.Compensations))
	for i, c := range inh.Compensations {
		act, err := activities.Lookup(c.Action)
		if err != nil || act.Internal {
			return bad("inherited compensation %d (%s): %q is not a playbook action", i+1, c.StepID, c.Action)
		}
		id := InheritedStepID(i, c)
		if _, _, dup := w.pb.Step(id); dup {
			return bad("inherited compensation %d: step id %s is taken", i+1, id)
		}
		params := make(map[string]string, len(c.Params))
		for _, k := range workflow.DeterministicKeys(c.Params) {
			params[k] = literal(c.Params[k])
		}
		a := InheritedApproval
		a.Roles = slices.Clone(a.Roles)
		steps = append(steps, playbooks.Step{ID: id, Action: c.Action, Params: params, Approval: &a, OnFailure: playbooks.OnFailureContinue})
	}
	// Offered together: each waits for its own decision, in any order.
	var entry playbooks.Entry
	switch len(steps) {
	case 0:
		return nil
	case 1:
		entry.Step = &steps[0]
	default:
		entry.Parallel = steps
	}
	phases := slices.Clone(w.pb.Phases)
	for i := range phases {
		if phases[i].Name == playbooks.PhaseRecovery {
			phases[i].Entries = append([]playbooks.Entry{entry}, phases[i].Entries...)
		}
	}
	// A copy: the resolved playbook is shared with the worker's other
	// incidents (see sharedPlaybook).
	pb := *w.pb
	pb.Phases = phases
	w.pb = &pb
	return nil
}

// literal makes an already rendered parameter value render as itself.
func literal(v string) string {
	if !strings.Contains(v, "{{") {
		return v
	}
	return "{{" + strconv.Quote(v) + "}}"
}

// inheritedCompensation returns the inherited compensation of step id.
func (w *incident) inheritedCompensation(stepID string) (PendingCompensation, bool) {
	if w.in.Inherited == nil {
		return PendingCompensation{}, false
	}
	for i, c := range w.in.Inherited.Compensations {
		if InheritedStepID(i, c) == stepID {
			return c, true
		}
	}
	return PendingCompensation{}, false
}

// inheritInput gives an inherited compensation's step the input the
// stopped run would have given it (see compensate): the change it undoes
// belongs to the stopped incident (an isolation is recorded under that
// incident's id), so it acts as that incident, with the forward step's undo
// record and the compensation's idempotency key there (it converges with a
// run that compensates the same step).
func (w *incident) inheritInput(stepID string, in *activities.ActionInput) {
	c, ok := w.inheritedCompensation(stepID)
	if !ok {
		return
	}
	inc := w.in.Inherited.IncidentID
	in.IncidentID, in.StepID, in.Undo = inc, c.StepID+":compensate", c.Undo
	in.IdempotencyKey = inc + "/" + c.StepID + "/compensate"
}

// inheritedDetail adds to the incident_opened ledger entry of a follow-up
// which run it follows and how that run was stopped.
func (w *incident) inheritedDetail(d map[string]string) map[string]string {
	inh := w.in.Inherited
	if inh == nil {
		return d
	}
	d["follows_incident"], d["follows_workflow"], d["follows_run"] = inh.IncidentID, inh.WorkflowID, inh.RunID
	d["stopped"], d["stopped_by"], d["stopped_reason"] = inh.How, inh.By, inh.Reason
	d["stopped_at"] = inh.At.UTC().Format(time.RFC3339Nano)
	if inh.NewRunID != "" {
		d["reset_run"] = inh.NewRunID
	}
	d["inherited"] = fmt.Sprint(len(inh.Compensations))
	return d
}
