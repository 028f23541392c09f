// Package drillreport implements the drill workflow's one activity:
// storing a drill's report (Markdown and JSON) in the evidence locker.
package drillreport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/drills"
	"github.com/iru-responder/responder/workflows"
)

// Activities store drill reports.
type Activities struct {
	// Evidence stores the drill reports.
	Evidence activities.EvidenceStore
}

// Registry is the part of a worker that registration needs.
type Registry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Register registers the activity under its name in package workflows.
func (a *Activities) Register(r Registry) {
	r.RegisterActivityWithOptions(a.Report, activity.RegisterOptions{Name: workflows.DrillReportActivity})
}

// ReportCollector is the evidence collector recorded for drill reports.
const ReportCollector = "system:drill"

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
	if out.MarkdownRef, err = put("drill/"+rep.Drill+"/report.md", "text/markdown; charset=utf-8", []byte(drills.Markdown(rep))); err != nil {
		return workflows.DrillReportResult{}, err
	}
	if out.JSONRef, err = put("drill/"+rep.Drill+"/report.json", "application/json", append(js, '\n')); err != nil {
		return workflows.DrillReportResult{}, err
	}
	return out, nil
}
