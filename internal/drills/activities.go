package drills

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/workflows"
)

// TemporalClient is what the drill activities need from a Temporal client;
// the worker's own client implements it.
type TemporalClient interface {
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
	UpdateWorkflow(ctx context.Context, options client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error)
}

// Activities are the drill workflow's activities.
type Activities struct {
	// Temporal reads the drill incident's status and sends approvals.
	Temporal TemporalClient
	// Evidence stores the drill reports.
	Evidence activities.EvidenceStore
	// Signer signs the drill's approvals as decision statements (the
	// worker's HSM decision key); without it they are refused.
	Signer decision.Signer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Registry is the part of a worker that registration needs.
type Registry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Register registers the activities under their names in package workflows.
func (a *Activities) Register(r Registry) {
	r.RegisterActivityWithOptions(a.ChildStatus, activity.RegisterOptions{Name: workflows.DrillChildStatusActivity})
	r.RegisterActivityWithOptions(a.Approve, activity.RegisterOptions{Name: workflows.DrillApproveActivity})
	r.RegisterActivityWithOptions(a.Report, activity.RegisterOptions{Name: workflows.DrillReportActivity})
}

// ReportCollector is the evidence collector recorded for drill reports.
const ReportCollector = "system:drill"

// final marks errors that retrying cannot fix: a missing workflow.
func final(err error, what string) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return activities.NewFinalError(activities.ErrTypeNotFound, what+": "+err.Error(), err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ChildStatus implements [workflows.DrillChildStatusActivity]: it queries
// the incident's status (closed incidents answer too) and returns the
// drill's compact view of it.
func (a *Activities) ChildStatus(ctx context.Context, in workflows.DrillChildStatusInput) (workflows.DrillChildStatus, error) {
	v, err := a.Temporal.QueryWorkflow(ctx, in.WorkflowID, in.RunID, workflows.StatusQuery, workflows.StatusQueryInput{})
	if err != nil {
		return workflows.DrillChildStatus{}, final(err, "query status of "+in.WorkflowID)
	}
	var st workflows.IncidentStatus
	if err := v.Get(&st); err != nil {
		return workflows.DrillChildStatus{}, fmt.Errorf("decode status of %s: %w", in.WorkflowID, err)
	}
	return workflows.SummarizeStatus(st), nil
}

// Approve implements [workflows.DrillApproveActivity]: it sends the approve
// update and waits for its outcome. A decision the incident's validator
// rejects is a result (Accepted false, with the reason), not an error, so
// it is not retried; the update id makes a retried call the same update.
func (a *Activities) Approve(ctx context.Context, in workflows.DrillApproveInput) (workflows.DrillApproveResult, error) {
	if in.Decision.Approver.Subject != workflows.DrillApproverSubject {
		return workflows.DrillApproveResult{}, activities.NewFinalError(activities.ErrTypePermission,
			fmt.Sprintf("drill approvals are sent as %s, not %q", workflows.DrillApproverSubject, in.Decision.Approver.Subject), nil)
	}
	if a.Signer != nil && in.Decision.Statement.Empty() {
		now := time.Now()
		if a.Now != nil {
			now = a.Now()
		}
		by := in.Decision.Approver
		// A system decision, proven by the HSM-held key (amr hwk).
		s, err := decision.Sign(ctx, a.Signer, decision.Statement{
			WorkflowID: in.WorkflowID, RunID: in.RunID, StepID: in.Decision.StepID, Decision: decision.Approve,
			Subject: by.Subject, Username: by.Username, Roles: by.Roles, SessionID: "system:drill", TokenID: in.UpdateID,
			AMR: []string{"hwk"}, Reason: in.Decision.Reason, IssuedAt: now, ExpiresAt: now.Add(decision.DefaultTTL), Nonce: decision.NewNonce(),
		})
		if err != nil {
			return workflows.DrillApproveResult{}, fmt.Errorf("sign drill approval of %s: %w", in.Decision.StepID, err)
		}
		in.Decision.Statement = s
	}
	h, err := a.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		UpdateID: in.UpdateID, WorkflowID: in.WorkflowID, RunID: in.RunID, UpdateName: workflows.ApproveUpdate,
		Args: []any{in.Decision}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		var res workflows.DecisionResult
		if err = h.Get(ctx, &res); err == nil {
			return workflows.DrillApproveResult{Accepted: true, Result: res}, nil
		}
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return workflows.DrillApproveResult{Rejection: appErr.Message()}, nil
	}
	return workflows.DrillApproveResult{}, final(err, fmt.Sprintf("approve step %s of %s", in.Decision.StepID, in.WorkflowID))
}

// Report implements [workflows.DrillReportActivity]: it stores the report
// as Markdown and JSON in the evidence locker, under the drill's incident.
// The content depends only on the report, so a retry stores nothing new.
func (a *Activities) Report(ctx context.Context, in workflows.DrillReportInput) (workflows.DrillReportResult, error) {
	rep := in.Report
	if rep.IncidentID == "" {
		return workflows.DrillReportResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "drill report without an incident id", nil)
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return workflows.DrillReportResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "encode drill report: "+err.Error(), err)
	}
	put := func(name, media string, body []byte) (string, error) {
		ref, err := a.Evidence.PutEvidence(ctx, activities.EvidenceItem{
			IncidentID: rep.IncidentID, Name: name, Class: activities.ClassOperational, MediaType: media,
			CollectedBy: ReportCollector, Source: "drill:" + rep.Drill, Body: bytes.NewReader(body),
		})
		if err != nil {
			return "", fmt.Errorf("store drill report %s: %w", name, err)
		}
		return ref, nil
	}
	var out workflows.DrillReportResult
	if out.MarkdownRef, err = put("drill/"+rep.Drill+"/report.md", "text/markdown; charset=utf-8", []byte(Markdown(rep))); err != nil {
		return workflows.DrillReportResult{}, err
	}
	if out.JSONRef, err = put("drill/"+rep.Drill+"/report.json", "application/json", append(js, '\n')); err != nil {
		return workflows.DrillReportResult{}, err
	}
	return out, nil
}
