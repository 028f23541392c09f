package platform

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/ledger"
)

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
