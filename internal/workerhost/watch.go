package workerhost

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/activities/watch"
	"github.com/iru-responder/responder/workflows"
)

// incidentClient is the part of the Temporal client the watch's view of
// the incident workflow uses; the worker's client implements it.
type incidentClient interface {
	statusQuerier
	GetWorkflowHistory(ctx context.Context, workflowID, runID string, isLongPoll bool, filterType enumspb.HistoryEventFilterType) client.HistoryEventIterator
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
}

// watchIncidents implements [watch.Incidents] over the incident workflow:
// its status query, its input and its follow-up incidents.
type watchIncidents struct {
	c incidentClient
	// dc decodes a run's input (the worker's encrypting converter).
	dc converter.DataConverter
}

// WorkflowType implements [watch.Incidents].
func (w watchIncidents) WorkflowType() string { return workflows.IncidentWorkflow }

// Status implements [watch.Incidents] through the status query.
func (w watchIncidents) Status(ctx context.Context, workflowID, runID string) (watch.Status, error) {
	v, err := w.c.QueryWorkflow(ctx, workflowID, runID, workflows.StatusQuery)
	if err != nil {
		return watch.Status{}, err
	}
	var st workflows.IncidentStatus
	if err := v.Get(&st); err != nil {
		return watch.Status{}, fmt.Errorf("decode status: %w", err)
	}
	return watchStatus(st), nil
}

// Input implements [watch.Incidents]: the input of the run's first event.
func (w watchIncidents) Input(ctx context.Context, workflowID, runID string) (watch.Input, error) {
	it := w.c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return watch.Input{}, errors.New("no history")
	}
	e, err := it.Next()
	if err != nil {
		return watch.Input{}, err
	}
	attrs := e.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return watch.Input{}, fmt.Errorf("first event is %s", e.GetEventType())
	}
	dc := w.dc
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	var in workflows.IncidentInput
	if err := dc.FromPayloads(attrs.GetInput(), &in); err != nil {
		return watch.Input{}, fmt.Errorf("decode input: %w", err)
	}
	return watchInput(in), nil
}

// OpenFollowUp implements [watch.Incidents]: an incident of playbook
// [workflows.OrphanedCompensationsPlaybook], keyed by the stopped run's id.
func (w watchIncidents) OpenFollowUp(ctx context.Context, f watch.FollowUp) (string, error) {
	key := workflows.FollowUpKey(f.Run.RunID)
	wfID := workflows.IncidentWorkflowID(key)
	tq := f.Run.TaskQueue
	if tq == "" {
		tq = workflows.TaskQueue
	}
	_, err := w.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: wfID, TaskQueue: tq,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            "follow-up: compensations left by " + f.Stopped,
	}, workflows.IncidentWorkflow, followUpInput(key, f))
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return "", fmt.Errorf("start %s: %w", wfID, err)
	}
	return wfID, nil
}

// followUpInput is the incident input of follow-up f, under key.
func followUpInput(key string, f watch.FollowUp) workflows.IncidentInput {
	pending := make([]workflows.PendingCompensation, 0, len(f.Pending))
	for _, c := range f.Pending {
		pending = append(pending, workflows.PendingCompensation(c))
	}
	r := f.Run
	return workflows.IncidentInput{
		IncidentID: f.IncidentID, Key: key, Asset: f.Asset, Severity: f.Severity, Drill: f.Drill,
		Playbook: workflows.OrphanedCompensationsPlaybook, OpenedBy: workflows.WatchActor,
		Alerts: []workflows.Alert{{
			ID: "watch:" + r.RunID, Fingerprint: "watch:" + r.RunID, Source: "temporal", Rule: "incident-stopped-outside-platform",
			Severity: f.Severity, Asset: f.Asset, Summary: f.Summary, Labels: f.Labels, ObservedAt: f.At, ReceivedAt: f.ReceivedAt,
		}},
		Inherited: &workflows.InheritedCompensations{
			WorkflowID: r.WorkflowID, RunID: r.RunID, IncidentID: f.Owner, How: f.How, By: f.By, Reason: f.Reason, At: f.At,
			NewRunID: f.NewRunID, Compensations: pending,
		},
	}
}

// watchStatus is the watch's view of an incident's status.
func watchStatus(st workflows.IncidentStatus) watch.Status {
	out := watch.Status{IncidentID: st.IncidentID, Asset: st.Asset, Severity: st.Severity, Drill: st.Drill}
	for _, c := range st.Compensations {
		out.Compensations = append(out.Compensations, watch.Compensation(c))
	}
	for _, s := range st.Steps {
		if s.Status == workflows.StepSucceeded || s.Status == workflows.StepDenied {
			out.Settled = append(out.Settled, s.ID)
		}
	}
	return out
}

// watchInput is the watch's view of an incident's input.
func watchInput(in workflows.IncidentInput) watch.Input {
	out := watch.Input{IncidentID: in.IncidentID, Asset: in.Asset, Severity: in.Severity, Drill: in.Drill}
	if in.Carry != nil {
		st := watchStatus(in.Carry.Status)
		out.Carried = &st
	}
	if inh := in.Inherited; inh != nil {
		out.Inherited = &watch.Inherited{IncidentID: inh.IncidentID}
		for i, c := range inh.Compensations {
			out.Inherited.Steps = append(out.Inherited.Steps, watch.InheritedStep{StepID: workflows.InheritedStepID(i, c), Compensation: watch.Compensation(c)})
		}
	}
	return out
}
