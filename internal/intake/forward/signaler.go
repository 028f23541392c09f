package forward

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/workflows"
)

// Start is one SignalWithStart: signal the incident workflow, starting it
// first when none runs under the id.
type Start struct {
	WorkflowID string
	TaskQueue  string
	Signal     workflows.AlertSignalInput
	Input      workflows.IncidentInput
}

// Signaler delivers alerts to incident workflows.
type Signaler interface {
	// SignalWithStart signals the workflow, starting it when needed.
	SignalWithStart(ctx context.Context, s Start) error
	// Signal signals a running workflow only; found is false (and err nil)
	// when none runs.
	Signal(ctx context.Context, workflowID string, in workflows.AlertSignalInput) (found bool, err error)
}

// TemporalSignaler is the [Signaler] over a Temporal client.
type TemporalSignaler struct {
	Client client.Client
}

// SignalWithStart implements [Signaler]: SignalWithStartWorkflow with
// conflict policy USE_EXISTING and the incident search attributes.
func (t TemporalSignaler) SignalWithStart(ctx context.Context, s Start) error {
	opts := client.StartWorkflowOptions{
		ID:                       s.WorkflowID,
		TaskQueue:                s.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SeverityKey.ValueSet(s.Input.Severity),
			workflows.PlaybookKey.ValueSet(s.Input.Playbook),
			workflows.AssetKey.ValueSet(s.Input.Asset),
			workflows.PhaseKey.ValueSet("detection"),
			workflows.DrillKey.ValueSet(s.Input.Drill),
		),
	}
	if _, err := t.Client.SignalWithStartWorkflow(ctx, s.WorkflowID, workflows.AlertSignal, s.Signal, opts, workflows.IncidentWorkflow, s.Input); err != nil {
		return fmt.Errorf("forward: signal with start %s: %w", s.WorkflowID, err)
	}
	return nil
}

// Signal implements [Signaler].
func (t TemporalSignaler) Signal(ctx context.Context, workflowID string, in workflows.AlertSignalInput) (bool, error) {
	err := t.Client.SignalWorkflow(ctx, workflowID, "", workflows.AlertSignal, in)
	var nf *serviceerror.NotFound
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &nf):
		return false, nil
	}
	return false, fmt.Errorf("forward: signal %s: %w", workflowID, err)
}
