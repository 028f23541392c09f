package activities

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// SelfTestProbeInput is the input of [SelfTestProbe].
type SelfTestProbeInput struct {
	Nonce string
}

// SelfTestProbeResult is the result of [SelfTestProbe].
type SelfTestProbeResult struct {
	Nonce    string // echoed
	Worker   string // worker identity (host and pid)
	Version  string // worker build version
	Checks   []DependencyCheck
	Finished time.Time
}

// DependencyCheck is the result of one dependency probe on the worker.
type DependencyCheck struct {
	Name  string
	OK    bool
	Error string `json:",omitempty"`
}

// SelfTestProbeOptions are the activity options for [SelfTestProbe]: a quick
// round trip with a few retries, so a broken worker fails the self-test fast.
func SelfTestProbeOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    200 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    2 * time.Second,
			MaximumAttempts:    3,
		},
	}
}
