package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
)

// SelfTestInput is the input of [SelfTest].
type SelfTestInput struct {
	// Nonce is echoed by the worker's probe, proving the round trip.
	Nonce string
}

// SelfTestResult is the result of [SelfTest].
type SelfTestResult struct {
	Probe activities.SelfTestProbeResult
	// Healthy is true when the probe echoed the nonce and every dependency
	// check passed.
	Healthy bool
}

// SelfTest is the platform's end-to-end health check: the starter starts
// it, a worker runs the probe activity, the result comes back. It fails if
// the nonce does not come back intact.
func SelfTest(ctx workflow.Context, in SelfTestInput) (SelfTestResult, error) {
	ctx = workflow.WithActivityOptions(ctx, activities.SelfTestProbeOptions())
	var probe activities.SelfTestProbeResult
	err := workflow.ExecuteActivity(ctx, activities.SelfTestProbe, activities.SelfTestProbeInput{Nonce: in.Nonce}).Get(ctx, &probe)
	if err != nil {
		return SelfTestResult{}, fmt.Errorf("selftest probe: %w", err)
	}
	if probe.Nonce != in.Nonce {
		return SelfTestResult{}, fmt.Errorf("selftest probe echoed %q, want %q", probe.Nonce, in.Nonce)
	}
	healthy := true
	for _, c := range probe.Checks {
		healthy = healthy && c.OK
	}
	return SelfTestResult{Probe: probe, Healthy: healthy}, nil
}
