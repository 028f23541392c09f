package platform

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/report"
)

// appendAll appends ins through the activity, as the workflow's ledger
// writer does, numbering them from 1 and spacing them a second apart from
// t0, and returns the stored entries.
func appendAll(t *testing.T, ins []activities.LedgerAppendInput, t0 time.Time) []ledger.Entry {
	t.Helper()
	ctx := context.Background()
	st := sqliteStore(t)
	a := &Activities{Ledger: ledger.New(st, nil)}
	for i, in := range ins {
		in.IncidentID, in.Seq, in.At = "INC-1", int64(i+1), t0.Add(time.Duration(i)*time.Second)
		if _, err := a.LedgerAppend(ctx, in); err != nil {
			t.Fatalf("append %d (%s): %v", i+1, in.Kind, err)
		}
	}
	var out []ledger.Entry
	if err := st.Entries(ctx, "INC-1", func(e ledger.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReportFromLedgerRecords appends an incident's entries through the
// append activity and builds the report's account of it from the stored
// records alone: opening, alerts and counts, steps with timings, params,
// outputs, summaries, errors and decisions, timeline and response times.
// Actions return references to secrets, never secrets, so the record holds
// no more than the workflow's state did.
func TestReportFromLedgerRecords(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	plan := []activities.LedgerPlannedStep{{ID: "resolve", Phase: "detection", Action: activities.PVEResolveAsset},
		{ID: "snapshot", Phase: "containment", Action: activities.PVESnapshot}, {ID: "isolate", Phase: "containment", Action: activities.PVEIsolate},
		{ID: "restore", Phase: "recovery", Action: activities.PVERestore}, {ID: "report", Phase: "post_incident", Action: activities.ReportGenerate}}
	ins := []activities.LedgerAppendInput{
		/* 1 @0s */ {Kind: "incident_opened", Actor: "workflow", What: "incident opened", Opening: &activities.LedgerOpening{Playbook: "container-compromise",
			PlaybookVersion: "3", Asset: "web-1", Severity: "high", Steps: plan}},
		/* 2 @1s */ {Kind: "alert", Actor: "workflow", What: "1 new alert(s)", Alerts: []activities.LedgerAlert{{Fingerprint: "fp1", Source: "falco",
			Rule: "shell in container", Severity: "high", Count: 1, ObservedAt: t0.Add(-3 * time.Second), ReceivedAt: t0}}},
		/* 3 @2s */ {Kind: "step", Actor: "workflow", Phase: "detection", StepID: "resolve", Action: activities.PVEResolveAsset, Outcome: "succeeded",
			Reason: "found ct 101", StartedAt: t0.Add(time.Second), Outputs: map[string]string{"vmid": "101"}, What: "ran resolve"},
		/* 4 @3s */ {Kind: "step", Actor: "workflow", Phase: "containment", StepID: "snapshot", Action: activities.PVESnapshot, Outcome: "succeeded",
			Reason: "snapshot taken", EvidenceRefs: []string{"ev-1"}, Params: map[string]string{"name": "iru-INC-1"}},
		/* 5 @4s */ {Kind: "approval_requested", Actor: "workflow", Phase: "containment", StepID: "isolate", Action: activities.PVEIsolate},
		/* 6 @5s */ {Kind: "approval", Actor: "keycloak:iru/alice-id", ActorName: "alice", SourceIP: "10.0.0.1", Phase: "containment", StepID: "isolate",
			Action: activities.PVEIsolate, Outcome: "approved", Approvals: 1, Quorum: 1, Reason: "go ahead", What: "approved isolate (1/1)"},
		/* 7 @6s */ {Kind: "step", Actor: "workflow", Phase: "containment", StepID: "isolate", Action: activities.PVEIsolate, Outcome: "succeeded",
			Reason: "isolated", StartedAt: t0.Add(5 * time.Second), Compensation: "registered"},
		/* 8 @7s */ {Kind: "alert", Actor: "workflow", Alerts: []activities.LedgerAlert{{Fingerprint: "fp1", Count: 4}}},
		/* 9 @8s */ {Kind: "step", Actor: "workflow", Phase: "recovery", StepID: "restore", Action: activities.PVERestore, Outcome: "failed",
			Status: activities.LedgerFailed, Reason: "restore failed: task UPID:pve1:0001 ended with an error"},
	}
	entries := appendAll(t, ins, t0)
	inc, err := report.FromLedger(entries)
	if err != nil {
		t.Fatal(err)
	}
	inc.MarkRunning("report", t0.Add(time.Minute))
	if inc.ID != "INC-1" || inc.Playbook != "container-compromise" || inc.PlaybookVersion != "3" || inc.Asset != "web-1" ||
		inc.State != report.StateOpen || !inc.OpenedAt.Equal(t0) {
		t.Fatalf("incident = %+v", inc)
	}
	if len(inc.Alerts) != 1 || inc.Alerts[0].Count != 4 || inc.Alerts[0].Rule != "shell in container" ||
		!inc.Alerts[0].FirstSeen.Equal(t0.Add(time.Second)) || !inc.Alerts[0].LastSeen.Equal(t0.Add(7*time.Second)) {
		t.Errorf("alerts = %+v", inc.Alerts)
	}
	want := map[string]string{"resolve": "succeeded", "snapshot": "succeeded", "isolate": "succeeded", "restore": "failed", "report": "running"}
	if len(inc.Steps) != len(want) {
		t.Fatalf("%d steps, want %d: %+v", len(inc.Steps), len(want), inc.Steps)
	}
	for _, s := range inc.Steps {
		if s.Status != want[s.ID] {
			t.Errorf("step %s = %s, want %s", s.ID, s.Status, want[s.ID])
		}
	}
	iso, restore := inc.Steps[2], inc.Steps[3]
	if !iso.StartedAt.Equal(t0.Add(5*time.Second)) || !iso.FinishedAt.Equal(t0.Add(6*time.Second)) || iso.Summary != "isolated" || iso.Compensation != "registered" {
		t.Errorf("isolate = %+v", iso)
	}
	if d := iso.Decisions; len(d) != 1 || d[0].By != "alice" || d[0].SourceIP != "10.0.0.1" || d[0].Reason != "go ahead" || d[0].Decision != "approved" {
		t.Errorf("isolate decisions = %+v", d)
	}
	if restore.Error == "" || restore.Summary != "" || !strings.Contains(restore.Error, "restore failed") {
		t.Errorf("restore = %+v", restore)
	}
	if inc.Steps[0].Outputs["vmid"] != "101" || inc.Steps[1].EvidenceRefs[0] != "ev-1" || inc.Steps[1].Params["name"] != "iru-INC-1" {
		t.Errorf("outputs, evidence or params lost: %+v", inc.Steps[:2])
	}
	if len(inc.Timeline) != 4 || inc.Timeline[3].Actor != "alice" || inc.Timeline[3].What != "approved isolate (1/1)" {
		t.Errorf("timeline = %+v", inc.Timeline)
	}
	// Acknowledged by alice's approval at 5s; contained when the isolation
	// (the containing action, not the snapshot) finished at 6s; not
	// recovered, a recovery step failed.
	if inc.TimeToAcknowledge != 5*time.Second || inc.TimeToContain != 6*time.Second || inc.TimeToRecover != 0 {
		t.Errorf("metrics = %v, %v, %v; want 5s, 6s, 0", inc.TimeToAcknowledge, inc.TimeToContain, inc.TimeToRecover)
	}
	r := report.Build(report.Input{Incident: inc, GeneratedAt: t0.Add(time.Minute)})
	md := string(report.Markdown(r))
	for _, s := range []string{"shell in container", "| Time to contain | 6s |", "| isolate | approved | alice |"} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
}
