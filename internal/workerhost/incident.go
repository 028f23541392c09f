package workerhost

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/activities/platform"
	"github.com/iru-responder/responder/internal/report"
	"github.com/iru-responder/responder/workflows"
)

// statusQuerier queries a workflow; the worker's Temporal client
// implements it.
type statusQuerier interface {
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
}

// incidentStatus reads an incident through the incident workflow's status
// query, for the report activity.
func incidentStatus(c statusQuerier) platform.IncidentStatus {
	return func(ctx context.Context, workflowID, runID string) (report.Incident, error) {
		q, err := c.QueryWorkflow(ctx, workflowID, runID, workflows.StatusQuery)
		if err != nil {
			return report.Incident{}, fmt.Errorf("query status: %w", err)
		}
		var st workflows.IncidentStatus
		if err := q.Get(&st); err != nil {
			return report.Incident{}, fmt.Errorf("decode status: %w", err)
		}
		return reportIncident(st), nil
	}
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

// reportIncident is the report's view of an incident's status.
func reportIncident(st workflows.IncidentStatus) report.Incident {
	out := report.Incident{
		ID: st.IncidentID, Playbook: st.Playbook, PlaybookVersion: st.PlaybookVersion, Asset: st.Asset, Severity: st.Severity,
		Drill: st.Drill, State: st.State, Reason: st.Reason, OpenedAt: st.OpenedAt, ClosedAt: st.ClosedAt,
		TimeToAcknowledge: st.Metrics.TimeToAcknowledge, TimeToContain: st.Metrics.TimeToContain, TimeToRecover: st.Metrics.TimeToRecover,
	}
	for _, a := range st.Alerts {
		out.Alerts = append(out.Alerts, report.Alert{Source: a.Source, Rule: a.Rule, Severity: a.Severity, Summary: a.Summary, Count: a.Count,
			FirstSeen: a.FirstSeen, LastSeen: a.LastSeen, ObservedAt: a.ObservedAt, ReceivedAt: a.ReceivedAt, ResolvedAt: a.ResolvedAt})
	}
	for _, s := range st.Steps {
		rs := report.Step{ID: s.ID, Phase: s.Phase, Action: s.Action, Status: s.Status, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt,
			Params: s.Params, Outputs: s.Outputs, EvidenceRefs: s.EvidenceRefs, Summary: s.Summary, Error: s.Error, Compensation: s.Compensation}
		if ap := s.Approval; ap != nil {
			for _, d := range ap.Approvals {
				rs.Decisions = append(rs.Decisions, report.Approval{Decision: "approved", By: d.By.Username, SourceIP: d.By.SourceIP, Reason: d.Reason, At: d.At})
			}
			if d := ap.Denial; d != nil {
				rs.Decisions = append(rs.Decisions, report.Approval{Decision: "denied", By: d.By.Username, SourceIP: d.By.SourceIP, Reason: d.Reason, At: d.At})
			}
		}
		out.Steps = append(out.Steps, rs)
	}
	for _, t := range st.Timeline {
		out.Timeline = append(out.Timeline, report.TimelineEntry{At: t.At, Actor: t.Actor, SourceIP: t.SourceIP, What: t.What, StepID: t.StepID, Reason: t.Reason})
	}
	return out
}
