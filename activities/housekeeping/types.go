package housekeeping

import "time"

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

// SignDailyChainsInput is the input of the daily chain signing
// ([Activities.SignDailyChains] and its workflow).
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

// SignDailyChainsResult is the result of the daily chain signing.
type SignDailyChainsResult struct {
	Chains []SignedChain `json:",omitempty"`
}

// SweepEvidenceInput is the input of the evidence retention sweep
// ([Activities.SweepEvidence] and its workflow).
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

// SweepEvidenceResult is the result of the evidence retention sweep.
type SweepEvidenceResult struct {
	// Count is how many objects were destroyed (would be, in a dry run).
	Count int
	// Objects lists the first [MaxSweepListed] of them.
	Objects []SweptObject `json:",omitempty"`
	DryRun  bool          `json:",omitempty"`
}
