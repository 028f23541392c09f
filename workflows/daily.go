package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Bounds of the platform's daily housekeeping: signing the daily audit
// chains and sweeping expired evidence.
const (
	// DailyChainLookback is how many ended days the signing looks back at,
	// so that a day missed while the platform was down, or entries that
	// arrived after a day was signed, are signed on a later run.
	DailyChainLookback = 7
	// MaxSweepListed bounds the objects a sweep result lists (the ledger
	// has every one); workflow payloads stay small.
	MaxSweepListed = 100
)

// SignDailyChainsInput is the input of [SignDailyChains] and of
// [SignDailyChainsActivity].
type SignDailyChainsInput struct {
	// Day (2006-01-02, UTC) signs only that day's chains; "" signs every
	// ended day of the last [DailyChainLookback] days whose head no
	// checkpoint covers yet.
	Day string `json:",omitempty"`
}

// SignedChain is one daily chain and the checkpoint that covers its head.
type SignedChain struct {
	Chain    string
	Seq      int64
	HeadHash string
	// KeyID is the HSM key that signed the checkpoint.
	KeyID string
	// Already is true when an earlier checkpoint already covered the head
	// (nothing was signed this time).
	Already bool `json:",omitempty"`
}

// SignDailyChainsResult is the result of [SignDailyChains].
type SignDailyChainsResult struct {
	Chains []SignedChain `json:",omitempty"`
}

// SweepEvidenceInput is the input of [SweepEvidence] and of
// [SweepEvidenceActivity].
type SweepEvidenceInput struct {
	// DryRun lists what would be destroyed and changes nothing.
	DryRun bool `json:",omitempty"`
}

// SweptObject is one evidence object a sweep destroyed (or, in a dry run,
// would destroy).
type SweptObject struct {
	Ref         string
	Name        string
	Class       string
	RetainUntil time.Time
	// LedgerChain and LedgerSeq locate the ledger entry that records the
	// destruction ("" and 0 in a dry run).
	LedgerChain string `json:",omitempty"`
	LedgerSeq   int64  `json:",omitempty"`
}

// SweepEvidenceResult is the result of [SweepEvidence].
type SweepEvidenceResult struct {
	// Count is how many objects were destroyed (would be, in a dry run).
	Count int
	// Objects lists the first [MaxSweepListed] of them.
	Objects []SweptObject `json:",omitempty"`
	DryRun  bool          `json:",omitempty"`
}

// housekeepingActivityOptions are the options of the housekeeping
// activities: they run for minutes at most, heartbeat while they work, and
// retry for an hour (the next run is a day away).
func housekeepingActivityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute, MaximumAttempts: 12,
		},
	}
}

// SignDailyChains signs the daily audit chains of the days that
// ended: the access log, key changes and configuration loads all go to the
// chain "access:<day>", and each ended day gets an HSM-signed checkpoint of
// its head, as incident chains get one when they close. The activity is
// idempotent: a head already covered is not signed again.
func SignDailyChains(ctx workflow.Context, in SignDailyChainsInput) (SignDailyChainsResult, error) {
	ctx = workflow.WithActivityOptions(ctx, housekeepingActivityOptions())
	var res SignDailyChainsResult
	if err := workflow.ExecuteActivity(ctx, SignDailyChainsActivity, in).Get(ctx, &res); err != nil {
		return SignDailyChainsResult{}, fmt.Errorf("sign daily chains: %w", err)
	}
	return res, nil
}

// SweepEvidence runs the evidence retention: every object whose
// retention ended is destroyed (its data key shredded, then its
// ciphertext removed) and each destruction is written to the audit ledger.
func SweepEvidence(ctx workflow.Context, in SweepEvidenceInput) (SweepEvidenceResult, error) {
	ctx = workflow.WithActivityOptions(ctx, housekeepingActivityOptions())
	var res SweepEvidenceResult
	if err := workflow.ExecuteActivity(ctx, SweepEvidenceActivity, in).Get(ctx, &res); err != nil {
		return SweepEvidenceResult{}, fmt.Errorf("sweep evidence: %w", err)
	}
	return res, nil
}
