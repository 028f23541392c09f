//go:build integration

package proxmox

import (
	"testing"

	"github.com/iru-responder/responder/activities"
)

// maxIsolateCalls bounds the API calls of one fresh firewall isolation of
// a container resolved by the intake, with own rules and an allow list,
// once the process knows the quarantine security group: 3 reads (config,
// firewall options, datacenter firewall), the config update with the
// record, 2 firewall changes (the group rule, the options) and 2 reads
// back (rules, group). Releases before the security group made 11.
const maxIsolateCalls = 8

// maxFirstIsolateCalls bounds the first isolation with an allow list on a
// cluster that has no group for it yet: the group is read with the first
// reads, read again once this isolation holds the process's lock on
// building groups, created (1 + 4 rules for one network) and read back.
const maxFirstIsolateCalls = maxIsolateCalls + 8

// TestIsolateCalls counts, in the lab, the API calls of an isolation as
// the incident workflow runs it (the asset resolved at intake) and checks
// which routes they went to.
func TestIsolateCalls(t *testing.T) {
	l := newLab(t, withInventory(inventory100(t, 3)), withConfig(func(c *Config) { c.AllowCIDRs = []string{"10.10.0.0/24"} }))
	isolate := func(i int) activities.ActionInput {
		in := input(activities.PVEIsolate, "bench-"+string(rune('0'+i)), map[string]string{"allow": "10.10.0.0/24"})
		in.Resolved = &activities.AssetRef{Name: in.Asset, Node: []string{"pve1", "pve2"}[i%2], VMID: 1000 + i}
		return in
	}
	ct := "/nodes/{node}/lxc/{vmid}"
	grp := "/cluster/firewall/groups"

	// The first isolation creates the group.
	l.srv.ResetCalls()
	mustRun(t, l.acts, isolate(0))
	first := l.srv.Calls()
	t.Logf("first isolation (group created): %d API calls: %v", first.Total(), first)
	if n := first.Total(); n > maxFirstIsolateCalls {
		t.Errorf("first isolate made %d API calls, want at most %d", n, maxFirstIsolateCalls)
	}
	if first["POST "+grp] != 1 || first["POST "+grp+"/{group}"] != 4 {
		t.Errorf("group not created with its 4 rules: %v", first)
	}

	// A fresh isolation of another container.
	in := isolate(1)
	l.srv.ResetCalls()
	mustRun(t, l.acts, in)
	calls := l.srv.Calls()
	t.Logf("isolate: %d API calls: %v", calls.Total(), calls)
	if n := calls.Total(); n > maxIsolateCalls {
		t.Errorf("isolate made %d API calls, want at most %d", n, maxIsolateCalls)
	}
	for route, want := range map[string]int{
		"GET " + ct + "/config":               1, // the intake's resolution is checked on the state read
		"PUT " + ct + "/config":               1,
		"GET /cluster/resources":              0, // no cluster-wide lookup
		"GET /cluster/firewall/options":       1,
		"GET " + ct + "/firewall/options":     1,
		"PUT " + ct + "/firewall/options":     1,
		"GET " + ct + "/firewall/rules":       1, // read back only
		"POST " + ct + "/firewall/rules":      1, // the group rule
		"PUT " + ct + "/firewall/rules/{pos}": 0, // the container's own rules are not touched
		"GET " + grp + "/{group}":             1, // read back only
		"POST " + grp:                         0,
		"POST " + grp + "/{group}":            0,
	} {
		if calls[route] != want {
			t.Errorf("%s: %d calls, want %d", route, calls[route], want)
		}
	}
	iso, err := l.srv.EffectiveIsolation(1001)
	if err != nil || !iso.FirewallIsolated || iso.AcceptRules != 2 || iso.OpenRules != 0 {
		t.Fatalf("not isolated: %+v %v", iso, err)
	}

	// A new process (nothing remembered) reads the group with the first
	// reads: one call more.
	fresh := l.newActs(t, l.cfg, l.sink)
	l.srv.ResetCalls()
	mustRun(t, fresh, isolate(2))
	if n := l.srv.Calls().Total(); n > maxIsolateCalls+1 {
		t.Errorf("isolate in a new process made %d API calls, want at most %d: %v", n, maxIsolateCalls+1, l.srv.Calls())
	}

	// Continuing an isolation that is complete changes nothing.
	l.srv.ResetCalls()
	mustRun(t, l.acts, in)
	again := l.srv.Calls()
	if w := again["PUT "+ct+"/config"] + again["PUT "+ct+"/firewall/options"] + again["POST "+ct+"/firewall/rules"] + again["PUT "+ct+"/firewall/rules/{pos}"] + again["POST "+grp+"/{group}"]; w != 0 {
		t.Errorf("a repeated isolation wrote %d times: %v", w, again)
	}
}
