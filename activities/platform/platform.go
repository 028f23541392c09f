// Package platform implements the activities that act on the platform
// itself rather than on Proxmox VE or Keycloak: appending to the audit
// ledger (and signing its checkpoint when an incident closes), notifying
// people, opening regulatory notifications with their deadline, and writing
// the post-incident report.
package platform

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/notify"
	"github.com/iru-responder/responder/internal/report"
	"github.com/iru-responder/responder/workflows"
)

// StatusQuerier reads an incident's status; the worker's Temporal client
// implements it.
type StatusQuerier interface {
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
}

// Activities holds the platform activities' dependencies.
type Activities struct {
	Ledger   *ledger.Ledger
	Signer   ledger.Signer
	Verifier ledger.Verifier
	Evidence *evidence.Locker
	Sink     activities.EvidenceStore
	Notifier *notify.Notifier
	Temporal StatusQuerier
	// UIBaseURL, if set, links notifications to the incident in the Web UI.
	UIBaseURL string
	Now       func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Register registers the activities under their catalog names.
func (a *Activities) Register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}) {
	r.RegisterActivityWithOptions(a.LedgerAppend, activity.RegisterOptions{Name: activities.LedgerAppend})
	r.RegisterActivityWithOptions(a.NotifySend, activity.RegisterOptions{Name: activities.NotifySend})
	r.RegisterActivityWithOptions(a.ComplianceNotify, activity.RegisterOptions{Name: activities.ComplianceNotify})
	r.RegisterActivityWithOptions(a.ReportGenerate, activity.RegisterOptions{Name: activities.ReportGenerate})
}

// actor turns the workflow's actor into the ledger's issuer:subject form.
func actor(s string) string {
	if s == "" {
		return "system:workflow"
	}
	if strings.Contains(s, ":") {
		return s
	}
	return "system:" + s
}

// status maps the workflow's outcome ("succeeded", "approved 1/2",
// "3 new" …) onto a ledger status: its first word, normalised.
func status(outcome string) ledger.Status {
	o := strings.ToLower(strings.TrimSpace(outcome))
	if f := strings.Fields(o); len(f) > 1 {
		if _, err := fmt.Sscan(f[0], new(int)); err == nil {
			return ledger.StatusOK // "3 new": a count of new alerts
		}
		o = f[0]
	}
	switch {
	case o == "", o == "ok", o == "succeeded", o == "approved", o == "resolved", o == "opened", o == "acknowledged":
		return ledger.StatusOK
	case o == "denied", o == "rejected", o == "aborted":
		return ledger.StatusDenied
	case o == "skipped":
		return ledger.StatusSkipped
	case o == "timed_out", o == "timeout":
		return ledger.StatusTimedOut
	case o == "cancelled", o == "canceled":
		return ledger.StatusCancelled
	case o == "failed", o == "escalated_failed", o == "error":
		return ledger.StatusFailed
	default:
		if strings.Trim(o, "abcdefghijklmnopqrstuvwxyz_") == "" {
			return ledger.Status(o)
		}
		return ledger.StatusOK
	}
}

// LedgerAppend implements [activities.LedgerAppend]. The sequence number
// comes from the workflow, whose one writer sends an incident's entries in
// order: a retry of the same entry returns the stored one, an entry whose
// predecessor is missing fails with the final [activities.ErrTypeLedgerGap].
// When the incident closes, the chain head is checkpointed and signed with
// the HSM key.
func (a *Activities) LedgerAppend(ctx context.Context, in activities.LedgerAppendInput) (activities.LedgerAppendResult, error) {
	action := in.Kind
	if in.Action != "" {
		action += ":" + in.Action
	}
	target := in.Phase
	if in.StepID != "" {
		target = strings.Trim(target+"/"+in.StepID, "/")
	}
	detail := in.Reason
	if strings.Contains(strings.TrimSpace(in.Outcome), " ") {
		detail = strings.TrimSpace(in.Outcome + ": " + detail)
	}
	if st := in.Detail["statement"]; st != "" {
		// A decision: the signed statement is stored whole (it is what
		// `starter audit verify` re-verifies), the reason cut to make room.
		line := decisionLine(in.Detail["statement_key"], in.Detail["statement_sig"], st)
		if room := ledger.MaxDetailLen - len(line); len(detail) > room {
			detail = strings.ToValidUTF8(detail[:max(room, 0)], "")
		}
		detail += line
	}
	if len(detail) > ledger.MaxDetailLen {
		detail = detail[:ledger.MaxDetailLen]
	}
	// The digest covers the entry without its time: the time is the
	// entry's own field, and a local activity may run again with a later
	// workflow time when the workflow task that ran it was lost (a worker
	// crash); the retry must find its entry, not conflict with it.
	params := in
	params.At = time.Time{}
	req := ledger.AppendRequest{
		Incident:       in.IncidentID,
		Seq:            in.Seq,
		Time:           in.At,
		Actor:          actor(in.Actor),
		Action:         action,
		Target:         target,
		Params:         params, // the whole entry but its time, hashed; the chain stores the digest
		Outcome:        ledger.Outcome{Status: status(in.Outcome), Detail: detail},
		IdempotencyKey: fmt.Sprintf("%s/%d", in.IncidentID, in.Seq),
	}
	e, err := a.Ledger.Append(ctx, req)
	switch {
	case errors.Is(err, ledger.ErrGap):
		return activities.LedgerAppendResult{}, activities.NewFinalError(activities.ErrTypeLedgerGap, err.Error(), err)
	case errors.Is(err, ledger.ErrConflict):
		return activities.LedgerAppendResult{}, activities.NewFinalError(activities.ErrTypeConflict, err.Error(), nil)
	case errors.Is(err, ledger.ErrInvalid):
		return activities.LedgerAppendResult{}, activities.NewFinalError(activities.ErrTypeBadParams, err.Error(), nil)
	case err != nil:
		return activities.LedgerAppendResult{}, fmt.Errorf("ledger append %s seq %d: %w", in.IncidentID, in.Seq, err)
	}
	if in.Kind == "incident_closed" && a.Signer != nil {
		if _, err := a.Ledger.Checkpoint(ctx, in.IncidentID, a.Signer); err != nil {
			return activities.LedgerAppendResult{}, fmt.Errorf("ledger checkpoint %s: %w", in.IncidentID, err)
		}
	}
	return activities.LedgerAppendResult{Hash: e.Hash.String()}, nil
}

// NotifySend implements [activities.NotifySend]. Delivery retries with
// backoff inside the notifier; a channel that stays down is reported in
// the result, not as a failure, so a notification never blocks the
// response.
func (a *Activities) NotifySend(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	ev := notify.Event{
		Kind: in.Params["event"], IncidentID: in.IncidentID, Asset: in.Asset,
		Summary: in.Params["message"], At: a.now().UTC(), Details: map[string]string{"channel": in.Params["channel"], "step": in.StepID},
	}
	if ev.Summary == "" {
		ev.Summary = fmt.Sprintf("%s: %s on %s", in.IncidentID, ev.Kind, in.Asset)
	}
	if a.UIBaseURL != "" {
		ev.Link = a.UIBaseURL + "/namespaces/default/workflows/" + workflows.IncidentWorkflowID(in.IncidentID)
	}
	id := in.IdempotencyKey
	if in.DryRun {
		return activities.ActionResult{Outputs: map[string]string{"notification_id": id}, Plan: []string{fmt.Sprintf("notify %s of %s", in.Params["channel"], ev.Kind)}}, nil
	}
	if a.Notifier == nil || len(a.Notifier.Channels) == 0 {
		return activities.ActionResult{Outputs: map[string]string{"notification_id": id}, Summary: "no notification channel configured"}, nil
	}
	results, err := a.Notifier.Send(ctx, ev)
	if errors.Is(err, notify.ErrNoChannel) {
		return activities.ActionResult{Outputs: map[string]string{"notification_id": id}, Summary: "no channel takes " + ev.Kind}, nil
	}
	var delivered, failed []string
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r.Channel)
		} else {
			delivered = append(delivered, r.Channel)
		}
	}
	sum := "delivered to " + strings.Join(delivered, ", ")
	if len(failed) > 0 {
		sum += "; NOT delivered to " + strings.Join(failed, ", ")
	}
	return activities.ActionResult{Outputs: map[string]string{"notification_id": id}, Summary: sum}, nil
}

// ComplianceNotify implements [activities.ComplianceNotify]: it computes
// the regulator's deadline from the time of awareness, stores the notice
// (what is due, by when, under which regime) as evidence and notifies the
// compliance channel.
func (a *Activities) ComplianceNotify(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	aware, err := time.Parse(time.RFC3339, in.Params["aware_since"])
	if err != nil {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypeBadParams, fmt.Sprintf("compliance.notify: aware_since %q is not RFC 3339", in.Params["aware_since"]), err)
	}
	window, err := activities.ParseDuration(in.Params["deadline"])
	if err != nil {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "compliance.notify: "+err.Error(), err)
	}
	due := aware.Add(window).UTC()
	regime := in.Params["regime"]
	notice := map[string]string{
		"incident": in.IncidentID, "regime": regime, "aware_since": aware.UTC().Format(time.RFC3339),
		"due_at": due.Format(time.RFC3339), "asset": in.Asset, "message": in.Params["message"],
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
	sum := fmt.Sprintf("%s notification due %s (%s after awareness)", strings.ToUpper(regime), due.Format(time.RFC3339), window)
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

// ReportGenerate implements [activities.ReportGenerate]: it reads the
// incident's status (a query of the running workflow), its ledger chain
// (verified) and its evidence manifest, renders the report in Markdown and
// JSON, and stores both in the evidence locker.
func (a *Activities) ReportGenerate(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	info := activity.GetInfo(ctx)
	q, err := a.Temporal.QueryWorkflow(ctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, workflows.StatusQuery)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: query status of %s: %w", info.WorkflowExecution.ID, err)
	}
	var st workflows.IncidentStatus
	if err := q.Get(&st); err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: decode status: %w", err)
	}
	ri := report.Input{Status: st, GeneratedAt: a.now().UTC()}
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
		if strings.HasPrefix(o.Name, "report/") {
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
	jsonRef, err := put("report/report.json", "application/json", js)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: store json: %w", err)
	}
	mdRef, err := put("report/report.md", "text/markdown", md)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("report.generate: store markdown: %w", err)
	}
	ref := mdRef
	if in.Params["format"] == "json" {
		ref = jsonRef
	}
	return activities.ActionResult{
		Outputs:      map[string]string{"report_ref": ref, "report_markdown": mdRef, "report_json": jsonRef},
		EvidenceRefs: []string{mdRef, jsonRef},
		Summary:      fmt.Sprintf("report written: %d steps, %d ledger entries, %d evidence objects", len(r.Steps), len(r.Ledger), len(r.Evidence)),
	}, nil
}

// DecisionLinePrefix starts the line of a ledger entry's outcome detail
// that holds the decision statement: key id, signature and payload, each
// base64 (standard encoding), separated by spaces.
const DecisionLinePrefix = "\nstatement: "

func decisionLine(keyID, sig, payload string) string {
	return DecisionLinePrefix + keyID + " " + sig + " " + payload
}

// ParseDecisionLine returns the decision statement stored in a ledger
// entry's outcome detail; ok is false when the entry holds none.
func ParseDecisionLine(detail string) (s decision.Signed, ok bool, err error) {
	_, line, found := strings.Cut(detail, DecisionLinePrefix)
	if !found {
		return decision.Signed{}, false, nil
	}
	f := strings.Split(line, " ")
	if len(f) != 3 {
		return decision.Signed{}, true, fmt.Errorf("statement line has %d fields, want 3", len(f))
	}
	sig, err1 := base64.StdEncoding.DecodeString(f[1])
	payload, err2 := base64.StdEncoding.DecodeString(f[2])
	if err := errors.Join(err1, err2); err != nil {
		return decision.Signed{}, true, fmt.Errorf("statement line: %w", err)
	}
	return decision.Signed{KeyID: f[0], Sig: sig, Payload: payload}, true, nil
}
