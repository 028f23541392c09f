package workflows

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
)

// ControlDriftPlaybook is the playbook a failing control opens when the
// controls file names none.
const ControlDriftPlaybook = "control-drift"

// ControlsActor opens the control-drift incidents and collects the check
// results as evidence.
const ControlsActor = activities.ControlsCollector

// DefaultControlsParallel bounds the checks one [Controls] run has in
// flight.
const DefaultControlsParallel = 4

// ControlsInput configures a [Controls] run.
type ControlsInput struct {
	// IDs limits the run to these controls (empty: every control).
	IDs []string `json:",omitempty"`
	// Drill checks lab targets only.
	Drill bool `json:",omitempty"`
	// ForIncident is set when an incident's step runs the check
	// ([activities.ControlsCollect], [activities.ControlsRecheck]): each
	// result is also kept as that incident's evidence, and no incident is
	// opened or told.
	ForIncident string `json:",omitempty"`
	// Parallel bounds the checks in flight (0: [DefaultControlsParallel]).
	Parallel int `json:",omitempty"`
}

// ControlsResult is the result of a [Controls] run.
type ControlsResult struct {
	// Digest is the SHA-256 of the controls file the worker loaded.
	Digest string
	// Controls are the outcomes, by control id.
	Controls                []ControlOutcome
	Passed, Failed, Unknown int
	// Errors counts the checks that could not run at all.
	Errors int
}

// ControlOutcome is one control's outcome in a [Controls] run.
type ControlOutcome struct {
	ID       string
	Status   string `json:",omitempty"`
	Findings int    `json:",omitempty"`
	// FirstFinding describes the first finding for people ("" none).
	FirstFinding string `json:",omitempty"`
	// EvidenceRef is the result as kept in the evidence locker;
	// LastPassRef the control's newest passing result ("" none yet).
	EvidenceRef string `json:",omitempty"`
	LastPassRef string `json:",omitempty"`
	// Incident is the workflow id of the control-drift incident the
	// failure opened or updated ("" none).
	Incident string `json:",omitempty"`
	// Error says why the check, its evidence or its incident failed.
	Error string `json:",omitempty"`
}

// ControlEvidenceInput is the input of [ControlsEvidenceActivity]: one
// check result to keep in the evidence locker.
type ControlEvidenceInput struct {
	Result activities.ControlCheckResult
	// Run is the workflow id of the run that checked.
	Run string
	// ForIncident also keeps the result as this incident's evidence.
	ForIncident string `json:",omitempty"`
}

// ControlEvidenceResult is the result of [ControlsEvidenceActivity].
type ControlEvidenceResult struct {
	// Ref is the result in the control's evidence (and SHA256 its hash);
	// IncidentRef the copy in the incident's evidence ("" none).
	Ref         string
	SHA256      string
	IncidentRef string `json:",omitempty"`
	// LastPassRef is the control's newest passing result, this one
	// included ("" none yet).
	LastPassRef string `json:",omitempty"`
}

// ControlIncidentInput is the input of [ControlsIncidentActivity]: the
// failing result of one control, to open its incident or join the one
// open for it.
type ControlIncidentInput struct {
	Result activities.ControlCheckResult
	// EvidenceRef is the result in the locker; LastPassRef the control's
	// newest passing result ("" none).
	EvidenceRef string
	SHA256      string
	LastPassRef string `json:",omitempty"`
	Drill       bool   `json:",omitempty"`
}

// ControlIncidentResult is the result of [ControlsIncidentActivity].
type ControlIncidentResult struct {
	WorkflowID string
}

// ControlDriftKey is the correlation key of the control-drift incident of
// control id: one incident per control while it is open, whatever how
// often the control fails.
func ControlDriftKey(playbook, id string) string {
	return cmp.Or(playbook, ControlDriftPlaybook) + ":" + id
}

// controlsListOptions bound controls.list; controlsCheckOptions a check;
// controlsRecordOptions the evidence and the incident's start.
var (
	controlsListOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			MaximumAttempts: 5, NonRetryableErrorTypes: activities.FinalErrorTypes()},
	}
	controlsCheckOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: 3, NonRetryableErrorTypes: activities.FinalErrorTypes()},
	}
	controlsRecordOptions = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: 10, NonRetryableErrorTypes: activities.FinalErrorTypes()},
	}
)

// Controls checks the hardening guide's controls, registered as
// [ControlsWorkflow] and run daily by the [ControlsScheduleID] schedule:
// it lists the controls ([activities.ControlsList]), runs one
// [activities.ControlsCheck] activity per control (at most
// [ControlsInput.Parallel] at once), keeps every result in the evidence
// locker ([ControlsEvidenceActivity]) and, for each control that fails or
// cannot be established, opens its control-drift incident or tells the one
// open for it ([ControlsIncidentActivity]: a signal-with-start keyed by
// the control, as the intake opens incidents). A check that cannot run is
// reported in the result, never failing the others.
func Controls(ctx workflow.Context, in ControlsInput) (ControlsResult, error) {
	lctx := workflow.WithActivityOptions(ctx, controlsListOptions)
	var list activities.ControlsListResult
	if err := workflow.ExecuteActivity(lctx, activities.ControlsList, activities.ControlsListInput{IDs: in.IDs}).Get(ctx, &list); err != nil {
		return ControlsResult{}, fmt.Errorf("list controls: %w", err)
	}
	ctrls := slices.Clone(list.Controls)
	slices.SortFunc(ctrls, func(a, b activities.ControlSummary) int { return cmp.Compare(a.ID, b.ID) })
	ctrls = slices.CompactFunc(ctrls, func(a, b activities.ControlSummary) bool { return a.ID == b.ID })
	if len(in.IDs) > 0 {
		for _, id := range in.IDs {
			if !slices.ContainsFunc(ctrls, func(c activities.ControlSummary) bool { return c.ID == id }) {
				return ControlsResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("no control %q in the controls file", id), activities.ErrTypeNotFound, nil)
			}
		}
	}
	limit := in.Parallel
	if limit <= 0 {
		limit = DefaultControlsParallel
	}
	out := make([]ControlOutcome, len(ctrls))
	running, done := 0, 0
	for i, c := range ctrls {
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer func() { done++ }()
			if err := workflow.Await(gctx, func() bool { return running < limit }); err != nil {
				out[i] = ControlOutcome{ID: c.ID, Error: err.Error()}
				return
			}
			running++
			out[i] = checkControl(gctx, in, c)
			running--
		})
	}
	if err := workflow.Await(ctx, func() bool { return done == len(ctrls) }); err != nil {
		return ControlsResult{}, fmt.Errorf("wait for the checks: %w", err)
	}
	res := ControlsResult{Digest: list.Digest, Controls: out}
	for _, o := range out {
		switch {
		case o.Status == activities.ControlPass:
			res.Passed++
		case o.Status == activities.ControlFail:
			res.Failed++
		case o.Status == activities.ControlUnknown:
			res.Unknown++
		}
		if o.Status == "" {
			res.Errors++
		}
	}
	workflow.GetLogger(ctx).Info("controls checked", "passed", res.Passed, "failed", res.Failed, "unknown", res.Unknown, "errors", res.Errors)
	return res, nil
}

// checkControl checks one control, keeps the result and, on a failure,
// opens or tells its incident.
func checkControl(ctx workflow.Context, in ControlsInput, c activities.ControlSummary) ControlOutcome {
	o := ControlOutcome{ID: c.ID}
	cctx := workflow.WithActivityOptions(ctx, controlsCheckOptions)
	var r activities.ControlCheckResult
	if err := workflow.ExecuteActivity(cctx, activities.ControlsCheck, activities.ControlCheckInput{ID: c.ID, Drill: in.Drill}).Get(ctx, &r); err != nil {
		o.Error = "check: " + err.Error()
		return o
	}
	if r.Control.ID == "" {
		r.Control = c
	}
	if r.CheckedAt.IsZero() {
		r.CheckedAt = workflow.Now(ctx).UTC()
	}
	o.Status, o.Findings, o.FirstFinding = r.Status, len(r.Findings), firstFinding(r)
	rctx := workflow.WithActivityOptions(ctx, controlsRecordOptions)
	var ev ControlEvidenceResult
	if err := workflow.ExecuteActivity(rctx, ControlsEvidenceActivity, ControlEvidenceInput{
		Result: r, Run: workflow.GetInfo(ctx).WorkflowExecution.ID, ForIncident: in.ForIncident,
	}).Get(ctx, &ev); err != nil {
		o.Error = "evidence: " + err.Error()
		return o
	}
	o.EvidenceRef, o.LastPassRef = ev.Ref, ev.LastPassRef
	if in.ForIncident != "" {
		o.EvidenceRef = cmp.Or(ev.IncidentRef, ev.Ref)
	}
	if r.Status == activities.ControlPass || in.ForIncident != "" {
		return o
	}
	var opened ControlIncidentResult
	if err := workflow.ExecuteActivity(rctx, ControlsIncidentActivity, ControlIncidentInput{
		Result: r, EvidenceRef: ev.Ref, SHA256: ev.SHA256, LastPassRef: ev.LastPassRef, Drill: in.Drill,
	}).Get(ctx, &opened); err != nil {
		o.Error = "incident: " + err.Error()
		return o
	}
	o.Incident = opened.WorkflowID
	return o
}

// firstFinding describes the first finding of r for people.
func firstFinding(r activities.ControlCheckResult) string {
	if len(r.Findings) == 0 {
		return ""
	}
	f := r.Findings[0]
	s := fmt.Sprintf("%s %s: %s, expected %s", f.Target, f.Setting, f.Observed, f.Expected)
	if n := len(r.Findings) - 1; n > 0 {
		s += fmt.Sprintf(" (+%d more)", n)
	}
	return s
}
