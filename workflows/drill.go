package workflows

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/playbooks"
)

// Drill modes ([DrillInput.Mode]).
const (
	// DrillModeLive runs the playbook's actions for real, on the drill
	// target only (activities refuse anything that is not a drill target).
	DrillModeLive = "live"
	// DrillModeDryRun runs every action as a plan: nothing changes.
	DrillModeDryRun = "dry-run"
)

// Objective names ([DrillObjective.Name]). Besides these, "<phase>_within"
// (for example "investigation_within") bounds one phase's own duration.
const (
	// ObjectiveContain bounds the time from opening the incident to the end
	// of the containment phase ([Metrics.TimeToContain]).
	ObjectiveContain = "contain_within"
	// ObjectiveRecover bounds the time from opening to the end of the
	// recovery phase ([Metrics.TimeToRecover]).
	ObjectiveRecover = "recover_within"
	// ObjectiveReport bounds the time from opening until the incident report
	// (the first report.generate step) is written.
	ObjectiveReport = "report_within"
)

// PhaseObjective returns the objective name that bounds the duration of
// phase ("containment_within").
func PhaseObjective(phase string) string { return phase + "_within" }

// ObjectiveNames lists every valid objective name.
func ObjectiveNames() []string {
	out := []string{ObjectiveContain, ObjectiveRecover, ObjectiveReport}
	for _, p := range playbooks.Phases {
		out = append(out, PhaseObjective(p))
	}
	return out
}

// Defaults of a drill run.
const (
	// DefaultDrillPollInterval is how often a drill reads its incident's
	// status to find steps waiting for approval.
	DefaultDrillPollInterval = 5 * time.Second
	// MinDrillPollInterval bounds the poll interval from below.
	MinDrillPollInterval = time.Second
	// DefaultDrillTimeout bounds a drill's incident.
	DefaultDrillTimeout = time.Hour
)

// DrillNameRE is what a drill name looks like: it becomes part of schedule,
// workflow and incident ids.
var DrillNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// DrillObjective is one time objective of a drill.
type DrillObjective struct {
	// Name is one of [ObjectiveNames].
	Name string
	// Within is the longest acceptable time.
	Within time.Duration
}

// DrillInput starts a [Drill]. The drills file (package internal/drills)
// turns each drill definition into one.
type DrillInput struct {
	// Name is the drill's name ([DrillNameRE]).
	Name string
	// Playbook and PlaybookVersion select the playbook ("" version: current).
	Playbook        string
	PlaybookVersion string `json:",omitempty"`
	// Target is the drill asset (for example the canary container).
	Target string
	// Mode is [DrillModeLive] or [DrillModeDryRun].
	Mode       string
	Objectives []DrillObjective
	// AutoApprove lists the step ids the drill approves itself, as soon as
	// they wait for approval. No other step is approved by the drill.
	AutoApprove []string `json:",omitempty"`
	// Labels are given to the drill's synthetic alert (templates see them
	// as .Labels, for example health_url).
	Labels map[string]string `json:",omitempty"`
	// PollInterval is how often the incident's status is read (0: default).
	PollInterval time.Duration `json:",omitempty"`
	// Timeout bounds the incident (0: [DefaultDrillTimeout]).
	Timeout time.Duration `json:",omitempty"`
	// TriggeredBy is who started the drill (a schedule, an operator).
	TriggeredBy string `json:",omitempty"`
}

// Validate checks the input; the drills file loader checks the same with
// line numbers, so this only catches hand-made inputs.
func (in DrillInput) Validate() error {
	var p []string
	if !DrillNameRE.MatchString(in.Name) {
		p = append(p, fmt.Sprintf("name %q: want %s", in.Name, DrillNameRE))
	}
	if in.Playbook == "" {
		p = append(p, "no playbook")
	}
	if in.Target == "" {
		p = append(p, "no target")
	}
	if in.Mode != DrillModeLive && in.Mode != DrillModeDryRun {
		p = append(p, fmt.Sprintf("mode %q: want %s or %s", in.Mode, DrillModeLive, DrillModeDryRun))
	}
	names := ObjectiveNames()
	for _, o := range in.Objectives {
		if !slices.Contains(names, o.Name) {
			p = append(p, fmt.Sprintf("objective %q: want one of %s", o.Name, strings.Join(names, ", ")))
		}
		if o.Within <= 0 {
			p = append(p, fmt.Sprintf("objective %s: %s is not positive", o.Name, o.Within))
		}
	}
	if in.PollInterval != 0 && in.PollInterval < MinDrillPollInterval {
		p = append(p, fmt.Sprintf("poll interval %s: want at least %s", in.PollInterval, MinDrillPollInterval))
	}
	if in.Timeout < 0 {
		p = append(p, fmt.Sprintf("timeout %s is negative", in.Timeout))
	}
	if len(p) > 0 {
		return fmt.Errorf("drill input: %s", strings.Join(p, "; "))
	}
	return nil
}

// DrillIncidentID is the incident id of a drill run: readable, unique per
// run, and valid as a ledger and evidence incident id.
func DrillIncidentID(name string, started time.Time, runID string) string {
	var short []byte
	for i := 0; i < len(runID) && len(short) < 8; i++ {
		if c := runID[i]; c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			short = append(short, c)
		}
	}
	return "drill-" + name + "-" + started.UTC().Format("20060102T150405Z") + "-" + string(short)
}

// DrillChildStatusInput is the input of [DrillChildStatusActivity].
type DrillChildStatusInput struct {
	WorkflowID string
	RunID      string
}

// DrillChildStatus is a compact view of an incident's status: what a drill
// needs to approve steps and to measure phases. It is polled repeatedly, so
// it leaves out the timeline and alerts to keep history small.
type DrillChildStatus struct {
	State    string
	Reason   string `json:",omitempty"`
	Phase    string
	OpenedAt time.Time
	ClosedAt time.Time `json:",omitzero"`
	Metrics  Metrics
	Steps    []DrillStepStatus
}

// DrillStepStatus is one step of a [DrillChildStatus].
type DrillStepStatus struct {
	ID         string
	Phase      string
	Action     string
	Status     string
	StartedAt  time.Time `json:",omitzero"`
	FinishedAt time.Time `json:",omitzero"`
	// AwaitingApproval is true while the step waits for a decision.
	AwaitingApproval bool `json:",omitempty"`
	// Roles and Quorum are the step's approval requirement, if any.
	Roles     []string `json:",omitempty"`
	Quorum    int      `json:",omitempty"`
	Approvals int      `json:",omitempty"`
}

// SummarizeStatus returns the drill's view of an incident status.
func SummarizeStatus(st IncidentStatus) DrillChildStatus {
	out := DrillChildStatus{State: st.State, Reason: st.Reason, Phase: st.Phase, OpenedAt: st.OpenedAt, ClosedAt: st.ClosedAt, Metrics: st.Metrics}
	for _, s := range st.Steps {
		ds := DrillStepStatus{ID: s.ID, Phase: s.Phase, Action: s.Action, Status: s.Status, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt}
		if a := s.Approval; a != nil {
			ds.Roles, ds.Quorum, ds.Approvals = a.Roles, a.Quorum, len(a.Approvals)
			ds.AwaitingApproval = s.Status == StepWaitingApproval && a.Outcome == ""
		}
		out.Steps = append(out.Steps, ds)
	}
	return out
}

// DrillApproveInput is the input of [DrillApproveActivity].
type DrillApproveInput struct {
	WorkflowID string
	RunID      string
	// UpdateID makes a retried approval the same update.
	UpdateID string
	Decision DecisionInput
}

// DrillApproveResult is the result of [DrillApproveActivity].
type DrillApproveResult struct {
	// Accepted is false when the incident's validator rejected the decision.
	Accepted bool
	// Rejection is the validator's reason.
	Rejection string         `json:",omitempty"`
	Result    DecisionResult `json:",omitzero"`
}

// DrillReportInput is the input of [DrillReportActivity].
type DrillReportInput struct {
	Report DrillReport
}

// DrillReportResult is the result of [DrillReportActivity]: evidence refs.
type DrillReportResult struct {
	MarkdownRef string
	JSONRef     string
}

// DrillPhase is one phase's measured duration.
type DrillPhase struct {
	Name     string
	Reached  bool
	Start    time.Time     `json:",omitzero"`
	End      time.Time     `json:",omitzero"`
	Duration time.Duration `json:",omitempty"`
}

// ObjectiveResult is one objective, measured.
type ObjectiveResult struct {
	Name   string
	Within time.Duration
	// Reached is false when the measured point never came (for example
	// containment did not complete); the objective then fails.
	Reached  bool
	Measured time.Duration `json:",omitempty"`
	Pass     bool
	Detail   string `json:",omitempty"`
}

// DrillApproval is one approval the drill sent.
type DrillApproval struct {
	StepID    string
	At        time.Time
	Accepted  bool
	Rejection string `json:",omitempty"`
}

// DrillReport is the result of a [Drill]: how each phase went against the
// objectives. It is also stored in the evidence locker (Markdown and JSON).
type DrillReport struct {
	Drill       string
	Playbook    string
	Target      string
	Mode        string
	TriggeredBy string `json:",omitempty"`
	// IncidentID and the incident workflow's execution.
	IncidentID         string
	IncidentWorkflowID string
	IncidentRunID      string `json:",omitempty"`
	StartedAt          time.Time
	FinishedAt         time.Time
	// State and Reason are the incident's final state.
	State  string
	Reason string `json:",omitempty"`
	Phases []DrillPhase
	// Objectives are evaluated in the order the drill lists them.
	Objectives []ObjectiveResult
	// AutoApproved are the approvals the drill sent (listed steps only).
	AutoApproved []DrillApproval `json:",omitempty"`
	// WaitedForPeople are steps that waited for approval but are not in the
	// drill's auto_approve list: the drill left them to people (or to the
	// step's own timeout policy).
	WaitedForPeople []string `json:",omitempty"`
	// Passed is true when the incident resolved, every objective passed
	// and every auto-approval was accepted; Failures say what did not.
	Passed   bool
	Failures []string `json:",omitempty"`
	// Notes are problems that did not decide the outcome (a status read
	// that failed and was retried on the next poll, …).
	Notes []string `json:",omitempty"`
	// MarkdownRef and JSONRef reference the stored report.
	MarkdownRef string `json:",omitempty"`
	JSONRef     string `json:",omitempty"`
}

// Activity options of the drill's activities.
var (
	drillStatusOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: 5 * time.Second, MaximumAttempts: 3, NonRetryableErrorTypes: activities.FinalErrorTypes()},
	}
	drillApproveOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: 10 * time.Second, MaximumAttempts: 5, NonRetryableErrorTypes: activities.FinalErrorTypes()},
	}
	drillReportOptions = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: 30 * time.Second, MaximumAttempts: 5, NonRetryableErrorTypes: activities.FinalErrorTypes()},
	}
)

// Drill runs one incident-response drill, registered as [DrillWorkflow]:
// the playbook runs as a child [Incident] with Drill set (and DryRun in
// dry-run mode) on the drill target; the steps listed in AutoApprove are
// approved by the drill identity ([DrillApproverSubject]) when they wait
// for approval; then every phase's duration is measured against the
// objectives and the report is stored in the evidence locker.
//
// A workflow cannot query or update another workflow, so the drill polls:
// a deterministic loop of timers ([DrillInput.PollInterval]) that ends when
// the child closes, reading the child's status through the
// [DrillChildStatusActivity] activity and approving through the
// [DrillApproveActivity] activity (the approve update, so the incident's
// validator decides and the drill learns the outcome). Polling costs a
// little approval latency (at most one interval), which the report shows in
// the remediation and recovery times; containment is measured by the
// incident itself.
//
// The drill completes with the report whether the objectives passed or
// not; it fails only for an invalid input.
func Drill(ctx workflow.Context, in DrillInput) (DrillReport, error) {
	if err := in.Validate(); err != nil {
		return DrillReport{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadParams, nil)
	}
	info := workflow.GetInfo(ctx)
	started := workflow.Now(ctx).UTC()
	d := &drillRun{
		in:     in,
		logger: log.With(workflow.GetLogger(ctx), "drill", in.Name),
		listed: map[string]bool{}, tried: map[string]bool{}, waited: map[string]bool{},
		poll: cmpDuration(in.PollInterval, DefaultDrillPollInterval), timeout: cmpDuration(in.Timeout, DefaultDrillTimeout),
	}
	for _, id := range in.AutoApprove {
		d.listed[id] = true
	}
	incidentID := DrillIncidentID(in.Name, started, info.WorkflowExecution.RunID)
	d.rep = DrillReport{
		Drill: in.Name, Playbook: in.Playbook, Target: in.Target, Mode: in.Mode, TriggeredBy: in.TriggeredBy,
		IncidentID: incidentID, IncidentWorkflowID: IncidentWorkflowID(incidentID), StartedAt: started,
	}
	child := d.start(ctx, started)
	var exec workflow.Execution
	if err := child.GetChildWorkflowExecution().Get(ctx, &exec); err != nil {
		d.rep.Failures = append(d.rep.Failures, fmt.Sprintf("incident did not start: %v", err))
		return d.finish(ctx, nil, nil), nil
	}
	d.rep.IncidentRunID = exec.RunID
	d.supervise(ctx, child, exec)

	// Whatever happened to the drill itself, wait for the incident (a
	// cancelled drill asks it to cancel; it then compensates) and report.
	dctx := disconnected(ctx)
	var res IncidentResult
	var resp *IncidentResult
	if err := child.Get(dctx, &res); err != nil {
		d.rep.Failures = append(d.rep.Failures, fmt.Sprintf("incident workflow failed: %v", err))
	} else {
		resp = &res
	}
	var final *DrillChildStatus
	if st, err := d.status(dctx, exec); err != nil {
		d.rep.Notes = append(d.rep.Notes, fmt.Sprintf("final status not read, phase durations unknown: %v", err))
	} else {
		final = &st
	}
	rep := d.finish(dctx, resp, final)
	if ctx.Err() != nil {
		return rep, temporal.NewCanceledError("drill cancelled")
	}
	return rep, nil
}

// drillRun is the state of one drill.
type drillRun struct {
	in      DrillInput
	logger  log.Logger
	poll    time.Duration
	timeout time.Duration
	rep     DrillReport
	// listed holds AutoApprove; tried the steps approved (or attempted);
	// waited the unlisted steps seen waiting for approval.
	listed, tried, waited map[string]bool
	statusFailures        int
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// start starts the incident as a child workflow.
func (d *drillRun) start(ctx workflow.Context, now time.Time) workflow.ChildWorkflowFuture {
	in := d.in
	labels := map[string]string{"drill": in.Name}
	for _, k := range workflow.DeterministicKeys(in.Labels) {
		labels[k] = in.Labels[k]
	}
	alert := Alert{
		ID: d.rep.IncidentID + "-alert", Fingerprint: "drill:" + in.Name, Source: "drill", Rule: "drill " + in.Name,
		Severity: "info", Asset: in.Target, Summary: fmt.Sprintf("scheduled drill %s (%s, %s)", in.Name, in.Playbook, in.Mode),
		Labels: labels, ObservedAt: now, ReceivedAt: now,
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:               d.rep.IncidentWorkflowID,
		WorkflowExecutionTimeout: d.timeout,
		// A drill that is cancelled or terminated asks its incident to
		// cancel: the incident then runs its compensations (lifting the
		// canary's isolation) instead of stopping half-way.
		ParentClosePolicy:   enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WaitForCancellation: true,
	})
	return workflow.ExecuteChildWorkflow(cctx, IncidentWorkflow, IncidentInput{
		IncidentID: d.rep.IncidentID, Key: d.rep.IncidentID, Alerts: []Alert{alert}, Asset: in.Target,
		Playbook: in.Playbook, PlaybookVersion: in.PlaybookVersion, Drill: true, DryRun: in.Mode == DrillModeDryRun,
		OpenedBy: DrillOpenedBy,
	})
}

// supervise polls the incident until it closes (or the drill is
// cancelled), approving listed steps as they become pending.
func (d *drillRun) supervise(ctx workflow.Context, child workflow.ChildWorkflowFuture, exec workflow.Execution) {
	closed := false
	for !closed && ctx.Err() == nil {
		tctx, cancel := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(tctx, d.poll)
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(child, func(workflow.Future) { closed = true })
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.Select(ctx)
		cancel()
		if closed || ctx.Err() != nil {
			return
		}
		st, err := d.status(ctx, exec)
		if err != nil {
			d.statusFailures++
			d.logger.Warn("reading the incident status failed; retrying at the next poll", "error", err)
			continue
		}
		d.approvePending(ctx, exec, st)
	}
}

// status reads the incident's status through the activity.
func (d *drillRun) status(ctx workflow.Context, exec workflow.Execution) (DrillChildStatus, error) {
	var st DrillChildStatus
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, drillStatusOptions), DrillChildStatusActivity,
		DrillChildStatusInput{WorkflowID: exec.ID, RunID: exec.RunID}).Get(ctx, &st)
	return st, err
}

// approvePending approves the listed steps that wait for approval, once
// each, and notes the unlisted ones.
func (d *drillRun) approvePending(ctx workflow.Context, exec workflow.Execution, st DrillChildStatus) {
	for _, s := range st.Steps {
		if !s.AwaitingApproval {
			continue
		}
		if !d.listed[s.ID] {
			if !d.waited[s.ID] {
				d.waited[s.ID] = true
				d.rep.WaitedForPeople = append(d.rep.WaitedForPeople, s.ID)
				d.logger.Info("step waits for approval and is not in auto_approve; leaving it to people", "step", s.ID)
			}
			continue
		}
		if d.tried[s.ID] {
			continue
		}
		d.tried[s.ID] = true
		roles := []string{"ir-lead"}
		for _, r := range s.Roles {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
		in := DrillApproveInput{
			WorkflowID: exec.ID, RunID: exec.RunID, UpdateID: d.rep.IncidentID + "/drill-approve/" + s.ID,
			Decision: DecisionInput{StepID: s.ID, Reason: fmt.Sprintf("drill %s: step listed in auto_approve", d.in.Name),
				Approver: Approver{Subject: DrillApproverSubject, Username: DrillApproverUsername, Roles: roles}},
		}
		var res DrillApproveResult
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, drillApproveOptions), DrillApproveActivity, in).Get(ctx, &res)
		a := DrillApproval{StepID: s.ID, At: workflow.Now(ctx).UTC(), Accepted: err == nil && res.Accepted, Rejection: res.Rejection}
		if err != nil {
			a.Rejection = err.Error()
		}
		d.rep.AutoApproved = append(d.rep.AutoApproved, a)
	}
}

// finish evaluates the run, stores the report and returns it.
func (d *drillRun) finish(ctx workflow.Context, res *IncidentResult, final *DrillChildStatus) DrillReport {
	rep := d.rep
	rep.FinishedAt = workflow.Now(ctx).UTC()
	if d.statusFailures > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d status read(s) failed during the drill", d.statusFailures))
	}
	EvaluateDrill(&rep, d.in, res, final)
	var stored DrillReportResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, drillReportOptions), DrillReportActivity,
		DrillReportInput{Report: rep}).Get(ctx, &stored)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("report not stored in the evidence locker: %v", err))
	} else {
		rep.MarkdownRef, rep.JSONRef = stored.MarkdownRef, stored.JSONRef
	}
	d.logger.Info("drill finished", "incident", rep.IncidentID, "passed", rep.Passed, "failures", len(rep.Failures))
	return rep
}

// ErrNoObjectives is reported (as a failure) for a drill without objectives.
var ErrNoObjectives = errors.New("the drill has no objectives")

// EvaluateDrill fills rep's state, phases, objectives, failures and Passed
// from the incident's result (nil if the incident failed) and its final
// status (nil if it could not be read). It is a pure function, so the
// workflow and tests share it.
func EvaluateDrill(rep *DrillReport, in DrillInput, res *IncidentResult, final *DrillChildStatus) {
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
		rep.Failures = append(rep.Failures, fmt.Sprintf("incident ended %s, want %s: %s", cmpOr(rep.State, "unknown"), StateResolved, rep.Reason))
	}
	for _, a := range rep.AutoApproved {
		if !a.Accepted {
			rep.Failures = append(rep.Failures, fmt.Sprintf("auto-approval of step %s was not accepted: %s", a.StepID, a.Rejection))
		}
	}
	for _, id := range in.AutoApprove {
		if !slices.ContainsFunc(rep.AutoApproved, func(a DrillApproval) bool { return a.StepID == id }) && final != nil &&
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
func measurePhases(st DrillChildStatus, m Metrics) []DrillPhase {
	var out []DrillPhase
	prevEnd := st.OpenedAt
	for _, name := range playbooks.Phases {
		p := DrillPhase{Name: name}
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
func measureObjective(o DrillObjective, m Metrics, phases []DrillPhase, final *DrillChildStatus) ObjectiveResult {
	r := ObjectiveResult{Name: o.Name, Within: o.Within}
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
