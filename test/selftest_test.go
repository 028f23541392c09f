//go:build integration

package test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/activities/selftest"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/workerhost"
	"github.com/iru-responder/responder/workflows"
)

// TestSelfTestOnDevServer runs the smoke workflow end to end on the real dev
// server with the worker's own registrations: starter → server → worker →
// activity → result.
func TestSelfTestOnDevServer(t *testing.T) {
	c := testenv.Client(t, client.Options{})
	tests := []struct {
		name        string
		probes      map[string]selftest.Probe
		wantHealthy bool
	}{
		{"all dependencies ok", map[string]selftest.Probe{"ledger": func(context.Context) error { return nil }}, true},
		{"a dependency down", map[string]selftest.Probe{"ledger": func(context.Context) error { return errors.New("connection refused") }}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tq := "selftest-" + uuid.NewString()
			testenv.Worker(t, c, tq, func(r worker.Registry) {
				workerhost.Register(r, workerhost.Deps{SelfTest: &selftest.Activities{Probes: tt.probes, Order: []string{"ledger"}}})
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			nonce := uuid.NewString()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.SelfTestWorkflowID(nonce), TaskQueue: tq},
				workflows.SelfTestWorkflow, workflows.SelfTestInput{Nonce: nonce})
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			var res workflows.SelfTestResult
			if err := run.Get(ctx, &res); err != nil {
				t.Fatalf("result: %v", err)
			}
			if res.Probe.Nonce != nonce {
				t.Errorf("nonce = %q, want %q", res.Probe.Nonce, nonce)
			}
			if res.Healthy != tt.wantHealthy {
				t.Errorf("healthy = %v, want %v (checks %+v)", res.Healthy, tt.wantHealthy, res.Probe.Checks)
			}
			if len(res.Probe.Checks) != 1 || res.Probe.Checks[0].Name != "ledger" {
				t.Errorf("checks = %+v, want one ledger check", res.Probe.Checks)
			}
		})
	}
}
