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
	req, err := ledgerRequest(in)
	if err != nil {
		return activities.LedgerAppendResult{}, err
	}
	e, err := a.Ledger.Append(ctx, req)
	if err != nil {
		return activities.LedgerAppendResult{}, a.appendError(ctx, in, err)
	}
	return a.closed(ctx, in, e)
}

// ledgerRequest is the ledger's append request of an entry; a malformed
// entry fails with the final [activities.ErrTypeBadParams].
func ledgerRequest(in activities.LedgerAppendInput) (ledger.AppendRequest, error) {
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
		return ledger.AppendRequest{}, activities.NewFinalError(activities.ErrTypeBadParams, err.Error(), err)
	}
	// The record is the entry without its time: the time is the entry's
	// own field, and a local activity may run again with a later workflow
	// time when the workflow task that ran it was lost (a worker crash);
	// the retry must find its entry, not conflict with it.
	params := in
	params.At = time.Time{}
	return ledger.AppendRequest{
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
	}, nil
}

// appendError is the activity error of an append of in that the ledger
// refused with err: final for a gap, a conflict (with the stored entry in
// its details) and bad input, retried otherwise.
func (a *Activities) appendError(ctx context.Context, in activities.LedgerAppendInput, err error) error {
	switch {
	case errors.Is(err, ledger.ErrGap):
		return activities.NewFinalError(activities.ErrTypeLedgerGap, err.Error(), err)
	case errors.Is(err, ledger.ErrConflict):
		stored, rerr := a.storedEntry(ctx, in.IncidentID, in.Seq)
		if rerr != nil {
			return fmt.Errorf("ledger append %s seq %d: conflict, and reading the stored entry: %w", in.IncidentID, in.Seq, rerr)
		}
		return temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeConflict, nil, stored)
	case errors.Is(err, ledger.ErrInvalid):
		return activities.NewFinalError(activities.ErrTypeBadParams, err.Error(), nil)
	}
	return fmt.Errorf("ledger append %s seq %d: %w", in.IncidentID, in.Seq, err)
}

// closed does what the stored entry e of in asks for besides the append:
// when the incident closes, its chain head is checkpointed and its
// evidence's legal hold released.
func (a *Activities) closed(ctx context.Context, in activities.LedgerAppendInput, e ledger.Entry) (activities.LedgerAppendResult, error) {
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

// LedgerAppendBatch implements [activities.LedgerAppendBatch]: it queues
// the entries with the ledger's pipelined [ledger.Ledger.AppendAsync], so
// they share commits, and reports them in order up to the first that is
// not stored (see [activities.LedgerAppendBatchResult]). A closing entry
// (incident_closed) is appended alone, after the entries before it are
// stored, as [Activities.LedgerAppend] appends it (checkpoint, hold);
// the entries after it are left for the next batch.
func (a *Activities) LedgerAppendBatch(ctx context.Context, in activities.LedgerAppendBatchInput) (activities.LedgerAppendBatchResult, error) {
	var res activities.LedgerAppendBatchResult
	if err := checkBatch(in.Entries); err != nil {
		return res, activities.NewFinalError(activities.ErrTypeBadParams, err.Error(), err)
	}
	if len(in.Entries) == 0 {
		return res, nil
	}
	// Pipelined, the successors of a refused entry may still be stored
	// (each is tried alone, and a slot taken by another entry is a
	// predecessor too), out of the order recorded. So the batch is
	// pipelined only when its slots are free; when one is taken already
	// (a retry, or the entries of a lost workflow task attempt), its
	// entries go one after the other, each only once its predecessor is.
	free, err := a.slotsFree(ctx, in.Entries[0])
	if err != nil {
		return res, err
	}
	if !free || len(in.Entries) == 1 {
		var failure error
		for _, e := range in.Entries {
			r, err := a.LedgerAppend(ctx, e)
			if err != nil {
				failure = err
				break
			}
			res.Stored = append(res.Stored, r)
		}
		return batchResult(res, failure)
	}
	// Queue up to the first closing entry or malformed entry; a malformed
	// entry's successors would be gaps.
	pending := make([]*ledger.Pending, 0, len(in.Entries))
	var failure error
	for _, e := range in.Entries {
		if e.Kind == "incident_closed" {
			break
		}
		req, err := ledgerRequest(e)
		if err != nil {
			failure = err
			break
		}
		pending = append(pending, a.Ledger.AppendAsync(ctx, req))
	}
	// Wait for every queued append (the successors of a refused entry are
	// refused too, as a gap; they are drained, not reported).
	refused := false
	for i, p := range pending {
		e, err := p.Wait()
		switch {
		case refused:
		case err != nil:
			refused, failure = true, a.appendError(ctx, in.Entries[i], err)
		default:
			res.Stored = append(res.Stored, activities.LedgerAppendResult{Hash: e.Hash.String()})
		}
	}
	if failure == nil && len(res.Stored) < len(in.Entries) && in.Entries[len(res.Stored)].Kind == "incident_closed" {
		r, err := a.LedgerAppend(ctx, in.Entries[len(res.Stored)])
		if err == nil {
			res.Stored = append(res.Stored, r)
		}
		failure = err
	}
	return batchResult(res, failure)
}

// slotsFree reports whether the chain of first's incident ends before
// first's slot.
func (a *Activities) slotsFree(ctx context.Context, first activities.LedgerAppendInput) (bool, error) {
	head, err := a.Ledger.Store().Head(ctx, first.IncidentID)
	if errors.Is(err, ledger.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("ledger batch %s seq %d: read the chain's head: %w", first.IncidentID, first.Seq, err)
	}
	return head.Seq < first.Seq, nil
}

// batchResult completes the result of a batch whose entries after res's
// stored ones were not stored, the next because of failure (nil: not
// tried): a final refusal is reported, another error fails the activity
// when nothing was stored (it is retried) and is left for the next batch
// otherwise.
func batchResult(res activities.LedgerAppendBatchResult, failure error) (activities.LedgerAppendBatchResult, error) {
	if failure == nil {
		return res, nil
	}
	var ae *temporal.ApplicationError
	if !errors.As(failure, &ae) || !ae.NonRetryable() {
		if len(res.Stored) == 0 {
			return res, failure // the activity's retries try again
		}
		return res, nil // the rest goes again in the next batch
	}
	res.Failed = &activities.LedgerAppendFailure{Type: ae.Type(), Message: ae.Message()}
	if ae.HasDetails() {
		var stored activities.LedgerStoredEntry
		if err := ae.Details(&stored); err == nil {
			res.Failed.Stored = &stored
		}
	}
	return res, nil
}

// checkBatch checks that entries fit one batch: at most
// [activities.MaxLedgerBatch], one incident, consecutive sequence numbers.
func checkBatch(entries []activities.LedgerAppendInput) error {
	if len(entries) > activities.MaxLedgerBatch {
		return fmt.Errorf("ledger batch of %d entries: at most %d", len(entries), activities.MaxLedgerBatch)
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].IncidentID != entries[0].IncidentID || entries[i].Seq != entries[0].Seq+int64(i) {
			return fmt.Errorf("ledger batch entry %d is %s/%d after %s/%d: want one incident's consecutive entries",
				i, entries[i].IncidentID, entries[i].Seq, entries[0].IncidentID, entries[0].Seq)
		}
	}
	return nil
}
