//go:build integration

package test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

func containerByName(t *testing.T, st pve.StateSnapshot, name string) pve.ContainerSnapshot {
	t.Helper()
	for _, ct := range st.Containers {
		if ct.Config["hostname"] == name {
			return ct
		}
	}
	t.Fatalf("no container %s in the lab", name)
	return pve.ContainerSnapshot{}
}

// TestContainerCompromiseEndToEnd runs the container-compromise playbook on
// the real dev server against the lab: alert → container isolated and
// snapshotted → remediation waits for approval → a lead approves →
// recovery → post-incident report. It checks the lab's state at each
// point, not only the workflow's result.
func TestContainerCompromiseEndToEnd(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{Plain: os.Getenv("IRU_RECORD_HISTORIES") != ""})
	const asset = "api-gateway"
	// jdoe, the account seen in the container, has a live session.
	gc := gocloak.NewClient(p.Lab.Keycloak.URL())
	jdoeTok, err := gc.Login(context.Background(), keycloak.ConsoleClientID, "", keycloak.Realm, "jdoe", keycloak.UserPassword)
	if err != nil {
		t.Fatal(err)
	}
	stateBefore := p.Lab.PVE.State()
	before := containerByName(t, stateBefore, asset)

	// The intake's inventory located the asset; the pve.* steps act there.
	ref := &activities.AssetRef{Name: asset, Node: before.Node, VMID: before.VMID}
	in := workflows.IncidentInput{
		IncidentID: "INC-E2E-1", Key: "container-compromise:" + asset, Asset: asset, AssetRef: ref, Severity: "critical",
		Playbook: "container-compromise", OpenedBy: "system:intake",
		Alerts: []workflows.Alert{{ID: "a1", Fingerprint: "falco:shell:" + asset, Source: "falco", Rule: "Terminal shell in container",
			Severity: "critical", Asset: asset, AssetRef: ref, Summary: "shell spawned in api-gateway",
			Labels:     map[string]string{"health_url": p.Lab.HealthURL(asset), "username": "jdoe", "realm": keycloak.Realm},
			ObservedAt: time.Now().Add(-2 * time.Second), ReceivedAt: time.Now()}},
	}
	wfID := workflows.IncidentWorkflowID(in.Key)
	start := time.Now()
	run, err := p.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: wfID, TaskQueue: p.TaskQueue}, workflows.IncidentWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}

	// Containment done and remediation waiting for a lead.
	st := testplatform.WaitStep(t, p.Client, wfID, "shutdown", workflows.StepWaitingApproval, 60*time.Second)
	t.Logf("containment done in %s (time to contain %s)", time.Since(start).Round(time.Millisecond), st.Metrics.TimeToContain)
	iso, err := p.Lab.PVE.EffectiveIsolation(before.VMID)
	if err != nil {
		t.Fatal(err)
	}
	if !iso.Isolated || !iso.FirewallIsolated {
		t.Fatalf("container not isolated in the lab: %+v", iso)
	}
	mid := containerByName(t, p.Lab.PVE.State(), asset)
	if !hasSnapshot(mid, "ir-") {
		t.Fatalf("no evidence snapshot: %+v", mid.Snapshots)
	}
	if !strings.Contains(mid.Config["tags"], "quarantine") {
		t.Errorf("container not tagged quarantine: %q", mid.Config["tags"])
	}
	if sess, err := p.Lab.Keycloak.Sessions(keycloak.Realm, "jdoe"); err != nil || len(sess) != 0 {
		t.Errorf("jdoe still has sessions after containment: %v %v", sess, err)
	}
	if _, err := gc.RefreshToken(context.Background(), jdoeTok.RefreshToken, keycloak.ConsoleClientID, "", keycloak.Realm); err == nil {
		t.Error("jdoe's refresh token still works after containment")
	}

	// A responder without the lead role cannot approve; the lead can.
	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "shutdown", testplatform.Alice); err == nil || !strings.Contains(err.Error(), "role") {
		t.Fatalf("alice's approval: err = %v, want a role refusal", err)
	}
	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "shutdown", testplatform.Bob); err != nil {
		t.Fatalf("bob approves shutdown: %v", err)
	}
	testplatform.WaitStep(t, p.Client, wfID, "restore", workflows.StepWaitingApproval, 60*time.Second)
	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "restore", testplatform.Bob); err != nil {
		t.Fatalf("bob approves restore: %v", err)
	}

	var res workflows.IncidentResult
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.State != workflows.StateResolved {
		t.Fatalf("incident ended %s: %s", res.State, res.Reason)
	}

	// The lab at the end: running, isolation lifted, firewall as before,
	// evidence snapshot and forensic backup kept.
	after := containerByName(t, p.Lab.PVE.State(), asset)
	if after.Status != "running" {
		t.Errorf("container %s after recovery, want running", after.Status)
	}
	iso, _ = p.Lab.PVE.EffectiveIsolation(before.VMID)
	if iso.Isolated {
		t.Errorf("isolation not lifted: %+v", iso)
	}
	if !equalJSON(before.Firewall, after.Firewall) {
		t.Errorf("firewall not restored:\nbefore %s\nafter  %s", mustJSON(before.Firewall), mustJSON(after.Firewall))
	}
	if strings.Contains(after.Config["tags"], "quarantine") {
		t.Errorf("quarantine tag left: %q", after.Config["tags"])
	}
	// Restoring a backup replaces the container and its snapshots, as in
	// PVE; the forensic copy of the compromised state is the vzdump backup
	// taken during investigation, which must still be in storage.
	if n := backupsOf(p.Lab.PVE.State(), before.VMID); n <= backupsOf(stateBefore, before.VMID) {
		t.Errorf("no forensic backup kept: %d backups before, %d after", backupsOf(stateBefore, before.VMID), n)
	}

	// Proof: the ledger verifies with its HSM-signed checkpoint, and the
	// report is in the evidence locker.
	rep, err := p.Host.Stores().Ledger.Verify(context.Background(), in.IncidentID, p.Host.Stores().Signer)
	if err != nil || !rep.OK() || rep.Checkpoints == 0 || rep.CheckpointSeq != rep.HeadSeq {
		t.Fatalf("ledger verify: %+v, %v", rep, err)
	}
	objs, err := p.Host.Stores().Evidence.List(context.Background(), in.IncidentID)
	if err != nil {
		t.Fatal(err)
	}
	if !hasObject(objs, "report/report.md") || !hasObject(objs, "report/report.json") {
		t.Fatalf("report not stored; objects: %v", names(objs))
	}
	t.Logf("ledger %d entries (signed up to %d); evidence %d objects", rep.Entries, rep.CheckpointSeq, len(objs))

	// History size, and a recording for the replay test.
	events := historyEvents(t, p.Client, wfID)
	t.Logf("history: %d events", len(events))
	if len(events) > 300 {
		t.Errorf("history has %d events, target ≤ 300", len(events))
	}
	if os.Getenv("IRU_RECORD_HISTORIES") != "" {
		recordHistory(t, p.Client, wfID, "container-compromise.json")
	}
}

func backupsOf(st pve.StateSnapshot, vmid int) int {
	n := 0
	for _, b := range st.Backups {
		if b.VMID == vmid {
			n++
		}
	}
	return n
}

func hasSnapshot(ct pve.ContainerSnapshot, prefix string) bool {
	for _, s := range ct.Snapshots {
		if strings.HasPrefix(s.Name, prefix) {
			return true
		}
	}
	return false
}

func hasObject(objs []evidence.Meta, name string) bool {
	for _, o := range objs {
		if o.Name == name {
			return true
		}
	}
	return false
}

func names(objs []evidence.Meta) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return out
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func equalJSON(a, b any) bool { return mustJSON(a) == mustJSON(b) }

// historyEvents reads the whole history of the workflow's latest run.
func historyEvents(t *testing.T, c client.Client, wfID string) []*historypb.HistoryEvent {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), wfID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// recordHistory writes the workflow's history as JSON (the format of
// `temporal workflow show --output json`) for the replay test.
func recordHistory(t *testing.T, c client.Client, wfID, file string) {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), wfID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist, err := historyFromIterator(it)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "histories", file)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, hist, 0o644); err != nil {
		t.Fatal(err)
	}
	// The workflow id is not in the history; decision statements are bound
	// to it, so the replay needs it to accept the recorded decisions.
	if err := os.WriteFile(strings.TrimSuffix(path, ".json")+".wfid", []byte(wfID+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", path)
}
