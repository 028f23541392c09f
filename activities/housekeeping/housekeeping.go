// Package housekeeping implements the platform's daily duties as
// activities: signing the daily audit chains (access log, key changes,
// configuration) with the HSM key once their day ended, and running the
// evidence retention (destroying expired objects by shredding their data
// keys, one audit ledger entry per destroyed object). Temporal Schedules
// (kept by internal/schedules) run them every day; `starter evidence sweep`
// runs the sweep on demand.
package housekeeping

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/ledger"
)

// DailyChainPrefixes are the prefixes of the daily chains: each is followed
// by the UTC day (2006-01-02). The access log, key changes and
// configuration loads share the access chain.
var DailyChainPrefixes = []string{accesslog.ChainPrefix}

// ActionEvidenceDestroyed is the ledger action of one destroyed evidence
// object.
const ActionEvidenceDestroyed = "evidence.destroyed"

// Activities holds the housekeeping activities' dependencies.
type Activities struct {
	Ledger   *ledger.Ledger
	Signer   ledger.Signer
	Evidence *evidence.Locker
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

func heartbeat(ctx context.Context, details ...any) { activity.RecordHeartbeat(ctx, details...) }

// SignDailyChains is the daily chain signing activity (registered under
// workflows.SignDailyChainsActivity): for each
// ended day asked for (in.Day, or the last [DailyChainLookback]
// days), each daily chain with entries whose head no checkpoint covers
// yet gets a checkpoint signed by the HSM key. The current day is never
// signed (it has not ended).
func (a *Activities) SignDailyChains(ctx context.Context, in SignDailyChainsInput) (SignDailyChainsResult, error) {
	today := a.now().Truncate(24 * time.Hour)
	var days []string
	if in.Day != "" {
		d, err := time.Parse(time.DateOnly, in.Day)
		if err != nil {
			return SignDailyChainsResult{}, fmt.Errorf("sign daily chains: day %q: want 2006-01-02", in.Day)
		}
		if !d.Before(today) {
			return SignDailyChainsResult{}, fmt.Errorf("sign daily chains: day %s has not ended (now %s)", in.Day, a.now().Format(time.RFC3339))
		}
		days = []string{in.Day}
	} else {
		for i := DailyChainLookback; i >= 1; i-- {
			days = append(days, today.AddDate(0, 0, -i).Format(time.DateOnly))
		}
	}
	var res SignDailyChainsResult
	for _, day := range days {
		for _, prefix := range DailyChainPrefixes {
			heartbeat(ctx, prefix+day)
			sc, ok, err := a.signChain(ctx, prefix+day)
			if err != nil {
				return res, err
			}
			if ok {
				res.Chains = append(res.Chains, sc)
			}
		}
	}
	return res, nil
}

// signChain signs chain's head unless a checkpoint covers it already; ok is
// false for a chain without entries.
func (a *Activities) signChain(ctx context.Context, chain string) (SignedChain, bool, error) {
	st := a.Ledger.Store()
	head, err := st.Head(ctx, chain)
	if errors.Is(err, ledger.ErrNotFound) {
		return SignedChain{}, false, nil
	}
	if err != nil {
		return SignedChain{}, false, fmt.Errorf("sign %s: head: %w", chain, err)
	}
	var last *ledger.Checkpoint
	if err := st.Checkpoints(ctx, chain, func(c ledger.Checkpoint) error {
		if last == nil || c.Seq >= last.Seq {
			last = &c
		}
		return nil
	}); err != nil {
		return SignedChain{}, false, fmt.Errorf("sign %s: checkpoints: %w", chain, err)
	}
	if last != nil && last.Seq == head.Seq && last.HeadHash == head.Hash {
		return SignedChain{Chain: chain, Seq: last.Seq, HeadHash: last.HeadHash.String(), KeyID: last.Signature.KeyID, Already: true}, true, nil
	}
	c, err := a.Ledger.Checkpoint(ctx, chain, a.Signer)
	if err != nil {
		return SignedChain{}, false, err
	}
	return SignedChain{Chain: chain, Seq: c.Seq, HeadHash: c.HeadHash.String(), KeyID: c.Signature.KeyID}, true, nil
}

// SweepEvidence is the evidence retention activity (registered under
// workflows.SweepEvidenceActivity). A dry run
// lists the expired objects and changes nothing. Otherwise each expired
// object is destroyed (data key shredded first, then the ciphertext) and,
// right after, one entry is appended to the day's daily chain (actor
// system:evidence-sweeper, action evidence.destroyed, target the object's
// reference); if that append fails the sweep stops, so nothing more is
// destroyed unrecorded, and the retry carries on.
func (a *Activities) SweepEvidence(ctx context.Context, in SweepEvidenceInput) (SweepEvidenceResult, error) {
	now := a.now()
	res := SweepEvidenceResult{DryRun: in.DryRun}
	if in.DryRun {
		objs, err := a.Evidence.Expired(ctx, now)
		if err != nil {
			return res, fmt.Errorf("evidence sweep (dry run): %w", err)
		}
		for _, o := range objs {
			res.Count++
			if len(res.Objects) < MaxSweepListed {
				res.Objects = append(res.Objects, swept(o))
			}
		}
		return res, nil
	}
	_, err := a.Evidence.SweepEach(ctx, now, func(m evidence.Meta) error {
		heartbeat(ctx, string(m.Ref))
		e, err := a.recordDestroyed(ctx, now, m)
		if err != nil {
			return err
		}
		res.Count++
		if len(res.Objects) < MaxSweepListed {
			o := swept(m)
			o.LedgerChain, o.LedgerSeq = e.Incident, e.Seq
			res.Objects = append(res.Objects, o)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("evidence sweep: %w", err)
	}
	return res, nil
}

func swept(m evidence.Meta) SweptObject {
	return SweptObject{Ref: string(m.Ref), Name: m.Name, Class: string(m.Class), RetainUntil: m.RetainUntil}
}

// destroyedParams are the hashed parameters of an evidence.destroyed entry.
type destroyedParams struct {
	Ref         string    `json:"ref"`
	Incident    string    `json:"incident"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Name        string    `json:"name"`
	Class       string    `json:"class"`
	CollectedAt time.Time `json:"collected_at"`
	RetainUntil time.Time `json:"retain_until"`
	KeyID       string    `json:"key_id"`
}

// recordDestroyed appends the destruction of m to the daily chain of now.
func (a *Activities) recordDestroyed(ctx context.Context, now time.Time, m evidence.Meta) (ledger.Entry, error) {
	detail := fmt.Sprintf("incident %s: %s (%s, %d bytes, sha256 %s) destroyed: retention of class %s ended %s; data key wrapped by %s shredded, ciphertext removed",
		m.Incident, m.Name, m.MediaType, m.Size, m.SHA256, m.Class, m.RetainUntil.UTC().Format(time.RFC3339), m.KeyID)
	req := ledger.AppendRequest{
		Incident: accesslog.Chain(now),
		Time:     now,
		Actor:    evidence.SweeperIdentity,
		Action:   ActionEvidenceDestroyed,
		Target:   truncate(string(m.Ref), ledger.MaxTargetLen),
		Params: destroyedParams{Ref: string(m.Ref), Incident: m.Incident, SHA256: m.SHA256, Size: m.Size, Name: m.Name, Class: string(m.Class),
			CollectedAt: m.CollectedAt, RetainUntil: m.RetainUntil, KeyID: m.KeyID},
		Outcome:        ledger.Outcome{Status: ledger.StatusOK, Detail: truncate(detail, ledger.MaxDetailLen)},
		IdempotencyKey: truncate("evidence-destroyed/"+string(m.Ref), ledger.MaxKeyLen),
	}
	return AppendNext(ctx, a.Ledger, req)
}

// AppendNext appends req at the head of its chain plus one, for chains that
// several processes append to (the daily chains): when another process
// took the slot (ledger.ErrConflict) or the head moved (ledger.ErrGap) it
// re-reads the head and tries again, up to 50 times.
func AppendNext(ctx context.Context, l *ledger.Ledger, req ledger.AppendRequest) (ledger.Entry, error) {
	var err error
	for attempt := 1; attempt <= 50; attempt++ {
		if ctx.Err() != nil {
			return ledger.Entry{}, ctx.Err()
		}
		var head ledger.Entry
		head, err = l.Store().Head(ctx, req.Incident)
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			req.Seq = 1
		case err != nil:
			return ledger.Entry{}, fmt.Errorf("append to %s: head: %w", req.Incident, err)
		case head.IdempotencyKey == req.IdempotencyKey:
			return head, nil // an earlier attempt's append went through
		default:
			req.Seq = head.Seq + 1
		}
		var e ledger.Entry
		e, err = l.Append(ctx, req)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, ledger.ErrConflict) && !errors.Is(err, ledger.ErrGap) {
			return ledger.Entry{}, fmt.Errorf("append to %s: %w", req.Incident, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(rand.Int64N(int64(min(attempt, 20))*int64(time.Millisecond))) + time.Millisecond):
		}
	}
	return ledger.Entry{}, fmt.Errorf("append to %s: gave up after 50 attempts: %w", req.Incident, err)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
