package platform

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/evidence"
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
	if len(detail) > ledger.MaxDetailLen {
		detail = strings.ToValidUTF8(detail[:ledger.MaxDetailLen], "")
	}
	dec, err := ledgerDecision(in)
	if err != nil {
		return activities.LedgerAppendResult{}, activities.NewFinalError(activities.ErrTypeBadParams, err.Error(), err)
	}
	// The record is the entry without its time: the time is the entry's
	// own field, and a local activity may run again with a later workflow
	// time when the workflow task that ran it was lost (a worker crash);
	// the retry must find its entry, not conflict with it.
	params := in
	params.At = time.Time{}
	req := ledger.AppendRequest{
		Incident:       in.IncidentID,
		Seq:            in.Seq,
		Time:           in.At,
		Actor:          actor(in.Actor),
		Action:         action,
		Target:         target,
		Params:         params, // the entry's record: the whole input but its time
		Outcome:        ledger.Outcome{Status: ledger.Status(cmp.Or(in.Status, activities.LedgerOK)), Detail: detail},
		Decision:       dec,
		IdempotencyKey: fmt.Sprintf("%s/%d", in.IncidentID, in.Seq),
	}
	e, err := a.Ledger.Append(ctx, req)
	switch {
	case errors.Is(err, ledger.ErrGap):
		return activities.LedgerAppendResult{}, activities.NewFinalError(activities.ErrTypeLedgerGap, err.Error(), err)
	case errors.Is(err, ledger.ErrConflict):
		stored, rerr := a.storedEntry(ctx, in.IncidentID, in.Seq)
		if rerr != nil {
			return activities.LedgerAppendResult{}, fmt.Errorf("ledger append %s seq %d: conflict, and reading the stored entry: %w", in.IncidentID, in.Seq, rerr)
		}
		return activities.LedgerAppendResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeConflict, nil, stored)
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
	if in.Kind == "incident_closed" && a.Evidence != nil {
		// The store's legal hold on the incident's evidence ends with the
		// incident; its compliance retention stays. A retry of this entry
		// releases again, which is harmless.
		if _, err := a.Evidence.ReleaseHold(ctx, in.IncidentID, evidence.Reader{
			Identity: evidence.HoldReleaser, Reason: "incident closed: " + cmp.Or(in.Outcome, "closed"),
		}); err != nil && !errors.Is(err, evidence.ErrInvalid) { // an id the locker refuses has no evidence
			return activities.LedgerAppendResult{}, fmt.Errorf("evidence legal hold of %s: %w", in.IncidentID, err)
		}
	}
	return activities.LedgerAppendResult{Hash: e.Hash.String()}, nil
}

// ledgerDecision is the decision an entry records: the approval count of
// an approval and the signed statement the workflow passes in the detail
// ("statement", "statement_key", "statement_sig"; payload and signature in
// standard base64). Entries without either record none.
func ledgerDecision(in activities.LedgerAppendInput) (*ledger.Decision, error) {
	st := in.Detail["statement"]
	if st == "" && in.Approvals == 0 && in.Quorum == 0 {
		return nil, nil
	}
	d := &ledger.Decision{Approvals: in.Approvals, Quorum: in.Quorum}
	if st == "" {
		return d, nil
	}
	payload, err1 := base64.StdEncoding.DecodeString(st)
	sig, err2 := base64.StdEncoding.DecodeString(in.Detail["statement_sig"])
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("ledger entry %s/%d: statement: %w", in.IncidentID, in.Seq, err)
	}
	d.StatementKeyID, d.StatementSig, d.StatementPayload = in.Detail["statement_key"], sig, payload
	return d, nil
}

// storedEntry reads the entry stored at seq of an incident's chain, with
// its record when it has one.
func (a *Activities) storedEntry(ctx context.Context, incident string, seq int64) (activities.LedgerStoredEntry, error) {
	out := activities.LedgerStoredEntry{Seq: seq}
	found := false
	err := a.Ledger.Store().Entries(ctx, incident, func(e ledger.Entry) error {
		if e.Seq != seq {
			return nil
		}
		found = true
		if len(e.Record) > 0 {
			if err := json.Unmarshal(e.Record, &out.Record); err != nil {
				return fmt.Errorf("record of entry %d: %w", seq, err)
			}
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return out, err
	}
	if !found {
		return out, fmt.Errorf("entry %d of %s not found", seq, incident)
	}
	return out, nil
}

// errStop ends a walk over a chain early.
var errStop = errors.New("stop")
