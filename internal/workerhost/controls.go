package workerhost

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/stores"
	"github.com/iru-responder/responder/workflows"
)

// controlsStepTimeout bounds the check an incident's step runs
// ([activities.ControlsCollect], [activities.ControlsRecheck]).
const controlsStepTimeout = 5 * time.Minute

// ControlsLocker is the part of the evidence locker the controls use.
type ControlsLocker interface {
	PutEvidence(ctx context.Context, item activities.EvidenceItem) (string, error)
	List(ctx context.Context, incident string) ([]evidence.Meta, error)
}

// controlsLocker is the evidence locker as the controls use it.
type controlsLocker struct{ stores.EvidenceSink }

// List implements [ControlsLocker].
func (l controlsLocker) List(ctx context.Context, incident string) ([]evidence.Meta, error) {
	return l.L.List(ctx, incident)
}

// Controls are the activities of the [workflows.Controls] workflow that
// are the platform's own (keeping results, opening incidents) and the
// control-drift playbook's check actions. The checks themselves
// (controls.list, controls.check) are registered by the controls package.
type Controls struct {
	// Temporal opens incidents and runs the checks an incident's step asks for.
	Temporal client.Client
	// Evidence keeps the check results.
	Evidence ControlsLocker
	// TaskQueue is where the incidents and checks run ("": the queue of
	// the activity that starts them).
	TaskQueue string
}

// Register registers the workflow and the activities under their names.
func (c *Controls) Register(r Registry) {
	r.RegisterWorkflowWithOptions(workflows.Controls, workflow.RegisterOptions{Name: workflows.ControlsWorkflow})
	r.RegisterActivityWithOptions(c.Keep, activity.RegisterOptions{Name: workflows.ControlsEvidenceActivity})
	r.RegisterActivityWithOptions(c.Open, activity.RegisterOptions{Name: workflows.ControlsIncidentActivity})
	r.RegisterActivityWithOptions(c.Collect, activity.RegisterOptions{Name: activities.ControlsCollect})
	r.RegisterActivityWithOptions(c.Recheck, activity.RegisterOptions{Name: activities.ControlsRecheck})
}

func (c *Controls) queue(ctx context.Context) string {
	if c.TaskQueue != "" {
		return c.TaskQueue
	}
	if activity.IsActivity(ctx) {
		if q := activity.GetInfo(ctx).TaskQueue; q != "" {
			return q
		}
	}
	return workflows.TaskQueue
}

// Keep implements [workflows.ControlsEvidenceActivity]: the result as a
// [activities.ControlEvidence] document in the control's evidence (and
// the incident's, for an incident's check), and the control's newest
// passing result. The document depends only on the result and the run, so
// a retry stores nothing new (the locker keeps identical content once).
func (c *Controls) Keep(ctx context.Context, in workflows.ControlEvidenceInput) (workflows.ControlEvidenceResult, error) {
	r := in.Result
	id := r.Control.ID
	if id == "" || r.Status == "" {
		return workflows.ControlEvidenceResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "controls.evidence: a result needs its control id and status", nil)
	}
	body, err := json.MarshalIndent(activities.NewControlEvidence(r, in.Run), "", "  ")
	if err != nil {
		return workflows.ControlEvidenceResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "controls.evidence: encode result of "+id+": "+err.Error(), err)
	}
	body = append(body, '\n')
	name := activities.ControlEvidenceName(id, r.Status, r.CheckedAt)
	put := func(incident string) (string, error) {
		ref, err := c.Evidence.PutEvidence(ctx, activities.EvidenceItem{
			IncidentID: incident, Name: name, Class: activities.ClassOperational, MediaType: "application/json",
			CollectedBy: activities.ControlsCollector, Source: "control:" + id + " (" + cmp.Or(r.Control.Check, "check") + ")", Body: bytes.NewReader(body),
		})
		if err != nil {
			return "", fmt.Errorf("controls.evidence: keep the result of %s: %w", id, err)
		}
		return ref, nil
	}
	var out workflows.ControlEvidenceResult
	if out.Ref, err = put(activities.ControlEvidenceIncident(id)); err != nil {
		return out, err
	}
	if _, sum, err := evidence.Ref(out.Ref).Parse(); err == nil {
		out.SHA256 = sum
	}
	if in.ForIncident != "" {
		if out.IncidentRef, err = put(in.ForIncident); err != nil {
			return out, err
		}
	}
	if out.LastPassRef, err = c.lastPass(ctx, id); err != nil {
		return out, err
	}
	return out, nil
}

// lastPass returns the control's newest passing result ("" none).
func (c *Controls) lastPass(ctx context.Context, id string) (string, error) {
	objs, err := c.Evidence.List(ctx, activities.ControlEvidenceIncident(id))
	if err != nil {
		return "", fmt.Errorf("controls.evidence: list the results of %s: %w", id, err)
	}
	var best evidence.Meta
	for _, o := range objs {
		if !o.Deleted && strings.HasPrefix(o.Name, activities.ControlEvidencePassPrefix(id)) && o.Name >= best.Name {
			best = o
		}
	}
	return string(best.Ref), nil
}

// Open implements [workflows.ControlsIncidentActivity]: the failing
// result becomes one alert (source "controls", rule the control id) for
// the control's incident, delivered as the intake delivers alerts: a
// signal-with-start of workflow incident:<playbook>:<control id> that
// joins the incident open for the control. The alert's id is the
// result's evidence hash (a retried delivery is dropped as a
// redelivery); its fingerprint is the control and its findings (the same
// drift found again is counted, a different one recorded as new). Its
// labels carry the control, the evidence and the first fix the findings
// name ([activities.FixLabel]), which the playbook's remediation reads.
func (c *Controls) Open(ctx context.Context, in workflows.ControlIncidentInput) (workflows.ControlIncidentResult, error) {
	r := in.Result
	id := r.Control.ID
	if id == "" || in.EvidenceRef == "" || in.SHA256 == "" {
		return workflows.ControlIncidentResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "controls.incident: a result needs its control id and evidence", nil)
	}
	if r.Status == activities.ControlPass {
		return workflows.ControlIncidentResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "controls.incident: control "+id+" passes", nil)
	}
	playbook := cmp.Or(r.Control.Playbook, workflows.ControlDriftPlaybook)
	key := workflows.ControlDriftKey(playbook, id)
	wfID := workflows.IncidentWorkflowID(key)
	alert := driftAlert(in)
	err := forward.TemporalSignaler{Client: c.Temporal}.SignalWithStart(ctx, forward.Start{
		WorkflowID: wfID, TaskQueue: c.queue(ctx), Signal: workflows.AlertSignalInput{Alerts: []workflows.Alert{alert}},
		Input: workflows.IncidentInput{
			IncidentID: forward.IncidentID(alert), Key: key, Asset: id, Severity: alert.Severity,
			Playbook: playbook, Drill: in.Drill, OpenedBy: workflows.ControlsActor,
		},
	})
	if err != nil {
		return workflows.ControlIncidentResult{}, fmt.Errorf("controls.incident: %w", err)
	}
	return workflows.ControlIncidentResult{WorkflowID: wfID}, nil
}

// driftAlert is the alert of a failing result.
func driftAlert(in workflows.ControlIncidentInput) workflows.Alert {
	r := in.Result
	id := r.Control.ID
	h := sha256.New()
	for _, f := range r.Findings {
		fmt.Fprintf(h, "%q %q %q %q\n", f.Target, f.Setting, f.Observed, f.Expected)
	}
	labels := map[string]string{
		"control.id": id, "control.section": r.Control.Section, "control.title": r.Control.Title, "control.check": r.Control.Check,
		"control.status": r.Status, "control.evidence": in.EvidenceRef, "control.last_pass": in.LastPassRef,
		"control.findings": strconv.Itoa(len(r.Findings)),
	}
	summary := fmt.Sprintf("control %s (%s) is %s", id, cmp.Or(r.Control.Section, "no section"), r.Status)
	if len(r.Findings) > 0 {
		f := r.Findings[0]
		labels["finding.target"], labels["finding.setting"], labels["finding.observed"], labels["finding.expected"] = f.Target, f.Setting, f.Observed, f.Expected
		summary += fmt.Sprintf(": %s %s is %s, expected %s", f.Target, f.Setting, f.Observed, f.Expected)
		if n := len(r.Findings) - 1; n > 0 {
			summary += fmt.Sprintf(" (+%d more)", n)
		}
	}
	for _, f := range r.Findings {
		if f.Fix == "" {
			continue
		}
		labels[activities.FixLabel] = f.Fix
		for _, k := range slices.Sorted(maps.Keys(f.FixParams)) {
			labels[activities.FixParamsLabel+k] = f.FixParams[k]
		}
		break
	}
	for k, v := range labels {
		if v == "" {
			delete(labels, k)
		}
	}
	at := r.CheckedAt.UTC()
	return workflows.Alert{
		ID: "control:" + id + ":" + in.SHA256, Fingerprint: "control:" + id + ":" + hex.EncodeToString(h.Sum(nil))[:16],
		Source: "controls", Rule: id, Severity: cmp.Or(r.Control.Severity, "medium"), Asset: id, Summary: summary,
		Labels: labels, ObservedAt: at, ReceivedAt: at, RawDigest: "sha256:" + in.SHA256 + "#0",
	}
}

// Collect implements [activities.ControlsCollect]: the control's check
// now, its result kept as the incident's evidence; a failing control is
// not an error.
func (c *Controls) Collect(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	return c.check(ctx, in, false)
}

// Recheck implements [activities.ControlsRecheck]: the control's check
// again, failing (final, Precondition) unless the control passes.
func (c *Controls) Recheck(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	return c.check(ctx, in, true)
}

// check runs the control's check through a [workflows.Controls] run for
// the incident (workflow id from the step's idempotency key: a retried
// attempt waits for the same run instead of checking again) and returns
// its outcome.
func (c *Controls) check(ctx context.Context, in activities.ActionInput, mustPass bool) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.ControlsRecheckParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if in.IncidentID == "" || in.IdempotencyKey == "" {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypeBadParams, in.Action+": no incident id or idempotency key", nil)
	}
	if in.DryRun {
		return activities.ActionResult{
			Outputs: map[string]string{"status": "", "findings": "", "evidence": ""},
			Plan:    []string{fmt.Sprintf("run the check of control %s (it only reads) and keep its result as evidence of %s", p.Control, in.IncidentID)},
			Summary: "dry run: would check control " + p.Control,
		}, nil
	}
	id := workflows.ControlsStepPrefix + in.IdempotencyKey
	run, err := c.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: c.queue(ctx), WorkflowExecutionTimeout: controlsStepTimeout,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:            fmt.Sprintf("check of control %s for %s", p.Control, in.IncidentID),
	}, workflows.ControlsWorkflow, workflows.ControlsInput{IDs: []string{p.Control}, Drill: in.Drill, ForIncident: in.IncidentID})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		run = c.Temporal.GetWorkflow(ctx, id, "")
	case err != nil:
		return activities.ActionResult{}, fmt.Errorf("%s: start the check of %s: %w", in.Action, p.Control, err)
	}
	var res workflows.ControlsResult
	if err := run.Get(ctx, &res); err != nil {
		return activities.ActionResult{}, fmt.Errorf("%s: check of %s (%s): %w", in.Action, p.Control, id, err)
	}
	i := slices.IndexFunc(res.Controls, func(o workflows.ControlOutcome) bool { return o.ID == p.Control })
	if i < 0 {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypeNotFound, fmt.Sprintf("%s: the check of %s returned no outcome for it", in.Action, p.Control), nil)
	}
	o := res.Controls[i]
	if o.Status == "" {
		// The check could not run (or its result could not be kept):
		// retry under the step's policy.
		return activities.ActionResult{}, fmt.Errorf("%s: control %s: %s", in.Action, p.Control, o.Error)
	}
	out := activities.ActionResult{
		Outputs: map[string]string{"status": o.Status, "findings": strconv.Itoa(o.Findings), "evidence": o.EvidenceRef},
		Summary: fmt.Sprintf("control %s is %s", p.Control, o.Status),
	}
	if o.EvidenceRef != "" {
		out.EvidenceRefs = []string{o.EvidenceRef}
	}
	if o.FirstFinding != "" {
		out.Summary += ": " + o.FirstFinding
	}
	if mustPass && o.Status != activities.ControlPass {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypePrecondition,
			fmt.Sprintf("%s: control %s is still %s: %s (evidence %s)", in.Action, p.Control, o.Status, cmp.Or(o.FirstFinding, "no finding given"), o.EvidenceRef), nil)
	}
	return out, nil
}
