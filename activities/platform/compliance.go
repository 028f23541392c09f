package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/notify"
)

// ComplianceNotify implements [activities.ComplianceNotify]: it computes
// the regulator's deadline from the time of awareness, stores the notice
// (what is due, by when, under which regime) as evidence and notifies the
// compliance channel.
func (a *Activities) ComplianceNotify(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.ComplianceNotifyParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	aware := p.AwareSince
	due := aware.Add(p.Deadline).UTC()
	regime := p.Regime
	notice := map[string]string{
		"incident": in.IncidentID, "regime": regime, "aware_since": aware.UTC().Format(time.RFC3339),
		"due_at": due.Format(time.RFC3339), "asset": in.Asset, "message": p.Message,
		"basis": basis(regime),
	}
	out := map[string]string{"due_at": due.Format(time.RFC3339)}
	if in.DryRun {
		out["notice_ref"] = ""
		return activities.ActionResult{Outputs: out, Plan: []string{fmt.Sprintf("open a %s notification due %s", regime, due.Format(time.RFC3339))}}, nil
	}
	body, _ := json.MarshalIndent(notice, "", "  ")
	ref, err := a.Sink.PutEvidence(ctx, activities.EvidenceItem{
		IncidentID: in.IncidentID, Name: "compliance/" + regime + "-notice.json", Class: activities.ClassOperational,
		MediaType: "application/json", CollectedBy: "system:worker", Source: "iru:compliance", Body: bytes.NewReader(body),
	})
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("compliance.notify: store notice: %w", err)
	}
	out["notice_ref"] = ref
	sum := fmt.Sprintf("%s notification due %s (%s after awareness)", strings.ToUpper(regime), due.Format(time.RFC3339), p.Deadline)
	if a.Notifier != nil && len(a.Notifier.Channels) > 0 {
		_, _ = a.Notifier.Send(ctx, notify.Event{Kind: notify.ComplianceDeadline, IncidentID: in.IncidentID, Asset: in.Asset, Summary: sum, At: a.now().UTC(), Details: notice})
	}
	return activities.ActionResult{Outputs: out, EvidenceRefs: []string{ref}, Summary: sum}, nil
}

func basis(regime string) string {
	switch regime {
	case "gdpr":
		return "GDPR Art. 33: notify the supervisory authority without undue delay and, where feasible, within 72 hours of becoming aware"
	case "pci-dss":
		return "PCI DSS 12.10: follow the incident response plan, including notifying the payment brands and acquirers"
	}
	return ""
}
