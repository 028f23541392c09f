// Package drillreport holds a drill's report (the drill workflow's result),
// renders it for people, and implements the drill workflow's one activity:
// storing the report (Markdown and JSON) in the evidence locker.
package drillreport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/iru-responder/responder/activities"
)

// Activities store drill reports.
type Activities struct {
	// Evidence stores the drill reports.
	Evidence activities.EvidenceStore
}

// ReportCollector is the evidence collector recorded for drill reports.
const ReportCollector = "system:drill"

// Report is the drill workflow's report activity (registered under
// workflows.DrillReportActivity): it stores the report as Markdown and JSON
// in the evidence locker, under the drill's incident.
// The content depends only on the report, so a retry stores nothing new.
func (a *Activities) Report(ctx context.Context, in Input) (Result, error) {
	rep := in.Report
	if rep.IncidentID == "" {
		return Result{}, activities.NewFinalError(activities.ErrTypeBadParams, "drill report without an incident id", nil)
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return Result{}, activities.NewFinalError(activities.ErrTypeBadParams, "encode drill report: "+err.Error(), err)
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
	var out Result
	if out.MarkdownRef, err = put("drill/"+rep.Drill+"/report.md", "text/markdown; charset=utf-8", []byte(Markdown(rep))); err != nil {
		return Result{}, err
	}
	if out.JSONRef, err = put("drill/"+rep.Drill+"/report.json", "application/json", append(js, '\n')); err != nil {
		return Result{}, err
	}
	return out, nil
}
