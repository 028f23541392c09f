//go:build integration

package main

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/workflows"
)

// testDecisionSigner plays the HSM decision key in the starter's tests.
var testDecisionSigner = func() *decision.LocalSigner {
	s, err := decision.NewLocalSigner()
	if err != nil {
		panic(err)
	}
	return s
}()

// registerDecisionKeys makes a test worker trust testDecisionSigner.
func registerDecisionKeys(r worker.Registry) {
	r.RegisterActivityWithOptions(func(context.Context, workflows.DecisionKeysInput) (workflows.DecisionKeysResult, error) {
		return workflows.DecisionKeysResult{Keys: decision.KeySet{Keys: []decision.Key{testDecisionSigner.Key(time.Time{}, time.Time{})}}}, nil
	}, activity.RegisterOptions{Name: workflows.DecisionKeysActivity})
}
