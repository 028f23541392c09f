package workflows

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/iru-responder/responder/activities/housekeeping"
)

// TestHousekeepingWorkflows runs both daily workflows with their
// activity: the input reaches the activity, the result comes back, a
// transient failure is retried and a final one fails the workflow.
func TestHousekeepingWorkflows(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int32 // transient failures before success
		final    bool
		wantErr  string
	}{
		{name: "ok"},
		{name: "retried", failures: 2},
		{name: "final failure", final: true, wantErr: "sweep evidence"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			var calls atomic.Int32
			fail := func() error {
				n := calls.Add(1)
				switch {
				case tc.final:
					return temporal.NewNonRetryableApplicationError("locker unreadable", "Broken", nil)
				case n <= tc.failures:
					return errors.New("ledger busy")
				}
				return nil
			}
			env.RegisterActivityWithOptions(func(_ context.Context, in housekeeping.SweepEvidenceInput) (housekeeping.SweepEvidenceResult, error) {
				if err := fail(); err != nil {
					return housekeeping.SweepEvidenceResult{}, err
				}
				return housekeeping.SweepEvidenceResult{Count: 1, DryRun: in.DryRun, Objects: []housekeeping.SweptObject{{Ref: "evidence://INC-1/sha256:aa"}}}, nil
			}, activity.RegisterOptions{Name: SweepEvidenceActivity})
			env.ExecuteWorkflow(SweepEvidence, housekeeping.SweepEvidenceInput{DryRun: true})
			err := env.GetWorkflowError()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || calls.Load() != 1 {
					t.Fatalf("err = %v after %d calls, want %q after 1", err, calls.Load(), tc.wantErr)
				}
				return
			}
			var res housekeeping.SweepEvidenceResult
			if err != nil || env.GetWorkflowResult(&res) != nil || res.Count != 1 || !res.DryRun || calls.Load() != tc.failures+1 {
				t.Fatalf("result %+v, %v after %d calls", res, err, calls.Load())
			}

			env = s.NewTestWorkflowEnvironment()
			calls.Store(0)
			env.RegisterActivityWithOptions(func(_ context.Context, in housekeeping.SignDailyChainsInput) (housekeeping.SignDailyChainsResult, error) {
				if err := fail(); err != nil {
					return housekeeping.SignDailyChainsResult{}, err
				}
				return housekeeping.SignDailyChainsResult{Chains: []housekeeping.SignedChain{{Chain: "access:" + in.Day, Seq: 3}}}, nil
			}, activity.RegisterOptions{Name: SignDailyChainsActivity})
			env.ExecuteWorkflow(SignDailyChains, housekeeping.SignDailyChainsInput{Day: "2026-12-04"})
			var signed housekeeping.SignDailyChainsResult
			if err := env.GetWorkflowError(); err != nil || env.GetWorkflowResult(&signed) != nil || signed.Chains[0].Chain != "access:2026-12-04" {
				t.Fatalf("signed %+v, %v", signed, err)
			}
		})
	}
}
