//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/drillreport"
	"github.com/iru-responder/responder/internal/drills"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/workerhost"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// The package's TestMain (cmd_incidents_test.go) runs testenv.Main: one
// shared Temporal dev server for the package.

func quietClient(t *testing.T) client.Client {
	t.Helper()
	return testenv.Client(t, client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
}

// drillFile parses a drills file against the embedded playbooks.
func drillFile(t *testing.T, src string) *drills.File {
	t.Helper()
	set, err := playbooks.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	f, err := drills.Parse("test-drills.yaml", []byte(src), set)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

const syncTestDrills = `drills:
  - name: sync-weekly
    playbook: container-compromise
    target: drill-canary
    schedule: {cron: ["0 3 * * MON"]}
    mode: live
    objectives: {contain_within: 60s}
    auto_approve: [shutdown, restore]
  - name: sync-hourly
    playbook: credential-compromise
    target: drill-user
    schedule: {interval: 1h}
    mode: dry-run
    objectives: {report_within: 30m}
`

func changes(cs []syncChange) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.ID+"="+c.Change)
	}
	return strings.Join(parts, " ")
}

func TestDrillsSync(t *testing.T) {
	c := quietClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := drillFile(t, syncTestDrills)

	var out bytes.Buffer
	cs, err := syncDrills(ctx, c, f, syncOptions{Prune: true}, &out)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if got := changes(cs); got != "drill:sync-weekly=created drill:sync-hourly=created" {
		t.Fatalf("first sync: %s", got)
	}
	desc, err := c.ScheduleClient().GetHandle(ctx, "drill:sync-weekly").Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := desc.Schedule.Policy; p.Overlap != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP || p.CatchupWindow != drillCatchupWindow {
		t.Errorf("policies = %+v, want overlap SKIP and a %s catch-up window", p, drillCatchupWindow)
	}
	if len(desc.Info.NextActionTimes) == 0 || desc.Info.NextActionTimes[0].Weekday() != time.Monday || desc.Info.NextActionTimes[0].Hour() != 3 {
		t.Errorf("next runs %v, want Mondays 03:00", desc.Info.NextActionTimes)
	}
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || action.ID != "drill:sync-weekly" || action.TaskQueue != workflows.TaskQueue || fmt.Sprint(action.Workflow) != workflows.DrillWorkflow {
		t.Errorf("action = %+v", desc.Schedule.Action)
	}
	if v, ok := desc.TypedSearchAttributes.GetBool(workflows.DrillKey); !ok || !v {
		t.Errorf("schedule search attribute %s = %v, %v; want true", workflows.DrillKey.GetName(), v, ok)
	}
	if desc.Memo == nil || desc.Memo.Fields["Drill"] == nil {
		t.Errorf("memo = %v, want Drill", desc.Memo)
	}
	if st := desc.Schedule.State; st == nil || !strings.Contains(st.Note, "spec sha256:") {
		t.Errorf("state = %+v", desc.Schedule.State)
	}

	// Again: nothing changes.
	cs, err = syncDrills(ctx, c, f, syncOptions{Prune: true}, io.Discard)
	if err != nil || changes(cs) != "drill:sync-weekly=unchanged drill:sync-hourly=unchanged" {
		t.Fatalf("second sync: %s, %v", changes(cs), err)
	}
	// A changed objective updates; a drill gone from the file is deleted
	// once the server lists it. Other schedules are not touched.
	other, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{ID: "not-a-drill", Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Hour}}},
		Action: &client.ScheduleWorkflowAction{ID: "x", Workflow: workflows.SelfTestWorkflow, TaskQueue: "elsewhere"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Delete(context.Background()) })
	f2 := drillFile(t, strings.Replace(syncTestDrills[:strings.Index(syncTestDrills, "  - name: sync-hourly")], "60s", "45s", 1))
	waitListed(t, c, "drill:sync-hourly")
	cs, err = syncDrills(ctx, c, f2, syncOptions{Prune: true, DryRun: true}, io.Discard)
	if err != nil || changes(cs) != "drill:sync-weekly=updated drill:sync-hourly=deleted" {
		t.Fatalf("dry-run sync: %s, %v", changes(cs), err)
	}
	if _, err := c.ScheduleClient().GetHandle(ctx, "drill:sync-hourly").Describe(ctx); err != nil {
		t.Fatalf("a dry run deleted the schedule: %v", err)
	}
	cs, err = syncDrills(ctx, c, f2, syncOptions{Prune: true}, io.Discard)
	if err != nil || changes(cs) != "drill:sync-weekly=updated drill:sync-hourly=deleted" {
		t.Fatalf("third sync: %s, %v", changes(cs), err)
	}
	if _, err := c.ScheduleClient().GetHandle(ctx, "drill:sync-hourly").Describe(ctx); !isNotFound(err) {
		t.Errorf("deleted schedule: describe err = %v, want NotFound", err)
	}
	if _, err := other.Describe(ctx); err != nil {
		t.Errorf("sync touched a schedule that is not a drill: %v", err)
	}
	desc, err = c.ScheduleClient().GetHandle(ctx, "drill:sync-weekly").Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := desc.Schedule.Policy; p.Overlap != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP {
		t.Errorf("updated schedule lost its overlap policy: %+v", p)
	}
	var in workflows.DrillInput
	if a, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction); !ok || len(a.Args) != 1 {
		t.Fatalf("action = %+v", desc.Schedule.Action)
	} else if err := decodeArg(a.Args[0], &in); err != nil || len(in.Objectives) != 1 || in.Objectives[0].Within != 45*time.Second {
		t.Errorf("updated input = %+v, %v; want contain_within 45s", in, err)
	}

	var listing bytes.Buffer
	if err := listDrills(ctx, c, false, &listing); err != nil {
		t.Fatal(err)
	}
	waitListed(t, c, "drill:sync-weekly")
	listing.Reset()
	if err := listDrills(ctx, c, false, &listing); err != nil || !strings.Contains(listing.String(), "drill:sync-weekly  active  next ") {
		t.Errorf("drills list = %q, %v", listing.String(), err)
	}
	t.Cleanup(func() {
		_ = c.ScheduleClient().GetHandle(context.Background(), "drill:sync-weekly").Delete(context.Background())
	})
}

// decodeArg decodes a schedule action argument as described by the server.
func decodeArg(arg any, v any) error {
	p, ok := arg.(*commonpb.Payload)
	if !ok {
		return fmt.Errorf("argument is %T, want a payload", arg)
	}
	return converter.GetDefaultDataConverter().FromPayload(p, v)
}

// waitListed waits until the schedule list (visibility) shows id.
func waitListed(t *testing.T, c client.Client, id string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ids, err := drillScheduleIDs(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ids {
			if x == id {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("schedule %s never appeared in the schedule list", id)
}

// fakePlatform implements every catalog action and the ledger for the
// drill run on the dev server, and keeps the evidence the drill stores.
type fakePlatform struct {
	mu       sync.Mutex
	calls    []activities.ActionInput
	ledger   int
	evidence map[string]string // name → content
	items    []activities.EvidenceItem
}

func (f *fakePlatform) run(_ context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	f.mu.Lock()
	f.calls = append(f.calls, in)
	f.mu.Unlock()
	a, err := activities.Lookup(in.Action)
	if err != nil {
		return activities.ActionResult{}, err
	}
	res := activities.ActionResult{Outputs: map[string]string{}, Summary: "did " + in.Action}
	for _, o := range a.Outputs {
		res.Outputs[o] = in.Action + "." + o
	}
	if in.Action == activities.PVEResolveAsset {
		res.Outputs["ip"], res.Outputs["last_backup"] = "10.0.0.9", "local:backup/vzdump-lxc-901.tar.zst"
	}
	return res, nil
}

func (f *fakePlatform) append(_ context.Context, in activities.LedgerAppendInput) (activities.LedgerAppendResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ledger++
	return activities.LedgerAppendResult{Hash: fmt.Sprint(in.Seq)}, nil
}

// appendBatch stores every entry of a ledger batch, as append does.
func (f *fakePlatform) appendBatch(ctx context.Context, in activities.LedgerAppendBatchInput) (activities.LedgerAppendBatchResult, error) {
	var res activities.LedgerAppendBatchResult
	for _, e := range in.Entries {
		r, err := f.append(ctx, e)
		if err != nil {
			return res, err
		}
		res.Stored = append(res.Stored, r)
	}
	return res, nil
}

func (f *fakePlatform) PutEvidence(_ context.Context, item activities.EvidenceItem) (string, error) {
	b, err := io.ReadAll(item.Body)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = append(f.items, item)
	f.evidence[item.Name] = string(b)
	return "evidence://" + item.IncidentID + "/" + item.Name, nil
}

const triggerTestDrills = `drills:
  - name: trigger-canary
    playbook: container-compromise
    target: drill-canary
    schedule: {cron: ["0 3 1 1 *"]}
    mode: live
    objectives: {contain_within: 60s, recover_within: 10m, report_within: 15m}
    auto_approve: [shutdown, restore]
    timeout: 5m
`

// TestScheduledDrillRuns triggers a synced drill schedule on the dev server:
// the real Drill and Incident workflows run the container-compromise
// playbook (fake actions), the drill approves exactly its listed steps
// through the approve update, and its report reaches the evidence store.
func TestScheduledDrillRuns(t *testing.T) {
	c := quietClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	set, err := playbooks.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakePlatform{evidence: map[string]string{}}
	testenv.Worker(t, c, workflows.TaskQueue, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(workflows.Incident, workflow.RegisterOptions{Name: workflows.IncidentWorkflow})
		r.RegisterWorkflowWithOptions(workflows.Drill, workflow.RegisterOptions{Name: workflows.DrillWorkflow})
		r.RegisterActivityWithOptions((&playbooks.Resolver{Set: set}).Resolve, activity.RegisterOptions{Name: workflows.ResolveActivity})
		workerhost.Related(c).Register(r)
		for _, a := range activities.Catalog() {
			if !a.Internal {
				r.RegisterActivityWithOptions(fake.run, activity.RegisterOptions{Name: a.Name})
			}
		}
		r.RegisterActivityWithOptions(fake.append, activity.RegisterOptions{Name: activities.LedgerAppend})
		r.RegisterActivityWithOptions(fake.appendBatch, activity.RegisterOptions{Name: activities.LedgerAppendBatch})
		r.RegisterActivityWithOptions((&drillreport.Activities{Evidence: fake}).Report, activity.RegisterOptions{Name: workflows.DrillReportActivity})
		registerDecisionKeys(r)
	})

	f := drillFile(t, triggerTestDrills)
	if _, err := syncDrills(ctx, c, f, syncOptions{}, io.Discard); err != nil {
		t.Fatalf("sync: %v", err)
	}
	h := c.ScheduleClient().GetHandle(ctx, "drill:trigger-canary")
	t.Cleanup(func() { _ = h.Delete(context.Background()) })
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatalf("trigger: %v", err)
	}
	var run *client.ScheduleWorkflowExecution
	for run == nil {
		desc, err := h.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(desc.Info.RecentActions); n > 0 {
			run = desc.Info.RecentActions[n-1].StartWorkflowResult
		} else if ctx.Err() != nil {
			t.Fatal("the triggered schedule never started a drill")
		} else {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !strings.HasPrefix(run.WorkflowID, "drill:trigger-canary") {
		t.Errorf("drill workflow id %s", run.WorkflowID)
	}
	var rep drillreport.Report
	if err := c.GetWorkflow(ctx, run.WorkflowID, run.FirstExecutionRunID).Get(ctx, &rep); err != nil {
		t.Fatalf("drill: %v", err)
	}
	if !rep.Passed || rep.State != workflows.StateResolved {
		t.Fatalf("drill did not pass: state %s, failures %v, notes %v", rep.State, rep.Failures, rep.Notes)
	}
	if len(rep.AutoApproved) != 2 || rep.AutoApproved[0].StepID != "shutdown" || rep.AutoApproved[1].StepID != "restore" ||
		!rep.AutoApproved[0].Accepted || !rep.AutoApproved[1].Accepted || len(rep.WaitedForPeople) != 0 {
		t.Errorf("approvals %+v, waited %v; want shutdown and restore approved by the drill", rep.AutoApproved, rep.WaitedForPeople)
	}
	if rep.TriggeredBy != "schedule:drill:trigger-canary" || rep.Target != "drill-canary" {
		t.Errorf("report header = %+v", rep)
	}
	for _, p := range rep.Phases {
		if !p.Reached {
			t.Errorf("phase %s not reached", p.Name)
		}
	}
	if len(rep.Objectives) != 3 {
		t.Errorf("objectives = %+v", rep.Objectives)
	}
	// `starter drill run` runs the same drill now and prints its report.
	def, _ := f.Get("trigger-canary")
	var out bytes.Buffer
	if err := runDrillNow(ctx, c, def, "system:cli:test", true, false, &out); err != nil {
		t.Fatalf("drill run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "# Drill trigger-canary: PASSED") || !strings.Contains(out.String(), "| Triggered by | system:cli:test |") {
		t.Errorf("drill run printed:\n%s", out.String())
	}
	out.Reset()
	if err := runDrillNow(ctx, c, def, "system:cli:test", false, false, &out); err != nil || !strings.Contains(out.String(), "drill trigger-canary started: workflow drill:trigger-canary:run-") {
		t.Errorf("drill run --no-wait: %q, %v", out.String(), err)
	}

	fake.mu.Lock()
	defer fake.mu.Unlock()
	md, js := fake.evidence["drill/trigger-canary/report.md"], fake.evidence["drill/trigger-canary/report.json"]
	if !strings.Contains(md, "# Drill trigger-canary: PASSED") || !strings.Contains(js, `"Passed": true`) ||
		rep.MarkdownRef != "evidence://"+rep.IncidentID+"/drill/trigger-canary/report.md" {
		t.Errorf("stored report: md %q…, refs %s %s", md[:min(len(md), 80)], rep.MarkdownRef, rep.JSONRef)
	}
	// The incident acted as a drill, on the target only, and approved the
	// listed steps itself as the drill identity.
	for _, call := range fake.calls {
		if !call.Drill || call.Asset != "drill-canary" || call.DryRun {
			t.Errorf("action %s ran with Drill=%v DryRun=%v on %s", call.StepID, call.Drill, call.DryRun, call.Asset)
		}
	}
	v, err := c.QueryWorkflow(ctx, rep.IncidentWorkflowID, "", workflows.StatusQuery, workflows.StatusQueryInput{})
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.IncidentStatus
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Steps {
		if s.ID == "shutdown" || s.ID == "restore" {
			if s.Approval == nil || len(s.Approval.Approvals) != 1 || s.Approval.Approvals[0].By.Subject != workflows.DrillApproverSubject || s.Approval.Approvals[0].Via != "drill" {
				t.Errorf("step %s approval = %+v, want one approval by %s, given by the drill incident itself", s.ID, s.Approval, workflows.DrillApproverSubject)
			}
		}
	}
}
