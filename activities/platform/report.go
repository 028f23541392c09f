package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/report"
)

// ReportGenerate implements [activities.ReportGenerate]: it reads the
// incident's ledger chain, verifies it, folds its records into the account
// of the incident ([report.FromLedger]), adds the evidence manifest, renders
// the report in Markdown and JSON, and stores both in the evidence locker.
// The workflow schedules the step after issuing entries up to
// in.LedgerSeq; the activity waits (up to ledgerWait) for the ledger to
// hold them, and otherwise reports the entries that are missing.
func (a *Activities) ReportGenerate(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.ReportGenerateParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	started := a.now().UTC()
	entries, err := a.ledgerUpTo(ctx, in.IncidentID, in.LedgerSeq)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: read ledger: %w", err)
	}
	inc, err := report.FromLedger(entries)
	if err != nil {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypeBadParams, err.Error(), err)
	}
	inc.MarkRunning(in.StepID, started)
	ri := report.Input{Incident: inc, GeneratedAt: started}
	for _, e := range entries {
		ri.Ledger = append(ri.Ledger, report.LedgerEntry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, Target: e.Target,
			Outcome: string(e.Outcome.Status), Detail: e.Outcome.Detail, Hash: e.Hash.String()})
	}
	if rep, err := a.Ledger.Verify(ctx, in.IncidentID, a.Verifier); err != nil {
		ri.LedgerProblem = err.Error()
	} else {
		ri.LedgerVerified = rep.OK()
	}
	if n := int64(len(entries)); n < in.LedgerSeq {
		ri.LedgerVerified = false
		ri.LedgerProblem = strings.TrimPrefix(ri.LedgerProblem+"; ", "; ") +
			fmt.Sprintf("the workflow issued %d entries, the ledger held %d when the report was written", in.LedgerSeq, n)
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

// ledgerWait bounds how long the report waits for the ledger to hold the
// entries the workflow issued before the report step; ledgerPoll is how
// often it looks.
const (
	ledgerWait = 30 * time.Second
	ledgerPoll = 50 * time.Millisecond
)

// ledgerUpTo returns the incident's entries once the ledger holds at least
// seq of them, or what it holds after ledgerWait.
func (a *Activities) ledgerUpTo(ctx context.Context, incident string, seq int64) ([]ledger.Entry, error) {
	deadline := time.Now().Add(ledgerWait)
	for time.Now().Before(deadline) {
		// The wait reads the chain's head only; the chain is read once.
		head, err := a.Ledger.Store().Head(ctx, incident)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return nil, err
		}
		if err == nil && head.Seq >= seq {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(ledgerPoll):
		}
	}
	var entries []ledger.Entry
	err := a.Ledger.Store().Entries(ctx, incident, func(e ledger.Entry) error {
		entries = append(entries, e)
		return nil
	})
	return entries, err
}
