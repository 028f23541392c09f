//go:build integration

package proxmox

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/iru-responder/responder/activities"
)

// verifyNow runs the read-back verification of CT 100's isolation as
// pve.isolate does after its changes, from the record in its description.
func verifyNow(t *testing.T, l *labEnv) error {
	t.Helper()
	ctx := context.Background()
	x := l.acts.call(activities.PVEIsolate)
	x.ct = &ctRef{Node: "pve1", VMID: 100, Name: "api-gateway"}
	st, err := x.readState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := x.trustedRecord(ctx, st)
	if err != nil || rec == nil {
		t.Fatalf("record: %v %v", rec, err)
	}
	return x.verifyIsolated(ctx, &isolation{rec: rec})
}

// TestIsolateGroupAttacks isolates a container whose own rules accept
// tcp 443 from anywhere, then attacks the isolation as someone with access
// to the PVE API could: each attack opens the container in the lab's
// evaluation of the firewall, the read-back verification of pve.isolate
// fails on it, and running pve.isolate again closes it.
func TestIsolateGroupAttacks(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	api := l.acts.call("attacker")
	original := l.ct(t, 100)
	in := input(activities.PVEIsolate, "api-gateway", map[string]string{"allow": "10.10.0.0/24"})
	res := mustRun(t, l.acts, in)
	group := res.Outputs["security_group"]
	if !strings.HasPrefix(group, groupPrefix) || len(group) > 18 {
		t.Fatalf("security group %q", group)
	}
	isolated := func(what string) {
		t.Helper()
		iso, err := l.srv.EffectiveIsolation(100)
		if err != nil || !iso.FirewallIsolated || iso.OpenRules != 0 || !slices.Contains(iso.AllowedNetworks, "in:10.10.0.0/24") {
			t.Fatalf("%s: not isolated: %+v %v", what, iso, err)
		}
		if err := verifyNow(t, l); err != nil {
			t.Fatalf("%s: verification fails on an isolated CT: %v", what, err)
		}
	}
	attacked := func(what, want string) {
		t.Helper()
		iso, _ := l.srv.EffectiveIsolation(100)
		if iso.FirewallIsolated || iso.OpenRules == 0 {
			t.Fatalf("%s: the attack did not open the CT in the lab: %+v", what, iso)
		}
		err := verifyNow(t, l)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: verification = %v, want a failure naming %q", what, err, want)
		}
		if typ, fin := errType(t, err); typ != ErrTypeVerify || fin {
			t.Fatalf("%s: error type %s final %v", what, typ, fin)
		}
		mustRun(t, l.acts, in)
		isolated(what + ", isolated again")
	}
	isolated("isolated")
	// The container's own rules are untouched: its ACCEPT tcp 443 from
	// anywhere is still enabled, behind the group rule.
	for _, c := range l.srv.State().Containers {
		if c.VMID == 100 {
			r := c.Firewall.Rules
			if len(r) != 4 || r[0]["type"] != "group" || r[0]["action"] != group || r[1]["dport"] != "443" || r[1]["enable"] != "1" {
				t.Fatalf("rules %v", r)
			}
		}
	}
	gp := groupPath(group)

	// 1. The group's in DROP disabled.
	rules, ok := l.srv.SecurityGroup(group)
	drop := slices.IndexFunc(rules, func(r map[string]string) bool { return r["type"] == "in" && r["action"] == "DROP" })
	if !ok || drop < 0 {
		t.Fatalf("group %s: %v", group, rules)
	}
	if err := api.put(ctx, fmt.Sprintf("%s/%d", gp, drop), map[string]any{"enable": 0}, nil); err != nil {
		t.Fatal(err)
	}
	attacked("group rule disabled", "security group "+group)

	// 2. The group emptied and deleted (while this process remembers it).
	for pos := len(rules) - 1; pos >= 0; pos-- {
		if err := api.del(ctx, fmt.Sprintf("%s/%d", gp, pos), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := api.del(ctx, gp, nil); err != nil {
		t.Fatal(err)
	}
	attacked("group deleted", "security group "+group+" does not exist")

	// 3. The container's group rule deleted.
	if err := api.del(ctx, "/nodes/pve1/lxc/100/firewall/rules/0", nil); err != nil {
		t.Fatal(err)
	}
	attacked("group rule of the CT deleted", "firewall rule 0")

	// 4. An ACCEPT from anywhere put in front of the group rule.
	if err := api.post(ctx, "/nodes/pve1/lxc/100/firewall/rules", map[string]any{"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22", "enable": 1, "pos": 0}, nil); err != nil {
		t.Fatal(err)
	}
	attacked("ACCEPT put first", "firewall rule 0")

	// Un-isolation removes every rule of the incident and restores the
	// rest: the attacker's rule (now behind ours) stays, as theirs.
	mustRun(t, l.acts, input(activities.PVEUnisolate, "api-gateway", nil))
	if err := api.del(ctx, "/nodes/pve1/lxc/100/firewall/rules/0", nil); err != nil {
		t.Fatal(err)
	}
	if got := l.ct(t, 100); got != original {
		t.Fatalf("after unisolate:\n%s\nwant\n%s", got, original)
	}
}

// TestLegacyIsolationRecord: a container isolated by a release before the
// security group (own rules disabled, allow rules added, a record without
// version) is continued without changes and un-isolated exactly.
func TestLegacyIsolationRecord(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	original := l.ct(t, 100)
	in := input(activities.PVEIsolate, "api-gateway", map[string]string{"allow": "10.10.0.0/24"})
	x := l.acts.call(activities.PVEIsolate)
	x.ct = &ctRef{Node: "pve1", VMID: 100, Name: "api-gateway"}
	allow, err := activities.ParseCIDRList("10.10.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	iso, err := x.ensureIsolated(ctx, isolateRequest{incident: in.IncidentID, method: methodFirewall, allow: l.acts.allowList(allow), checkDatacenter: true, legacy: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.verifyIsolated(ctx, iso); err != nil {
		t.Fatal(err)
	}
	if iso.rec.V != 0 || iso.rec.Group != "" || len(iso.rec.Prior.Rules) != 3 {
		t.Fatalf("legacy record %+v", iso.rec)
	}
	if len(l.srv.SecurityGroups()) != 0 {
		t.Fatalf("a legacy isolation made groups: %v", l.srv.SecurityGroups())
	}
	if v, _ := l.srv.EffectiveIsolation(100); !v.FirewallIsolated || v.AcceptRules != 4 {
		t.Fatalf("legacy isolation: %+v", v)
	}
	legacy := l.ct(t, 100)
	if !strings.Contains(legacy, `"enable": "0"`) {
		t.Fatalf("own rules not disabled:\n%s", legacy)
	}
	// The current release continues it as it is: nothing changes.
	l.srv.ResetCalls()
	res := mustRun(t, l.acts, in)
	if got := l.ct(t, 100); got != legacy {
		t.Fatalf("continuing a legacy isolation changed it:\n%s\nwant\n%s", got, legacy)
	}
	if res.Outputs["security_group"] != "" || res.Undo["prior_ref"] != iso.rec.EvidenceRef {
		t.Fatalf("result %+v", res)
	}
	mustRun(t, l.acts, input(activities.PVEUnisolate, "api-gateway", nil))
	if got := l.ct(t, 100); got != original {
		t.Fatalf("after unisolate:\n%s\nwant\n%s", got, original)
	}
}
