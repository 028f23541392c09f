// Package related implements the activity that finds the open incidents
// on an asset: when an incident opens, it looks up (through Temporal's
// visibility) the other incidents running on the same asset, of whatever
// playbook, so that it can link itself to them both ways.
package related

import (
	"context"
	"fmt"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/activities"
)

// FindActivity finds the open incidents on an asset: [FindInput] in,
// [FindResult] out.
const FindActivity = "incident.related"

// MaxRelated bounds the incidents [Activities.Find] returns.
const MaxRelated = 20

// findPage is the page [Activities.Find] asks for: the incidents it keeps,
// the incident itself and one more (a drill or an earlier run, skipped),
// as the server spends its time per row listed (0.4-0.65 ms of the dev
// server's processor time); more pages follow when rows were skipped.
const findPage = MaxRelated + 2

// FindInput is the input of [FindActivity].
type FindInput struct {
	// Asset is the asset whose open incidents are wanted.
	Asset string
	// Self is the workflow id of the asking incident, left out of the result.
	Self string
}

// Incident is one open incident on the asset.
type Incident struct {
	WorkflowID string
	RunID      string
	// Playbook is the incident's playbook (its search attribute).
	Playbook string
}

// FindResult is the result of [FindActivity].
type FindResult struct {
	// Incidents are the open incidents on the asset other than Self, by
	// workflow id, at most [MaxRelated]; drills are left out.
	Incidents []Incident
}

// Lister is the part of the Temporal client Find uses.
type Lister interface {
	ListWorkflow(ctx context.Context, request *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
}

// Activities holds the lookup's dependencies. The names are the incident
// workflow's (package workflows declares them; activities do not import it).
type Activities struct {
	Temporal Lister
	// WorkflowType is the incident workflow's registered name.
	WorkflowType string
	// AssetAttr, PlaybookAttr and DrillAttr are the names of the incident's
	// asset, playbook and drill search attributes.
	AssetAttr, PlaybookAttr, DrillAttr string
}

// Register registers the activity under its name.
func (a *Activities) Register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}) {
	r.RegisterActivityWithOptions(a.Find, activity.RegisterOptions{Name: FindActivity})
}

// Query is the visibility query of the running incidents on asset. An
// asset with a quote or a backslash is refused: it could change the query.
func (a *Activities) Query(asset string) (string, error) {
	if asset == "" || strings.ContainsAny(asset, `'"\`) {
		return "", fmt.Errorf("asset %q cannot be looked up: empty or with a quote or backslash", asset)
	}
	return fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s = '%s'", a.WorkflowType, a.AssetAttr, asset), nil
}

// Find implements [FindActivity].
func (a *Activities) Find(ctx context.Context, in FindInput) (FindResult, error) {
	q, err := a.Query(in.Asset)
	if err != nil {
		return FindResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "incident.related: "+err.Error(), nil)
	}
	var out FindResult
	var token []byte
	for {
		resp, err := a.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: findPage, NextPageToken: token})
		if err != nil {
			return FindResult{}, fmt.Errorf("incident.related: %s: %w", q, err)
		}
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			if id == in.Self || (len(out.Incidents) > 0 && out.Incidents[len(out.Incidents)-1].WorkflowID == id) {
				continue
			}
			fields := e.GetSearchAttributes().GetIndexedFields()
			var drill bool
			if decode(fields[a.DrillAttr], &drill) && drill {
				continue
			}
			var pb string
			decode(fields[a.PlaybookAttr], &pb)
			out.Incidents = append(out.Incidents, Incident{WorkflowID: id, RunID: e.GetExecution().GetRunId(), Playbook: pb})
			if len(out.Incidents) == MaxRelated {
				return out, nil
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// decode reads a search attribute's value into v; it reports false when
// the attribute is absent or does not decode.
func decode(p *commonpb.Payload, v any) bool {
	return p != nil && converter.GetDefaultDataConverter().FromPayload(p, v) == nil
}
