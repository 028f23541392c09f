//go:build integration

package test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/activities/housekeeping"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// TestHousekeepingOnTheWorker runs the daily workflows on the platform's
// own worker (as registered by workerhost): a sweep on demand destroys
// the evidence whose (short) retention ended and records it in the
// ledger, and the daily signing runs.
func TestHousekeepingOnTheWorker(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{Env: []string{"IRU_EVIDENCE_RETENTION_PII=1ms"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := p.Host.Stores()
	ref, err := st.Evidence.Put(ctx, evidence.PutRequest{Incident: "INC-RET", Name: "users.json", Class: evidence.ClassPII, MediaType: "application/json",
		CollectedBy: "system:worker", Source: "kc:iru", Body: strings.NewReader(`{"user":"jdoe"}`)})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)

	dry, err := schedules.RunSweep(ctx, p.Client, p.TaskQueue, housekeeping.SweepEvidenceInput{DryRun: true})
	if err != nil || dry.Result.Count != 1 || dry.Result.Objects[0].Ref != string(ref) {
		t.Fatalf("dry run = %+v, %v", dry, err)
	}
	if objs, _ := st.Evidence.List(ctx, "INC-RET"); len(objs) != 1 {
		t.Fatalf("the dry run destroyed evidence: %d objects left", len(objs))
	}
	run, err := schedules.RunSweep(ctx, p.Client, p.TaskQueue, housekeeping.SweepEvidenceInput{})
	if err != nil || run.Result.Count != 1 {
		t.Fatalf("sweep = %+v, %v", run, err)
	}
	if _, _, err := st.Evidence.Get(ctx, ref, evidence.Reader{Identity: "system:test", Reason: "check"}); !errors.Is(err, evidence.ErrDeleted) {
		t.Errorf("%s after the sweep: %v, want ErrDeleted", ref, err)
	}
	o := run.Result.Objects[0]
	var row ledger.Entry
	_ = st.Ledger.Store().Entries(ctx, o.LedgerChain, func(e ledger.Entry) error {
		if e.Seq == o.LedgerSeq {
			row = e
		}
		return nil
	})
	if row.Action != housekeeping.ActionEvidenceDestroyed || row.Target != string(ref) {
		t.Errorf("ledger entry %s seq %d = %+v", o.LedgerChain, o.LedgerSeq, row)
	}

	r, err := p.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: p.TaskQueue}, workflows.SignDailyChainsWorkflow, housekeeping.SignDailyChainsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var signed housekeeping.SignDailyChainsResult
	if err := r.Get(ctx, &signed); err != nil {
		t.Fatalf("sign daily chains on the worker: %v", err)
	}
}
