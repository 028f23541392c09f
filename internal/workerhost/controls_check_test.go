//go:build integration

package workerhost

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	controlsact "github.com/iru-responder/responder/activities/controls"
	"github.com/iru-responder/responder/activities/housekeeping"
	"github.com/iru-responder/responder/controls"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/stores"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestControlsOnTemporal runs controls.check as the worker registers it,
// through a real dev server, with the checks of what ran reading
// Temporal's visibility: before any evidence sweep the retention control
// is unknown; once the real sweep workflow completed it passes. No drill
// ran, so the drills control fails, naming each playbook.
func TestControlsOnTemporal(t *testing.T) {
	const queue = "controls-test"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	km, _ := hsmtest.Manager(t)
	dir := t.TempDir()
	st, err := ledger.OpenSQLite(ctx, filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	locker, err := evidence.Open(filepath.Join(dir, "evidence"), stores.KEK{M: km}, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hk := &housekeeping.Activities{Ledger: ledger.New(st, nil), Signer: stores.Signer{M: km}, Evidence: locker}
	f, err := controls.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.Client(t, client.Options{})
	acts := &controlsact.Activities{File: f, Runs: TemporalRuns{C: c}, Playbooks: []string{"container-compromise", "credential-compromise"}}
	testenv.Worker(t, c, queue, func(r worker.Registry) {
		acts.Register(r)
		r.RegisterWorkflowWithOptions(workflows.SweepEvidence, workflow.RegisterOptions{Name: workflows.SweepEvidenceWorkflow})
		r.RegisterActivityWithOptions(hk.SweepEvidence, activity.RegisterOptions{Name: workflows.SweepEvidenceActivity})
		r.RegisterWorkflowWithOptions(checkWorkflow, workflow.RegisterOptions{Name: "controls-test-check"})
	})
	check := func(id string) activities.ControlCheckResult {
		t.Helper()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, "controls-test-check", activities.ControlCheckInput{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		var res activities.ControlCheckResult
		if err := run.Get(ctx, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := check("data-retention-sweep"); res.Status != activities.ControlUnknown || !strings.Contains(res.Findings[0].Observed, "no completed sweep") {
		t.Fatalf("before a sweep: %s %+v", res.Status, res.Findings)
	}
	sweep, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, workflows.SweepEvidenceWorkflow, housekeeping.SweepEvidenceInput{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sweep.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var res activities.ControlCheckResult
	for res.Status != activities.ControlPass && ctx.Err() == nil { // visibility catches up with the close
		res = check("data-retention-sweep")
		time.Sleep(200 * time.Millisecond)
	}
	if res.Status != activities.ControlPass {
		t.Fatalf("after a sweep: %s %+v", res.Status, res.Findings)
	}
	res = check("ir-drills")
	if res.Status != activities.ControlFail || len(res.Findings) != 2 || res.Findings[0].Target != "playbook/container-compromise" ||
		res.Findings[0].Observed != "no drill ended in the period" {
		t.Fatalf("drills: %s %+v", res.Status, res.Findings)
	}
}

// checkWorkflow runs controls.check once, as a controls workflow does.
func checkWorkflow(ctx workflow.Context, in activities.ControlCheckInput) (activities.ControlCheckResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var res activities.ControlCheckResult
	err := workflow.ExecuteActivity(ctx, activities.ControlsCheck, in).Get(ctx, &res)
	return res, err
}
