package workflows

import (
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/drillreport"
)

// drillReportOptions bound the drill's one activity, storing its report.
var drillReportOptions = workflow.ActivityOptions{
	StartToCloseTimeout: time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
		MaximumInterval: 30 * time.Second, MaximumAttempts: 5, NonRetryableErrorTypes: activities.FinalErrorTypes()},
}

// Drill runs one incident-response drill, registered as [DrillWorkflow]:
// the playbook runs as a child [Incident] with Drill set (and DryRun in
// dry-run mode) on the drill target, and with the drill's AutoApprove list,
// which the incident approves itself as the drill identity
// ([DrillApproverSubject]) when those steps wait for approval. When the
// incident closes, every phase's duration is measured from its result
// against the objectives and the report is stored in the evidence locker.
//
// The drill completes with the report whether the objectives passed or
// not; it fails only for an invalid input.
func Drill(ctx workflow.Context, in DrillInput) (drillreport.Report, error) {
	if err := in.Validate(); err != nil {
		return drillreport.Report{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadParams, nil)
	}
	info := workflow.GetInfo(ctx)
	started := workflow.Now(ctx).UTC()
	d := &drillRun{in: in, logger: log.With(workflow.GetLogger(ctx), "drill", in.Name), timeout: cmpDuration(in.Timeout, DefaultDrillTimeout)}
	incidentID := DrillIncidentID(in.Name, started, info.WorkflowExecution.RunID)
	d.rep = drillreport.Report{
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

	// Whatever happens to the drill itself, wait for the incident (a
	// cancelled drill asks it to cancel; it then compensates) and report.
	dctx := disconnected(ctx)
	var res IncidentResult
	var resp *IncidentResult
	var final *DrillChildStatus
	if err := child.Get(dctx, &res); err != nil {
		d.rep.Failures = append(d.rep.Failures, fmt.Sprintf("incident workflow failed: %v", err))
	} else {
		resp = &res
		st := drillStatusOf(res)
		final = &st
		d.approvals(res)
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
	timeout time.Duration
	rep     drillreport.Report
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
		OpenedBy: DrillOpenedBy, AutoApprove: in.AutoApprove,
	})
}

// approvals reports, from the incident's result, how the approvals of
// the listed steps ended and which unlisted steps waited for people.
func (d *drillRun) approvals(res IncidentResult) {
	for _, s := range res.Steps {
		if s.Approval == "" {
			continue
		}
		if !slices.Contains(d.in.AutoApprove, s.ID) {
			d.rep.WaitedForPeople = append(d.rep.WaitedForPeople, s.ID)
			continue
		}
		a := drillreport.Approval{StepID: s.ID, At: s.StartedAt, Accepted: s.Approval == approvalDrillApproved}
		if !a.Accepted {
			a.Rejection = "the step's approval ended " + s.Approval
		}
		d.rep.AutoApproved = append(d.rep.AutoApproved, a)
	}
}

// finish evaluates the run, stores the report and returns it.
func (d *drillRun) finish(ctx workflow.Context, res *IncidentResult, final *DrillChildStatus) drillreport.Report {
	rep := d.rep
	rep.FinishedAt = workflow.Now(ctx).UTC()
	EvaluateDrill(&rep, d.in, res, final)
	var stored drillreport.Result
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, drillReportOptions), DrillReportActivity,
		drillreport.Input{Report: rep}).Get(ctx, &stored)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("report not stored in the evidence locker: %v", err))
	} else {
		rep.MarkdownRef, rep.JSONRef = stored.MarkdownRef, stored.JSONRef
	}
	d.logger.Info("drill finished", "incident", rep.IncidentID, "passed", rep.Passed, "failures", len(rep.Failures))
	return rep
}
