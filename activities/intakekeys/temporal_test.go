//go:build integration

package intakekeys

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestScheduleOnDevServer creates the rotation schedule on a real Temporal
// dev server, describes it, triggers it and checks that the workflow ran
// the activity and rotated the keys; then runs a rotation on demand.
func TestScheduleOnDevServer(t *testing.T) {
	const queue = "intakekeys-test"
	f := newFixture(t)
	in := newIntake(t, f)
	c := testenv.Client(t, client.Options{})
	testenv.Worker(t, c, queue, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(workflows.RotateIntakeKeys, workflow.RegisterOptions{Name: workflows.RotateIntakeKeysWorkflow})
		f.acts.Register(r)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	sc := c.ScheduleClient()
	if change, err := schedules.EnsureIntakeKeyRotation(ctx, sc, queue); err != nil || change != "created" {
		t.Fatalf("EnsureSchedule = %q, %v", change, err)
	}
	h := sc.GetHandle(ctx, workflows.IntakeKeyRotationScheduleID)
	t.Cleanup(func() { _ = h.Delete(context.Background()) })
	if change, err := schedules.EnsureIntakeKeyRotation(ctx, sc, queue); err != nil || change != "updated" {
		t.Fatalf("second EnsureSchedule = %q, %v", change, err)
	}
	desc, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := desc.Schedule
	if s.Spec == nil || len(s.Spec.Intervals) != 1 || s.Spec.Intervals[0].Every != 90*24*time.Hour {
		t.Fatalf("spec %+v, want one 90-day interval", s.Spec)
	}
	if s.Policy == nil || s.Policy.Overlap != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP {
		t.Fatalf("policy %+v, want overlap SKIP", s.Policy)
	}
	action, ok := s.Action.(*client.ScheduleWorkflowAction)
	if !ok || action.Workflow != workflows.RotateIntakeKeysWorkflow || action.TaskQueue != queue {
		t.Fatalf("action %+v", s.Action)
	}
	if n := desc.Info.NextActionTimes; len(n) == 0 || n[0].Before(time.Now()) || n[0].After(time.Now().Add(90*24*time.Hour)) {
		t.Fatalf("next action times %v, want one within 90 days", n)
	}

	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP}); err != nil {
		t.Fatal(err)
	}
	var wfID, runID string
	for wfID == "" {
		if ctx.Err() != nil {
			t.Fatal("the triggered schedule started no workflow")
		}
		d, err := h.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Info.RecentActions) > 0 && d.Info.RecentActions[0].StartWorkflowResult != nil {
			wfID, runID = d.Info.RecentActions[0].StartWorkflowResult.WorkflowID, d.Info.RecentActions[0].StartWorkflowResult.FirstExecutionRunID
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !strings.HasPrefix(wfID, workflows.IntakeKeyRotationScheduleID) {
		t.Fatalf("scheduled workflow id %s", wfID)
	}
	var res workflows.RotateIntakeKeysResult
	if err := c.GetWorkflow(ctx, wfID, runID).Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Rotated) != 2 || res.Rotated[0].Detector != "generic" || res.Rotated[1].Detector != "falco" {
		t.Fatalf("scheduled rotation result %+v", res)
	}
	if res.Rotated[0].KeyID != KeyID("intake-keys:"+wfID, "generic") {
		t.Fatalf("key id %s does not derive from the workflow id", res.Rotated[0].KeyID)
	}
	if _, err := in.rl.Check(); err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rotated {
		if in.post(t, r.Detector, f.secret(t, r.SecretRef)) == http.StatusUnauthorized {
			t.Fatalf("%s: the rotated key is refused", r.Detector)
		}
	}

	// On demand, one detector; its scheduled key becomes an older key.
	run, err := schedules.RunIntakeKeyRotation(ctx, c, queue, workflows.RotateIntakeKeysInput{Source: "generic", Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Result.Rotated) != 1 || !strings.HasPrefix(run.WorkflowID, workflows.IntakeKeyRotationManualPrefix) {
		t.Fatalf("manual rotation %+v", run)
	}
	df := f.load(t)
	gen := df.Detectors[df.Detector("generic")]
	if last := gen.APIKeys[len(gen.APIKeys)-1]; last.ID != run.Result.Rotated[0].KeyID || last.SecretRef != run.Result.Rotated[0].SecretRef {
		t.Fatalf("newest generic key %+v", last)
	}
	if prev := gen.APIKeys[len(gen.APIKeys)-2]; prev.ID != res.Rotated[0].KeyID || prev.NotAfter.IsZero() {
		t.Fatalf("the scheduled key %+v did not get an end", prev)
	}
}
