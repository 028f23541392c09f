//go:build integration

package proxmox

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
)

// ReadEvidence lets pve.firewall_restore read the in-memory store back,
// as it reads the locker.
func (m *memEvidence) ReadEvidence(_ context.Context, ref, _, _ string) ([]byte, error) {
	if b := m.get(ref); b != nil {
		return b, nil
	}
	return nil, activities.NewFinalError(activities.ErrTypeNotFound, "no evidence "+ref, nil)
}

// labPut changes the lab through the PVE API, as drift would (go-proxmox,
// the responder token).
func labPut(t *testing.T, l *labEnv, path string, body map[string]any) {
	t.Helper()
	if err := l.acts.client.Put(context.Background(), path, body, nil); err != nil {
		t.Fatalf("PUT %s: %v", path, err)
	}
}

func labPost(t *testing.T, l *labEnv, path string, body map[string]any) {
	t.Helper()
	if err := l.acts.client.Post(context.Background(), path, body, nil); err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
}

// observed reads a container's firewall through the API as a check would
// record it ([activities.PVEContainerFirewall]).
func observed(t *testing.T, l *labEnv, node string, vmid int) activities.PVEContainerFirewall {
	t.Helper()
	x := l.acts.call("test")
	x.ct = &ctRef{Node: node, VMID: vmid}
	st, err := x.readStateParts(context.Background(), firewallParts)
	if err != nil {
		t.Fatal(err)
	}
	return activities.PVEContainerFirewall{Node: node, VMID: vmid, Options: st.options, Rules: st.rules}
}

// passingEvidence stores a passing result of control id recording fw, as
// the Controls workflow keeps it, and returns its reference.
func passingEvidence(t *testing.T, l *labEnv, id, status string, fw ...activities.PVEContainerFirewall) string {
	t.Helper()
	obs, _ := json.Marshal(activities.PVEFirewallObserved{Containers: fw})
	doc, _ := json.Marshal(activities.NewControlEvidence(activities.ControlCheckResult{
		Control: activities.ControlSummary{ID: id}, Status: status, Targets: len(fw), Observed: obs, CheckedAt: time.Now()}, "test"))
	ref, err := l.ev.PutEvidence(context.Background(), activities.EvidenceItem{IncidentID: activities.ControlEvidenceIncident(id),
		Name: activities.ControlEvidenceName(id, status, time.Now()), Body: bytes.NewReader(doc)})
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// fixEvidence stores a failing result of control id whose finding names
// action with fixParams as its fix, and returns its reference.
func fixEvidence(t *testing.T, l *labEnv, id, action string, fixParams map[string]string) string {
	t.Helper()
	doc, _ := json.Marshal(activities.NewControlEvidence(activities.ControlCheckResult{
		Control: activities.ControlSummary{ID: id}, Status: activities.ControlFail, Targets: 1, CheckedAt: time.Now(),
		Findings: []activities.ControlFinding{{Target: "pve", Setting: "enable", Observed: "0", Expected: "1", Fix: action, FixParams: fixParams}},
	}, "test"))
	ref, err := l.ev.PutEvidence(context.Background(), activities.EvidenceItem{IncidentID: activities.ControlEvidenceIncident(id),
		Name: activities.ControlEvidenceName(id, activities.ControlFail, time.Now()), Body: bytes.NewReader(doc)})
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestFirewallEnableDatacenter: drift turns the datacenter firewall off
// through the API; a dry run plans enable=1 and leaves the lab as it is;
// the action turns it on (lab state), records the prior value, and a
// second run changes nothing. A drill may not touch the datacenter.
func TestFirewallEnableDatacenter(t *testing.T) {
	l := newLab(t)
	labPut(t, l, dcOptionsPath, map[string]any{"enable": 0})
	if on := l.srv.State().DatacenterFirewall["enable"]; on != "0" {
		t.Fatalf("drift not applied: enable=%q", on)
	}
	before := l.state(t)
	ev := fixEvidence(t, l, "net-dc-firewall", activities.PVEFirewallEnable, map[string]string{"scope": "datacenter"})
	in := input(activities.PVEFirewallEnable, "", map[string]string{"scope": "datacenter", "evidence": ev})
	dry := in
	dry.DryRun = true
	res := mustRun(t, l.acts, dry)
	if len(res.Plan) != 1 || !contains(res.Plan[0], "enable=1") || res.Outputs["changed"] != "true" {
		t.Errorf("dry run: %+v", res)
	}
	if after := l.state(t); after != before {
		t.Fatal("the dry run changed the lab")
	}
	res = mustRun(t, l.acts, in)
	if on := l.srv.State().DatacenterFirewall["enable"]; on != "1" {
		t.Fatalf("datacenter firewall enable=%q after the action", on)
	}
	if res.Outputs["changed"] != "true" || res.Undo["prior_enable"] != "0" || res.Undo["scope"] != "datacenter" {
		t.Errorf("result %+v", res)
	}
	again := l.state(t)
	if res := mustRun(t, l.acts, in); res.Outputs["changed"] != "false" || l.state(t) != again {
		t.Errorf("second run: %+v (lab changed: %v)", res, l.state(t) != again)
	}
	drill := in
	drill.Drill = true
	_, err := run(t, l.acts, drill)
	if typ, final := errType(t, err); typ != activities.ErrTypePrecondition || !final {
		t.Errorf("drill: %v", err)
	}

	// The attack: an incident whose labels name another target than the
	// check found (here a container, with the datacenter's evidence), or
	// no control evidence at all, is refused before any change.
	labPut(t, l, "/nodes/pve1/lxc/101/firewall/options", map[string]any{"enable": 0})
	drifted := l.state(t)
	for name, p := range map[string]map[string]string{
		"another target":         {"scope": "container", "node": "pve1", "vmid": "101", "evidence": ev},
		"a passing result":       {"scope": "datacenter", "evidence": passingEvidence(t, l, "net-dc-firewall", activities.ControlPass)},
		"an incident's evidence": {"scope": "datacenter", "evidence": strings.Replace(ev, "control-net-dc-firewall", "INC-42", 1)},
	} {
		_, err := run(t, l.acts, input(activities.PVEFirewallEnable, "", p))
		if typ, final := errType(t, err); (typ != activities.ErrTypePrecondition && typ != activities.ErrTypeBadParams) || !final {
			t.Errorf("%s: %v, want a final refusal", name, err)
		}
	}
	if l.state(t) != drifted {
		t.Error("a refused step changed the lab")
	}
}

// TestFirewallEnableContainer: a container's firewall turned off comes
// back on; node and vmid are checked before they reach an API path.
func TestFirewallEnableContainer(t *testing.T) {
	l := newLab(t)
	labPut(t, l, "/nodes/pve1/lxc/101/firewall/options", map[string]any{"enable": 0})
	ct := map[string]string{"scope": "container", "node": "pve1", "vmid": "101"}
	res := mustRun(t, l.acts, input(activities.PVEFirewallEnable, "", map[string]string{"scope": "container", "node": "pve1", "vmid": "101",
		"evidence": fixEvidence(t, l, "net-ct-101", activities.PVEFirewallEnable, ct)}))
	if res.Outputs["changed"] != "true" || res.Undo["vmid"] != "101" {
		t.Errorf("result %+v", res)
	}
	if got := observed(t, l, "pve1", 101).Options["enable"]; got != "1" {
		t.Errorf("CT 101 firewall enable=%q", got)
	}
	for _, p := range []map[string]string{
		{"scope": "container", "node": "pve1/lxc/100/config?", "vmid": "101"},
		{"scope": "container", "node": "pve1", "vmid": "7"},
		{"scope": "container", "node": "pve1"},
		{"scope": "datacenter", "node": "pve1", "vmid": "101"},
	} {
		// Even a check that named such a target (evidence saying so)
		// does not get it into an API path.
		fix := map[string]string{}
		for k, v := range p {
			fix[k] = v
		}
		p["evidence"] = fixEvidence(t, l, "net-ct-bad", activities.PVEFirewallEnable, fix)
		_, err := run(t, l.acts, input(activities.PVEFirewallEnable, "", p))
		if typ, final := errType(t, err); typ != activities.ErrTypeBadParams || !final {
			t.Errorf("params %v: %v, want a final BadParams", p, err)
		}
	}
}

// TestFirewallRestore: the control's last passing check recorded the
// database's firewall; drift opens SSH to the world and the inbound
// policy. A dry run plans the restore and changes nothing; the restore
// brings back exactly the recorded firewall (lab state), keeps the
// drifted state as evidence first, and a second run changes nothing.
// Evidence that is not a passing result of a control, or that does not
// record the container, is refused before any change.
func TestFirewallRestore(t *testing.T) {
	l := newLab(t)
	const node, vmid = "pve2", 103
	good := observed(t, l, node, vmid)
	want := l.ct(t, vmid)
	ref := passingEvidence(t, l, "net-ct-firewall", activities.ControlPass, good)

	fwPath := "/nodes/pve2/lxc/103/firewall"
	labPost(t, l, fwPath+"/rules", map[string]any{"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22", "source": "0.0.0.0/0", "enable": 1, "pos": 0, "comment": "debug"})
	labPut(t, l, fwPath+"/options", map[string]any{"policy_in": "ACCEPT"})
	drifted := l.state(t)
	if l.ct(t, vmid) == want {
		t.Fatal("drift not applied")
	}

	in := input(activities.PVEFirewallRestore, "", map[string]string{"node": node, "vmid": "103", "evidence": ref})
	dry := in
	dry.DryRun = true
	res := mustRun(t, l.acts, dry)
	plan := strings.Join(res.Plan, "\n")
	if !contains(plan, "policy_in=DROP") || !contains(plan, "delete firewall rule 0") {
		t.Errorf("dry-run plan:\n%s", plan)
	}
	if l.state(t) != drifted {
		t.Fatal("the dry run changed the lab")
	}

	res = mustRun(t, l.acts, in)
	if got := l.ct(t, vmid); got != want {
		t.Fatalf("firewall not restored:\nwant %s\ngot  %s", want, got)
	}
	prior := string(l.ev.get(res.Outputs["prior_ref"]))
	if res.Outputs["changed"] != "true" || res.Undo["prior_ref"] == "" || !contains(prior, `"dport": "22"`) {
		t.Errorf("result %+v; prior state %s", res, prior)
	}
	if res := mustRun(t, l.acts, in); res.Outputs["changed"] != "false" || l.ct(t, vmid) != want {
		t.Errorf("second run: %+v", res)
	}

	// Refusals, each before any change.
	labPut(t, l, fwPath+"/options", map[string]any{"policy_in": "ACCEPT"})
	drifted = l.state(t)
	other := good
	other.VMID = 101
	bad := map[string]struct {
		evidence string
		typ      string
	}{
		"a failing result":                {passingEvidence(t, l, "net-ct-firewall", activities.ControlFail, good), activities.ErrTypePrecondition},
		"another container's":             {passingEvidence(t, l, "net-ct-firewall2", activities.ControlPass, other), activities.ErrTypeNotFound},
		"not a control's":                 {strings.Replace(ref, "control-net-ct-firewall", "INC-42", 1), activities.ErrTypeBadParams},
		"not in the locker":               {"evidence://control-x/sha256:" + strings.Repeat("0", 64), activities.ErrTypeNotFound},
		"another control's, renamespaced": {strings.Replace(ref, "control-net-ct-firewall", "control-other", 1), activities.ErrTypeNotFound},
	}
	for name, b := range bad {
		_, err := run(t, l.acts, input(activities.PVEFirewallRestore, "", map[string]string{"node": node, "vmid": "103", "evidence": b.evidence}))
		if typ, final := errType(t, err); typ != b.typ || !final {
			t.Errorf("%s: %v, want a final %s", name, err, b.typ)
		}
	}
	if l.state(t) != drifted {
		t.Error("a refused restore changed the lab")
	}

	// A quarantined container keeps its isolation.
	mustRun(t, l.acts, input(activities.PVEIsolate, "database", nil))
	_, err := run(t, l.acts, in)
	if typ, final := errType(t, err); typ != activities.ErrTypeConflict || !final {
		t.Errorf("restore of a quarantined container: %v, want a final Conflict", err)
	}
}

// TestFirewallStateIsRestorable: the container firewall checks record
// [Activities.ReadFirewallState] as their evidence; read back in the shape
// pve.firewall_restore reads ([activities.PVEFirewallObserved]), each
// container's options and rules are exactly what the restore compares with
// the live state, so a real check's passing result can be restored from.
func TestFirewallStateIsRestorable(t *testing.T) {
	l := newLab(t)
	st, err := l.acts.ReadFirewallState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var obs activities.PVEFirewallObserved
	if err := json.Unmarshal(b, &obs); err != nil {
		t.Fatalf("a check's evidence does not decode as restore reads it: %v", err)
	}
	if len(obs.Containers) == 0 || len(obs.Containers) != len(st.Containers) {
		t.Fatalf("%d containers decoded, %d read", len(obs.Containers), len(st.Containers))
	}
	rules := 0
	for _, ct := range st.Containers {
		got, ok := obs.Container(ct.Node, ct.VMID)
		if !ok {
			t.Fatalf("CT %d on %s missing from the decoded evidence", ct.VMID, ct.Node)
		}
		want := observed(t, l, ct.Node, ct.VMID)
		if !sameRules(got.Rules, want.Rules) || len(got.Options) != len(want.Options) {
			t.Errorf("CT %d: evidence %+v, live %+v", ct.VMID, got, want)
		}
		for k, v := range want.Options {
			if got.Options[k] != v {
				t.Errorf("CT %d: option %s = %q in the evidence, %q live", ct.VMID, k, got.Options[k], v)
			}
		}
		rules += len(got.Rules)
	}
	if rules == 0 {
		t.Fatal("the lab's containers have no firewall rules: nothing was compared")
	}
}
