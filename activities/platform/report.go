package platform

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/report"
	"github.com/iru-responder/responder/workflows"
)

// ReportGenerate implements [activities.ReportGenerate]: it reads the
// incident's status (a query of the running workflow), its ledger chain
// (verified) and its evidence manifest, renders the report in Markdown and
// JSON, and stores both in the evidence locker.
func (a *Activities) ReportGenerate(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.ReportGenerateParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	info := activity.GetInfo(ctx)
	q, err := a.Temporal.QueryWorkflow(ctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, workflows.StatusQuery)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: query status of %s: %w", info.WorkflowExecution.ID, err)
	}
	var st workflows.IncidentStatus
	if err := q.Get(&st); err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: decode status: %w", err)
	}
	ri := report.Input{Incident: reportIncident(st), GeneratedAt: a.now().UTC()}
	err = a.Ledger.Store().Entries(ctx, in.IncidentID, func(e ledger.Entry) error {
		ri.Ledger = append(ri.Ledger, report.LedgerEntry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, Target: e.Target,
			Outcome: string(e.Outcome.Status), Detail: e.Outcome.Detail, Hash: e.Hash.String()})
		return nil
	})
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: read ledger: %w", err)
	}
	if rep, err := a.Ledger.Verify(ctx, in.IncidentID, a.Verifier); err != nil {
		ri.LedgerProblem = err.Error()
	} else {
		ri.LedgerVerified = rep.OK()
	}
	objs, err := a.Evidence.List(ctx, in.IncidentID)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: evidence manifest: %w", err)
	}
	for _, o := range objs {
		if strings.HasPrefix(o.Name, report.ObjectPrefix) {
			continue
		}
		ri.Evidence = append(ri.Evidence, report.Evidence{Ref: string(o.Ref), Name: o.Name, SHA256: o.SHA256, Size: o.Size,
			Class: string(o.Class), CollectedBy: o.CollectedBy, Source: o.Source, CollectedAt: o.CollectedAt})
	}
	r := report.Build(ri)
	if in.DryRun {
		return activities.ActionResult{Outputs: map[string]string{"report_ref": ""}, Plan: []string{"write the incident report (Markdown and JSON) to the evidence locker"}}, nil
	}
	js, err := report.JSON(r)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: %w", err)
	}
	md := report.Markdown(r)
	put := func(name, media string, body []byte) (string, error) {
		return a.Sink.PutEvidence(ctx, activities.EvidenceItem{IncidentID: in.IncidentID, Name: name, Class: activities.ClassOperational,
			MediaType: media, CollectedBy: "system:worker", Source: "iru:report", Body: bytes.NewReader(body)})
	}
	jsonRef, err := put(report.JSONName, "application/json", js)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: store json: %w", err)
	}
	mdRef, err := put(report.MarkdownName, "text/markdown", md)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: store markdown: %w", err)
	}
	ref := mdRef
	if p.Format == "json" {
		ref = jsonRef
	}
	return activities.ActionResult{
		Outputs:      map[string]string{"report_ref": ref, "report_markdown": mdRef, "report_json": jsonRef},
		EvidenceRefs: []string{mdRef, jsonRef},
		Summary:      fmt.Sprintf("report written: %d steps, %d ledger entries, %d evidence objects", len(r.Steps), len(r.Ledger), len(r.Evidence)),
	}, nil
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
			FirstSeen: a.FirstSeen, LastSeen: a.LastSeen, ObservedAt: a.ObservedAt, ReceivedAt: a.ReceivedAt})
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
