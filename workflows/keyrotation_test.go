package workflows

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/iru-responder/responder/activities"
)

func TestRotateIntakeKeysWorkflow(t *testing.T) {
	twoRotated := activities.ActionResult{Outputs: map[string]string{
		"rotated": "am:rot-1,falco:rot-2", "secret_ref_am": "secret://intake/am/rot-1/aa", "secret_ref_falco": "secret://intake/falco/rot-2/bb",
	}, Summary: "rotated"}
	tests := []struct {
		name     string
		in       RotateIntakeKeysInput
		result   activities.ActionResult
		fail     error
		want     []RotatedIntakeKey
		wantErr  string
		attempts int
		params   map[string]string
	}{
		{name: "all detectors", result: twoRotated, attempts: 1,
			params: map[string]string{"reason": DefaultIntakeKeyRotationReason},
			want:   []RotatedIntakeKey{{"am", "rot-1", "secret://intake/am/rot-1/aa"}, {"falco", "rot-2", "secret://intake/falco/rot-2/bb"}}},
		{name: "one source", in: RotateIntakeKeysInput{Source: "am", Reason: "leak"}, attempts: 1,
			result: activities.ActionResult{Outputs: map[string]string{"rotated": "am:rot-1", "secret_ref_am": "secret://x"}},
			params: map[string]string{"source": "am", "reason": "leak"},
			want:   []RotatedIntakeKey{{"am", "rot-1", "secret://x"}}},
		{name: "nothing to rotate", result: activities.ActionResult{Outputs: map[string]string{"rotated": ""}}, attempts: 1,
			params: map[string]string{"reason": DefaultIntakeKeyRotationReason}},
		{name: "dry run", in: RotateIntakeKeysInput{DryRun: true}, attempts: 1,
			result: activities.ActionResult{Plan: []string{"mint"}, Outputs: map[string]string{"rotated": ""}},
			params: map[string]string{"reason": DefaultIntakeKeyRotationReason}},
		{name: "missing reference", result: activities.ActionResult{Outputs: map[string]string{"rotated": "am:rot-1"}}, attempts: 1,
			wantErr: "no secret reference"},
		{name: "final error is not retried", attempts: 1,
			fail:    activities.NewFinalError(activities.ErrTypeNotFound, "detector x is not in the detectors file", nil),
			wantErr: "not in the detectors file"},
		{name: "transient error is retried", attempts: 10, fail: errors.New("disk busy"), wantErr: "disk busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu    sync.Mutex
				calls []activities.ActionInput
			)
			act := func(_ context.Context, in activities.ActionInput) (activities.ActionResult, error) {
				mu.Lock()
				calls = append(calls, in)
				mu.Unlock()
				if tt.fail != nil {
					return activities.ActionResult{}, tt.fail
				}
				return tt.result, nil
			}
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.RegisterActivityWithOptions(act, activity.RegisterOptions{Name: activities.KeysRotateIntakeKeys})
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "keys:intake-rotation-2026"})
			env.ExecuteWorkflow(RotateIntakeKeys, tt.in)
			if !env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			if len(calls) != tt.attempts {
				t.Fatalf("%d activity attempts, want %d", len(calls), tt.attempts)
			}
			for _, c := range calls {
				if c.IdempotencyKey != "intake-keys:keys:intake-rotation-2026" || c.Action != activities.KeysRotateIntakeKeys || c.DryRun != tt.in.DryRun {
					t.Fatalf("activity input %+v", c)
				}
			}
			err := env.GetWorkflowError()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.params != nil && !maps.Equal(calls[0].Params, tt.params) {
				t.Fatalf("params %v, want %v", calls[0].Params, tt.params)
			}
			var got RotateIntakeKeysResult
			if err := env.GetWorkflowResult(&got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Rotated, tt.want) || !slices.Equal(got.Plan, tt.result.Plan) {
				t.Fatalf("result %+v, want %+v", got, tt.want)
			}
		})
	}
}
