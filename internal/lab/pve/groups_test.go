package pve

import (
	"slices"
	"strings"
	"testing"
)

// TestSecurityGroups drives /cluster/firewall/groups as PVE 9.1 answers
// it, and checks that the lab's isolation view evaluates a group rule as
// pve-firewall does: the group's rules in its place, first match wins.
func TestSecurityGroups(t *testing.T) {
	s := startSim(t, Options{})
	c := responder(s)
	ctx := testCtx(t)
	const g = "iru-q-test"
	grp := "/cluster/firewall/groups/" + g
	var rules []map[string]any
	if err := c.Get(ctx, grp, &rules); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("missing group: %v", err)
	}
	if err := c.Post(ctx, "/cluster/firewall/groups", map[string]any{"group": g, "comment": "test"}, nil); err != nil {
		t.Fatal(err)
	}
	err := c.Post(ctx, "/cluster/firewall/groups", map[string]any{"group": g}, nil)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create: %v", err)
	}
	if err := c.Post(ctx, "/cluster/firewall/groups", map[string]any{"group": "bad name!"}, nil); err == nil {
		t.Fatal("a group name outside the schema's pattern was accepted")
	}
	var list []map[string]any
	if err := c.Get(ctx, "/cluster/firewall/groups", &list); err != nil || len(list) != 1 || list[0]["group"] != g || list[0]["comment"] != "test" || list[0]["digest"] == "" {
		t.Fatalf("list = %v, %v", list, err)
	}
	// Built bottom-up at position 0 (PVE inserts new rules at 0).
	for _, r := range []map[string]any{
		{"type": "out", "action": "DROP", "enable": 1},
		{"type": "in", "action": "DROP", "enable": 1},
		{"type": "out", "action": "ACCEPT", "dest": "10.10.0.0/24", "enable": 1},
		{"type": "in", "action": "ACCEPT", "source": "10.10.0.0/24", "enable": 1},
	} {
		r["pos"] = 0
		if err := c.Post(ctx, grp, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Post(ctx, grp, map[string]any{"type": "group", "action": "other", "enable": 1}, nil); err == nil || !strings.Contains(err.Error(), "security groups not allowed") {
		t.Fatalf("group inside a group: %v", err)
	}
	if err := c.Get(ctx, grp, &rules); err != nil || len(rules) != 4 || rules[0]["source"] != "10.10.0.0/24" || rules[3]["action"] != "DROP" || rules[3]["pos"] != float64(3) {
		t.Fatalf("group rules = %v, %v", rules, err)
	}

	// CT 100 has an own ACCEPT tcp 443 from anywhere and policy_out ACCEPT.
	before, _ := s.EffectiveIsolation(100)
	if before.FirewallIsolated || before.OpenRules != 1 {
		t.Fatalf("CT 100 before: %+v", before)
	}
	if err := c.Post(ctx, "/nodes/pve1/lxc/100/firewall/rules", map[string]any{"type": "group", "action": g, "enable": 1, "pos": 0}, nil); err != nil {
		t.Fatal(err)
	}
	iso, _ := s.EffectiveIsolation(100)
	if !iso.FirewallIsolated || !iso.InCut || !iso.OutCut || iso.OpenRules != 0 || iso.AcceptRules != 2 ||
		!slices.Equal(iso.AllowedNetworks, []string{"in:10.10.0.0/24", "out:10.10.0.0/24"}) || !slices.Equal(iso.SecurityGroups, []string{g}) {
		t.Fatalf("CT 100 behind the group: %+v", iso)
	}

	// Attacks: each must open the CT again in the lab's evaluation.
	if err := c.Delete(ctx, grp, nil); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("deleting a group with rules: %v", err)
	}
	if err := c.Put(ctx, grp+"/2", map[string]any{"enable": 0}, nil); err != nil {
		t.Fatal(err)
	}
	if iso, _ := s.EffectiveIsolation(100); iso.FirewallIsolated || iso.InCut || iso.OpenRules != 1 {
		t.Fatalf("group's in DROP disabled: %+v", iso)
	}
	if err := c.Put(ctx, grp+"/2", map[string]any{"enable": 1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "/nodes/pve1/lxc/100/firewall/rules/0", map[string]any{"moveto": 4}, nil); err != nil {
		t.Fatal(err)
	}
	if iso, _ := s.EffectiveIsolation(100); iso.FirewallIsolated || iso.OpenRules != 1 {
		t.Fatalf("group rule moved below the CT's ACCEPT rules: %+v", iso)
	}
	if err := c.Put(ctx, "/nodes/pve1/lxc/100/firewall/rules/3", map[string]any{"moveto": 0}, nil); err != nil {
		t.Fatal(err)
	}
	if iso, _ := s.EffectiveIsolation(100); !iso.FirewallIsolated {
		t.Fatalf("group rule moved back: %+v", iso)
	}
	for pos := 3; pos >= 0; pos-- {
		if err := c.Delete(ctx, grp+"/"+string(rune('0'+pos)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(ctx, grp, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.SecurityGroup(g); ok {
		t.Fatal("group still there")
	}
	// The CT's rule still names the group; a missing group applies nothing.
	if iso, _ := s.EffectiveIsolation(100); iso.FirewallIsolated || iso.OpenRules != 1 || !slices.Equal(iso.SecurityGroups, []string{g}) {
		t.Fatalf("group deleted: %+v", iso)
	}
}
