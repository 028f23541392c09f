//go:build integration

package proxmox

import (
	"testing"

	"github.com/iru-responder/responder/activities"
)

// maxIsolateCalls bounds the API calls of one firewall isolation of a
// container resolved by the intake, with one own rule and one allow
// network: 4 reads (config, firewall options and rules, datacenter
// firewall), the config update with the record, 4 firewall changes (one
// rule disabled, two allow rules, the options) and 2 reads back.
const maxIsolateCalls = 11

// TestIsolateCalls counts, in the lab, the API calls of an isolation as
// the incident workflow runs it (the asset resolved at intake) and checks
// which routes they went to.
func TestIsolateCalls(t *testing.T) {
	l := newLab(t, withInventory(inventory100(t, 1)), withConfig(func(c *Config) { c.AllowCIDRs = []string{"10.10.0.0/24"} }))
	in := input(activities.PVEIsolate, "bench-0", map[string]string{"allow": "10.10.0.0/24"})
	in.Resolved = &activities.AssetRef{Name: "bench-0", Node: "pve1", VMID: 1000}
	l.srv.ResetCalls()
	mustRun(t, l.acts, in)
	calls := l.srv.Calls()
	t.Logf("isolate: %d API calls: %v", calls.Total(), calls)
	if n := calls.Total(); n > maxIsolateCalls {
		t.Errorf("isolate made %d API calls, want at most %d", n, maxIsolateCalls)
	}
	ct := "/nodes/{node}/lxc/{vmid}"
	for route, want := range map[string]int{
		"GET " + ct + "/config":               1, // the intake's resolution is checked on the state read
		"PUT " + ct + "/config":               1,
		"GET /cluster/resources":              0, // no cluster-wide lookup
		"GET /cluster/firewall/options":       1,
		"PUT " + ct + "/firewall/options":     1,
		"POST " + ct + "/firewall/rules":      2,
		"PUT " + ct + "/firewall/rules/{pos}": 1,
	} {
		if calls[route] != want {
			t.Errorf("%s: %d calls, want %d", route, calls[route], want)
		}
	}
	iso, err := l.srv.EffectiveIsolation(1000)
	if err != nil || !iso.FirewallIsolated || iso.AcceptRules != 2 {
		t.Fatalf("not isolated: %+v %v", iso, err)
	}
	// Continuing an isolation that is complete changes nothing and reads
	// the state once and back once.
	l.srv.ResetCalls()
	mustRun(t, l.acts, in)
	again := l.srv.Calls()
	if w := again["PUT "+ct+"/config"] + again["PUT "+ct+"/firewall/options"] + again["POST "+ct+"/firewall/rules"] + again["PUT "+ct+"/firewall/rules/{pos}"]; w != 0 {
		t.Errorf("a repeated isolation wrote %d times: %v", w, again)
	}
}
