package workflows

import (
	"context"
	"strings"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/iru-responder/responder/activities"
)

func TestSelfTest(t *testing.T) {
	tests := []struct {
		name        string
		probe       func(context.Context, activities.SelfTestProbeInput) (activities.SelfTestProbeResult, error)
		wantErr     string
		wantHealthy bool
	}{
		{
			name: "echo and healthy",
			probe: func(_ context.Context, in activities.SelfTestProbeInput) (activities.SelfTestProbeResult, error) {
				return activities.SelfTestProbeResult{Nonce: in.Nonce, Checks: []activities.DependencyCheck{{Name: "x", OK: true}}}, nil
			},
			wantHealthy: true,
		},
		{
			name: "failed dependency",
			probe: func(_ context.Context, in activities.SelfTestProbeInput) (activities.SelfTestProbeResult, error) {
				return activities.SelfTestProbeResult{Nonce: in.Nonce, Checks: []activities.DependencyCheck{{Name: "x", OK: true}, {Name: "y", Error: "down"}}}, nil
			},
			wantHealthy: false,
		},
		{
			name: "nonce corrupted",
			probe: func(_ context.Context, in activities.SelfTestProbeInput) (activities.SelfTestProbeResult, error) {
				return activities.SelfTestProbeResult{Nonce: in.Nonce + "x"}, nil
			},
			wantErr: "echoed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.RegisterActivityWithOptions(tt.probe, activity.RegisterOptions{Name: activities.SelfTestProbe})
			env.ExecuteWorkflow(SelfTest, SelfTestInput{Nonce: "n-1"})
			if !env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			err := env.GetWorkflowError()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var res SelfTestResult
			if err := env.GetWorkflowResult(&res); err != nil {
				t.Fatal(err)
			}
			if res.Healthy != tt.wantHealthy || res.Probe.Nonce != "n-1" {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

func TestSearchAttributeFlags(t *testing.T) {
	got := strings.Join(SearchAttributeFlags(), " ")
	want := "IruSeverity=Keyword IruPhase=Keyword IruPlaybook=Keyword IruAsset=Keyword IruDrill=Bool"
	if got != want {
		t.Errorf("flags = %q, want %q", got, want)
	}
}
