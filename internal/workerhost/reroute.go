package workerhost

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/workflows"
)

// signalWithStarter is the part of the Temporal client the re-route uses.
type signalWithStarter interface {
	SignalWithStartWorkflow(ctx context.Context, workflowID, signalName string, signalArg any,
		options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
}

// Reroute implements [workflows.RerouteActivity]: it opens the incident of
// the re-routed triage's playbook and asset, or joins the one open for
// that key, with the triage's alerts in the start's signal, as the intake
// does. The key is the rules' default (playbook, asset).
type Reroute struct {
	Temporal  signalWithStarter
	TaskQueue string
}

// Register registers the activity under its name.
func (r *Reroute) Register(reg Registry) {
	reg.RegisterActivityWithOptions(r.Open, activity.RegisterOptions{Name: workflows.RerouteActivity})
}

// Open implements [workflows.RerouteActivity].
func (r *Reroute) Open(ctx context.Context, in workflows.RerouteOpenInput) (workflows.RerouteOpenResult, error) {
	if in.Playbook == "" || in.Asset == "" || len(in.Alerts) == 0 || in.FromIncident == "" {
		return workflows.RerouteOpenResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "incident.reroute: playbook, asset, alerts and the triage's incident id are required", nil)
	}
	key := in.Playbook + ":" + in.Asset
	id := workflows.IncidentWorkflowID(key)
	// A new incident id, derived from the triage's: the triage keeps its
	// own ledger chain.
	incidentID := forward.IncidentID(workflows.Alert{ID: "reroute:" + in.FromIncident, ReceivedAt: in.Alerts[0].ReceivedAt})
	for i := range in.Alerts {
		in.Alerts[i].AssetRef = in.AssetRef
	}
	queue := r.TaskQueue
	if queue == "" {
		queue = workflows.TaskQueue
	}
	_, err := r.Temporal.SignalWithStartWorkflow(ctx, id, workflows.AlertSignal, workflows.AlertSignalInput{Alerts: in.Alerts},
		client.StartWorkflowOptions{ID: id, TaskQueue: queue, StaticSummary: "re-routed from " + in.FromIncident},
		workflows.IncidentWorkflow, workflows.IncidentInput{
			IncidentID: incidentID, Key: key, Asset: in.Asset, AssetRef: in.AssetRef, Severity: in.Severity,
			Playbook: in.Playbook, OpenedBy: in.By,
		})
	if err != nil {
		return workflows.RerouteOpenResult{}, fmt.Errorf("incident.reroute: signal-with-start %s: %w", id, err)
	}
	return workflows.RerouteOpenResult{WorkflowID: id}, nil
}
