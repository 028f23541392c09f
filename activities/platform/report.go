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
)

// ReportGenerate implements [activities.ReportGenerate]: it reads the
// incident's status (from the running workflow, through
// [Activities.Status]), its ledger chain (verified) and its evidence
// manifest, renders the report in Markdown and JSON, and stores both in the
// evidence locker.
func (a *Activities) ReportGenerate(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.ReportGenerateParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	info := activity.GetInfo(ctx)
	inc, err := a.Status(ctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: status of %s: %w", info.WorkflowExecution.ID, err)
	}
	ri := report.Input{Incident: inc, GeneratedAt: a.now().UTC()}
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
