package workerhost

import (
	"context"

	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/workflows"
)

// statusQuerier queries a workflow; the worker's Temporal client
// implements it.
type statusQuerier interface {
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
}

// incidentLink returns the link builder for notifications: the incident
// workflow's page in the Web UI at base; nil without a base.
func incidentLink(base string) func(incidentID string) string {
	if base == "" {
		return nil
	}
	return func(incidentID string) string {
		return base + "/namespaces/default/workflows/" + workflows.IncidentWorkflowID(incidentID)
	}
}
