//go:build integration

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	goprox "github.com/luthermonson/go-proxmox"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// driftChecks stand in for the controls package's checks (controls.list,
// controls.check): two controls that read the lab through go-proxmox with
// the read-only audit token, as a real check reads Proxmox VE.
type driftChecks struct {
	pve    *goprox.Client
	dc, db string
}

func (d driftChecks) list(_ context.Context, in activities.ControlsListInput) (activities.ControlsListResult, error) {
	all := []activities.ControlSummary{
		{ID: d.dc, Section: "Network Security", Title: "the datacenter firewall is on", Check: "pve.datacenter_firewall", Severity: "high", Playbook: workflows.ControlDriftPlaybook},
		{ID: d.db, Section: "Network Security", Title: "the database accepts postgres from the services only", Check: "pve.container_firewall", Severity: "high", Playbook: workflows.ControlDriftPlaybook},
	}
	out := activities.ControlsListResult{Digest: "sha256:drift-test"}
	for _, c := range all {
		if len(in.IDs) == 0 || slices.Contains(in.IDs, c.ID) {
			out.Controls = append(out.Controls, c)
		}
	}
	return out, nil
}

func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return fmt.Sprint(int64(x))
	}
	return fmt.Sprint(v)
}

func (d driftChecks) check(ctx context.Context, in activities.ControlCheckInput) (activities.ControlCheckResult, error) {
	r := activities.ControlCheckResult{Status: activities.ControlPass, Targets: 1, CheckedAt: time.Now().UTC()}
	switch in.ID {
	case d.dc:
		var opts map[string]any
		if err := d.pve.Get(ctx, "/cluster/firewall/options", &opts); err != nil {
			return r, err
		}
		r.Observed, _ = json.Marshal(map[string]string{"enable": text(opts["enable"])})
		if text(opts["enable"]) != "1" {
			r.Status = activities.ControlFail
			r.Findings = []activities.ControlFinding{{Target: "pve/cluster", Setting: "firewall option enable", Observed: "enable=" + text(opts["enable"]),
				Expected: "enable=1", Fix: activities.PVEFirewallEnable, FixParams: map[string]string{"scope": "datacenter"}}}
		}
	case d.db:
		fw := activities.PVEContainerFirewall{Node: "pve2", VMID: 103, Options: map[string]string{}}
		var opts map[string]any
		var rules []map[string]any
		if err := d.pve.Get(ctx, "/nodes/pve2/lxc/103/firewall/options", &opts); err != nil {
			return r, err
		}
		if err := d.pve.Get(ctx, "/nodes/pve2/lxc/103/firewall/rules", &rules); err != nil {
			return r, err
		}
		for k, v := range opts {
			if k != "digest" {
				fw.Options[k] = text(v)
			}
		}
		for _, rule := range rules {
			m := map[string]string{}
			for k, v := range rule {
				if k != "pos" && k != "digest" && k != "ipversion" {
					m[k] = text(v)
				}
			}
			fw.Rules = append(fw.Rules, m)
		}
		r.Observed, _ = json.Marshal(activities.PVEFirewallObserved{Containers: []activities.PVEContainerFirewall{fw}})
		bad := func(f activities.ControlFinding) {
			r.Status = activities.ControlFail
			f.Target, f.Fix, f.FixParams = "pve/pve2/lxc/103", activities.PVEFirewallRestore, map[string]string{"node": "pve2", "vmid": "103"}
			r.Findings = append(r.Findings, f)
		}
		if fw.Options["policy_in"] != "DROP" {
			bad(activities.ControlFinding{Setting: "firewall option policy_in", Observed: fw.Options["policy_in"], Expected: "DROP"})
		}
		for i, rule := range fw.Rules {
			if rule["enable"] == "1" && rule["type"] == "in" && rule["action"] == "ACCEPT" && rule["dport"] != "5432" {
				bad(activities.ControlFinding{Setting: fmt.Sprintf("firewall rule pos %d", i), Observed: "ACCEPT dport " + rule["dport"] + " from " + rule["source"], Expected: "ACCEPT tcp 5432 from 10.20.20.0/24 only"})
			}
		}
	default:
		return r, activities.NewFinalError(activities.ErrTypeNotFound, "no control "+in.ID, nil)
	}
	return r, nil
}

// driftPlatform is a platform whose worker runs the drift test's checks
// in place of the controls package's.
// Workflow ids are the namespace's: each platform gets its own control
// ids, so its incidents never meet another test's.
func driftPlatform(t *testing.T) (*testplatform.Platform, *goprox.Client, driftChecks) {
	t.Helper()
	p := testplatform.New(t, testplatform.Options{NoWorker: true, Plain: os.Getenv("IRU_RECORD_HISTORIES") != ""})
	audit := goprox.NewClient(p.Lab.PVE.URL(), goprox.WithAPIToken(pve.LabAuditTokenID, pve.LabAuditTokenSecret), goprox.WithHTTPClient(p.Lab.PVE.HTTPClient()))
	suffix := strings.ToLower(p.TaskQueue[len(p.TaskQueue)-8:])
	checks := driftChecks{pve: audit, dc: "net-dc-firewall-" + suffix, db: "net-ct-firewall-database-" + suffix}
	testenv.Worker(t, p.Client, p.TaskQueue, func(r worker.Registry) {
		p.Host.Register(r, p.Client)
		r.RegisterActivityWithOptions(checks.list, activity.RegisterOptions{Name: activities.ControlsList, DisableAlreadyRegisteredCheck: true})
		r.RegisterActivityWithOptions(checks.check, activity.RegisterOptions{Name: activities.ControlsCheck, DisableAlreadyRegisteredCheck: true})
	})
	admin := goprox.NewClient(p.Lab.PVE.URL(), goprox.WithAPIToken(pve.LabResponderTokenID, pve.LabResponderTokenSecret), goprox.WithHTTPClient(p.Lab.PVE.HTTPClient()))
	return p, admin, checks
}

func runControls(t *testing.T, p *testplatform.Platform, ids ...string) workflows.ControlOutcome {
	t.Helper()
	_, o := runControlsID(t, p, ids...)
	return o
}

// runControlsID is runControls that also returns the run's workflow id.
func runControlsID(t *testing.T, p *testplatform.Platform, ids ...string) (string, workflows.ControlOutcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, res, err := schedules.RunControls(ctx, p.Client, p.TaskQueue, workflows.ControlsInput{IDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Controls) != 1 || res.Controls[0].Error != "" {
		t.Fatalf("controls run: %+v", res)
	}
	return id, res.Controls[0]
}

// stepRows returns the ledger's step entries of an incident, by step id.
func stepRows(t *testing.T, p *testplatform.Platform, incident string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range ledgerRows(t, p, incident, "step:") {
		_, step, _ := strings.Cut(e.Target, "/")
		out[step] = string(e.Outcome.Status)
	}
	return out
}

// TestControlDriftEndToEnd: the datacenter firewall is turned off through
// the PVE API (the drift). The Controls workflow finds it, keeps the
// evidence and opens ONE control-drift incident; running it again the
// next day tells the same incident (a repeat of its alert, no second
// incident). Remediation waits for an ir-lead (nothing changes before,
// a responder without the role is refused); once approved the lab's
// datacenter firewall is on again, the re-check passes, the report is
// written and every step that ran is in the ledger.
//
// Then the database's firewall: its passing check is on record; drift
// opens SSH to the world and the inbound policy; the incident restores
// exactly the recorded firewall from that evidence once approved.
func TestControlDriftEndToEnd(t *testing.T) {
	p, admin, d := driftPlatform(t)
	ctx := context.Background()

	if o := runControls(t, p, d.dc); o.Status != activities.ControlPass || o.Incident != "" || o.EvidenceRef == "" {
		t.Fatalf("seeded lab: %+v, want a pass with evidence and no incident", o)
	}
	if err := admin.Put(ctx, "/cluster/firewall/options", map[string]any{"enable": 0}, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	controlsRun, first := runControlsID(t, p, d.dc)
	t.Logf("controls run (check, evidence, incident opened): %s", time.Since(start).Round(time.Millisecond))
	wfID := workflows.IncidentWorkflowID(workflows.ControlDriftKey(workflows.ControlDriftPlaybook, d.dc))
	if first.Status != activities.ControlFail || first.Incident != wfID || !strings.Contains(first.FirstFinding, "enable=0") {
		t.Fatalf("drift: %+v, want a failure opening %s", first, wfID)
	}
	st := testplatform.WaitStep(t, p.Client, wfID, "enable_firewall", workflows.StepWaitingApproval, 60*time.Second)
	if on := p.Lab.PVE.State().DatacenterFirewall["enable"]; on != "0" {
		t.Fatalf("the datacenter firewall changed before any approval: enable=%s", on)
	}
	run1, err := testplatform.FirstRunID(p.Client, wfID)
	if err != nil {
		t.Fatal(err)
	}

	// The next day: still failing, the same incident.
	second := runControls(t, p, d.dc)
	if second.Incident != wfID || second.EvidenceRef == first.EvidenceRef {
		t.Fatalf("second run: %+v", second)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err = testplatform.Status(p.Client, wfID)
		if err == nil && st.AlertsReceived == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.AlertsReceived != 2 || len(st.Alerts) != 1 || st.Alerts[0].Count != 2 {
		t.Fatalf("the incident has %d alerts received, records %+v; want the same drift counted twice", st.AlertsReceived, st.Alerts)
	}
	if run2, _ := testplatform.FirstRunID(p.Client, wfID); run2 != run1 {
		t.Fatalf("a second incident run opened: %s then %s", run1, run2)
	}

	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "enable_firewall", testplatform.Alice); err == nil || !strings.Contains(err.Error(), "role") {
		t.Fatalf("alice's approval: %v, want a role refusal", err)
	}
	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "enable_firewall", testplatform.Bob); err != nil {
		t.Fatalf("bob approves: %v", err)
	}
	approved := time.Now()
	res := waitIncident(t, p, wfID)
	t.Logf("approval to resolved (remediation, re-check, report): %s", time.Since(approved).Round(time.Millisecond))
	if on := p.Lab.PVE.State().DatacenterFirewall["enable"]; on != "1" {
		t.Fatalf("datacenter firewall enable=%s after the remediation", on)
	}
	rows := stepRows(t, p, st.IncidentID)
	for _, s := range res.Steps {
		if (s.ID == "restore_firewall" || s.ID == "disable_direct_grants") && s.Status != workflows.StepSkipped {
			t.Errorf("step %s is %s, want skipped (the finding names another fix)", s.ID, s.Status)
		}
		if s.ID == "recheck" && s.Status != workflows.StepSucceeded {
			t.Errorf("re-check %s: %s", s.Status, s.Error)
		}
		if _, ok := rows[s.ID]; !ok {
			t.Errorf("no ledger entry for step %s (%s)", s.ID, s.Status)
		}
	}
	if len(res.ReportRefs) == 0 {
		t.Error("no report")
	}
	objs, err := p.Host.Stores().Evidence.List(ctx, st.IncidentID)
	if err != nil {
		t.Fatal(err)
	}
	if !hasObject(objs, "report/report.md") || !slices.ContainsFunc(objs, func(o evidenceMeta) bool { return strings.HasPrefix(o.Name, "control/"+d.dc+"/pass/") }) {
		t.Errorf("incident evidence: %v, want the report and the passing re-check", names(objs))
	}

	events := historyEvents(t, p.Client, wfID)
	t.Logf("incident history: %d events; controls run history: %d events", len(events), len(historyEvents(t, p.Client, controlsRun)))
	if len(events) > 300 {
		t.Errorf("incident history has %d events, target ≤ 300", len(events))
	}
	if os.Getenv("IRU_RECORD_HISTORIES") != "" {
		recordHistory(t, p.Client, wfID, "control-drift.json")
		recordHistory(t, p.Client, controlsRun, "controls.json")
	}

	// The database: passing check on record, then drift, then restore.
	before := containerByName(t, p.Lab.PVE.State(), "database").Firewall
	if o := runControls(t, p, d.db); o.Status != activities.ControlPass {
		t.Fatalf("database on the seeded lab: %+v", o)
	}
	if err := admin.Post(ctx, "/nodes/pve2/lxc/103/firewall/rules", map[string]any{"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22", "source": "0.0.0.0/0", "enable": 1, "pos": 0}, nil); err != nil {
		t.Fatal(err)
	}
	if err := admin.Put(ctx, "/nodes/pve2/lxc/103/firewall/options", map[string]any{"policy_in": "ACCEPT"}, nil); err != nil {
		t.Fatal(err)
	}
	o := runControls(t, p, d.db)
	if o.Status != activities.ControlFail || o.Findings != 2 || o.LastPassRef == "" {
		t.Fatalf("database drift: %+v, want two findings and the last pass on record", o)
	}
	testplatform.WaitStep(t, p.Client, o.Incident, "restore_firewall", workflows.StepWaitingApproval, 60*time.Second)
	if equalJSON(containerByName(t, p.Lab.PVE.State(), "database").Firewall, before) {
		t.Fatal("drift undone before any approval")
	}
	if _, err := testplatform.Decide(p.Client, o.Incident, workflows.ApproveUpdate, "restore_firewall", testplatform.Bob); err != nil {
		t.Fatalf("bob approves the restore: %v", err)
	}
	res = waitIncident(t, p, o.Incident)
	if after := containerByName(t, p.Lab.PVE.State(), "database").Firewall; !equalJSON(after, before) {
		t.Fatalf("database firewall not restored:\nbefore %s\nafter  %s", mustJSON(before), mustJSON(after))
	}
	for _, s := range res.Steps {
		if s.ID == "recheck" && s.Status != workflows.StepSucceeded {
			t.Errorf("database re-check %s: %s", s.Status, s.Error)
		}
	}
}

// TestControlDriftDryRun: the control-drift incident as a dry run (what
// `starter preflight` does) plans the remediation, approved, and leaves the
// lab as it is.
func TestControlDriftDryRun(t *testing.T) {
	p, admin, d := driftPlatform(t)
	if err := admin.Put(context.Background(), "/cluster/firewall/options", map[string]any{"enable": 0}, nil); err != nil {
		t.Fatal(err)
	}
	before, err := p.Lab.PVE.State().CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	o := runControls(t, p, d.dc)
	// The daily run opened the real incident; the dry run is its own.
	labels := map[string]string{"fix": activities.PVEFirewallEnable, "fix.scope": "datacenter", "control.evidence": o.EvidenceRef}
	in := workflows.IncidentInput{IncidentID: "INC-DRY-1", Key: "control-drift-dry:" + d.dc, Asset: d.dc, Severity: "high",
		Playbook: workflows.ControlDriftPlaybook, OpenedBy: workflows.ControlsActor, DryRun: true,
		Alerts: []workflows.Alert{{ID: "dry-1", Fingerprint: "control:" + d.dc, Source: "controls", Rule: d.dc, Severity: "high", Asset: d.dc,
			Summary: "datacenter firewall off", Labels: labels, ObservedAt: time.Now(), ReceivedAt: time.Now()}}}
	wfID := workflows.IncidentWorkflowID(in.Key)
	if _, err := p.Client.ExecuteWorkflow(context.Background(), startOptions(wfID, p.TaskQueue), workflows.IncidentWorkflow, in); err != nil {
		t.Fatal(err)
	}
	testplatform.WaitStep(t, p.Client, wfID, "enable_firewall", workflows.StepWaitingApproval, 60*time.Second)
	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "enable_firewall", testplatform.Bob); err != nil {
		t.Fatal(err)
	}
	waitIncident(t, p, wfID)
	st, err := testplatform.Status(p.Client, wfID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Steps {
		if s.ID == "enable_firewall" && (s.Status != workflows.StepSucceeded || len(s.Plan) == 0 || !strings.Contains(strings.Join(s.Plan, " "), "enable=1")) {
			t.Errorf("dry-run remediation: %s, plan %v", s.Status, s.Plan)
		}
	}
	after, err := p.Lab.PVE.State().CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) || p.Lab.PVE.State().DatacenterFirewall["enable"] != "0" {
		t.Fatal("the dry run changed the lab")
	}
}

// evidenceMeta is one object of the locker's manifest.
type evidenceMeta = evidence.Meta

// startOptions start an incident as the tests do.
func startOptions(wfID, queue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: wfID, TaskQueue: queue}
}

// waitIncident waits for the incident's end and fails the test unless it
// resolved.
func waitIncident(t *testing.T, p *testplatform.Platform, wfID string) workflows.IncidentResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var res workflows.IncidentResult
	if err := p.Client.GetWorkflow(ctx, wfID, "").Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.State != workflows.StateResolved {
		b, _ := json.MarshalIndent(res.Steps, "", " ")
		t.Fatalf("incident %s ended %s: %s\n%s", wfID, res.State, res.Reason, b)
	}
	return res
}

// TestControlsSchedule: the daily schedule is created and kept as
// declared (cron 04:00 UTC, the Controls workflow, the worker's queue);
// a run of it (triggered here rather than waiting for 04:00) checks every
// control and opens the drifted one's incident.
func TestControlsSchedule(t *testing.T) {
	p, admin, d := driftPlatform(t)
	ctx := context.Background()
	sc := p.Client.ScheduleClient()
	h := sc.GetHandle(ctx, workflows.ControlsScheduleID)
	_ = h.Delete(ctx) // a worker binary started by another test creates it too
	if change, err := schedules.EnsureControls(ctx, sc, p.TaskQueue); err != nil || change != "created" {
		t.Fatalf("EnsureControls: %s %v", change, err)
	}
	t.Cleanup(func() { _ = h.Delete(context.Background()) })
	if change, err := schedules.EnsureControls(ctx, sc, p.TaskQueue); err != nil || change != "updated" {
		t.Fatalf("EnsureControls again: %s %v", change, err)
	}
	desc, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	act, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	// The server keeps the cron expression as a calendar: 04:00 UTC daily.
	cal := desc.Schedule.Spec.Calendars
	if !ok || act.TaskQueue != p.TaskQueue || fmt.Sprint(act.Workflow) != workflows.ControlsWorkflow || desc.Schedule.Spec.TimeZoneName != "UTC" ||
		len(cal) != 1 || len(cal[0].Hour) != 1 || cal[0].Hour[0].Start != 4 || cal[0].Hour[0].End != 4 || len(cal[0].Minute) != 1 || cal[0].Minute[0].End != 0 {
		t.Fatalf("schedule: action %+v, spec %+v", desc.Schedule.Action, desc.Schedule.Spec)
	}

	if err := admin.Put(ctx, "/cluster/firewall/options", map[string]any{"enable": 0}, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	wfID := workflows.IncidentWorkflowID(workflows.ControlDriftKey(workflows.ControlDriftPlaybook, d.dc))
	testplatform.WaitStep(t, p.Client, wfID, "enable_firewall", workflows.StepWaitingApproval, 60*time.Second)
	other := workflows.IncidentWorkflowID(workflows.ControlDriftKey(workflows.ControlDriftPlaybook, d.db))
	if _, err := p.Client.DescribeWorkflow(ctx, other, ""); err == nil {
		t.Errorf("the passing control %s opened an incident", d.db)
	}
}

// TestRealCheckDriftRestored runs the worker's own controls.check (package
// activities/controls, a controls file of the guide's ingress control) end
// to end: the seeded gateway passes; drift opens SSH to the world on it
// through the PVE API; the real check fails naming that rule, the
// control-drift incident restores the gateway's firewall from the check's
// last passing evidence once an ir-lead approves, and the re-check by the
// same real check passes.
func TestRealCheckDriftRestored(t *testing.T) {
	// Workflow ids are the namespace's: a control id of its own keeps this
	// test's incident apart from other tests'.
	id := "net-ingress-" + uuid.NewString()[:8]
	file := filepath.Join(t.TempDir(), "controls.yaml")
	doc := `controls:
  - id: ` + id + `
    section: "1. Network Security: Firewall Rules (Ingress)"
    title: The DMZ accepts only 443, 8545 and 5000
    check: pve.ingress
    severity: high
    params:
      ports: [443, 8545, 5000]
      allowed_sources: ["0.0.0.0/0", "::/0"]
    targets: ["tag:dmz"]
`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testplatform.New(t, testplatform.Options{Env: []string{"IRU_CONTROLS_FILE=" + file}})
	admin := goprox.NewClient(p.Lab.PVE.URL(), goprox.WithAPIToken(pve.LabResponderTokenID, pve.LabResponderTokenSecret), goprox.WithHTTPClient(p.Lab.PVE.HTTPClient()))
	ctx := context.Background()

	gw := containerByName(t, p.Lab.PVE.State(), "api-gateway")
	before := gw.Firewall
	if o := runControls(t, p, id); o.Status != activities.ControlPass || o.EvidenceRef == "" {
		t.Fatalf("seeded gateway: %+v, want a pass with evidence", o)
	}
	rules := fmt.Sprintf("/nodes/%s/lxc/%d/firewall/rules", gw.Node, gw.VMID)
	if err := admin.Post(ctx, rules, map[string]any{"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22", "source": "0.0.0.0/0", "enable": 1, "pos": 0}, nil); err != nil {
		t.Fatal(err)
	}
	o := runControls(t, p, id)
	if o.Status != activities.ControlFail || !strings.Contains(o.FirstFinding, "dport 22") || o.LastPassRef == "" || o.Incident == "" {
		t.Fatalf("drift: %+v, want a failure naming dport 22 with the last pass on record", o)
	}
	testplatform.WaitStep(t, p.Client, o.Incident, "restore_firewall", workflows.StepWaitingApproval, 60*time.Second)
	if equalJSON(containerByName(t, p.Lab.PVE.State(), "api-gateway").Firewall, before) {
		t.Fatal("drift undone before any approval")
	}
	if _, err := testplatform.Decide(p.Client, o.Incident, workflows.ApproveUpdate, "restore_firewall", testplatform.Bob); err != nil {
		t.Fatalf("bob approves the restore: %v", err)
	}
	res := waitIncident(t, p, o.Incident)
	if after := containerByName(t, p.Lab.PVE.State(), "api-gateway").Firewall; !equalJSON(after, before) {
		t.Fatalf("gateway firewall not restored:\nbefore %s\nafter  %s", mustJSON(before), mustJSON(after))
	}
	for _, s := range res.Steps {
		if s.ID == "recheck" && s.Status != workflows.StepSucceeded {
			t.Errorf("re-check by the real check: %s %s", s.Status, s.Error)
		}
	}
	if again := runControls(t, p, id); again.Status != activities.ControlPass {
		t.Errorf("after the restore: %+v, want a pass", again)
	}
}
