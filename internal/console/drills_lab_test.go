//go:build integration

package console

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/internal/drills"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// TestTemporalDrills reads a drill schedule from the dev server: the
// shipped canary drill, scheduled on the platform's task queue and
// triggered, runs the real Drill and Incident workflows against the lab;
// TemporalDrills reports its next run and, once the run completed, the
// objectives its report measured.
func TestTemporalDrills(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	set, err := playbooks.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	f, err := drills.Embedded(set)
	if err != nil {
		t.Fatal(err)
	}
	def := f.Drills[0]
	if def.Schedule.Cron[0] != "0 3 * * MON" {
		t.Fatalf("the canary's schedule changed to %v: update the expected calendar", def.Schedule.Cron)
	}
	name := "console-" + uuid.NewString()[:8]
	id := workflows.DrillScheduleID(name)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	in := def.Input("schedule:" + id)
	in.Name = name
	h, err := p.Client.ScheduleClient().Create(ctx, client.ScheduleOptions{ID: id,
		Spec: client.ScheduleSpec{CronExpressions: def.Schedule.Cron, TimeZoneName: def.Schedule.Timezone},
		Action: &client.ScheduleWorkflowAction{ID: id, Workflow: workflows.DrillWorkflow, Args: []any{in}, TaskQueue: p.TaskQueue,
			WorkflowExecutionTimeout: 10 * time.Minute, TypedSearchAttributes: temporal.NewSearchAttributes(workflows.DrillKey.ValueSet(true))},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Delete(context.Background()) })
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	src := TemporalDrills{Client: p.Client}
	var got DrillView
	for {
		views, err := src.Drills(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range views {
			if v.ID == id {
				got = v
			}
		}
		if len(got.Runs) > 0 && got.Last().Report != nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no drill report after the trigger: %+v", got)
		}
		time.Sleep(500 * time.Millisecond)
	}
	rep := got.Last().Report
	if got.Name != name || got.NextRun.IsZero() || got.Schedule != "at 0 3 * * 1" || got.Last().Status != "Completed" {
		t.Errorf("drill view %+v", got)
	}
	if len(got.Objectives()) != len(def.Objectives) || len(rep.Objectives) != len(def.Objectives) {
		t.Fatalf("objectives %v, want those of %+v", got.Objectives(), def.Objectives)
	}
	for _, o := range def.Objectives {
		if r := got.Last().Objective(o.Name); r == nil || r.Within != o.Within || !r.Reached {
			t.Errorf("objective %s: %+v", o.Name, r)
		}
	}
	t.Logf("drill %s: passed=%v, state %s, objectives %+v", name, rep.Passed, rep.State, rep.Objectives)
}
