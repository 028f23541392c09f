package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities/housekeeping"
)

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
func SignDailyChains(ctx workflow.Context, in housekeeping.SignDailyChainsInput) (housekeeping.SignDailyChainsResult, error) {
	ctx = workflow.WithActivityOptions(ctx, housekeepingActivityOptions())
	var res housekeeping.SignDailyChainsResult
	if err := workflow.ExecuteActivity(ctx, SignDailyChainsActivity, in).Get(ctx, &res); err != nil {
		return housekeeping.SignDailyChainsResult{}, fmt.Errorf("sign daily chains: %w", err)
	}
	return res, nil
}

// SweepEvidence runs the evidence retention: every object whose
// retention ended is destroyed (its data key shredded, then its
// ciphertext removed) and each destruction is written to the audit ledger.
func SweepEvidence(ctx workflow.Context, in housekeeping.SweepEvidenceInput) (housekeeping.SweepEvidenceResult, error) {
	ctx = workflow.WithActivityOptions(ctx, housekeepingActivityOptions())
	var res housekeeping.SweepEvidenceResult
	if err := workflow.ExecuteActivity(ctx, SweepEvidenceActivity, in).Get(ctx, &res); err != nil {
		return housekeeping.SweepEvidenceResult{}, fmt.Errorf("sweep evidence: %w", err)
	}
	return res, nil
}
