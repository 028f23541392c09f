//go:build integration

package proxmox

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/iru-responder/responder/activities"
)

// TestIsolateTogetherFirstUse: containers isolated at the same moment with
// the same allow list, on a cluster that has no group for it yet (as when a
// storm opens incidents on several containers), are all isolated at the
// first attempt, and the shared group holds its rules once, ACCEPT above
// DROP. Built at the same time by each isolation, the group's inserts at
// position 0 interleaved: one's DROP above another's ACCEPT, which every
// read-back then refused (CI, test/bench smoke test).
func TestIsolateTogetherFirstUse(t *testing.T) {
	const n = 6
	l := newLab(t, withInventory(inventory100(t, n)))
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			in := input(activities.PVEIsolate, fmt.Sprintf("bench-%d", i), map[string]string{"allow": "10.10.0.0/24"})
			in.Resolved = &activities.AssetRef{Name: in.Asset, Node: []string{"pve1", "pve2"}[i%2], VMID: 1000 + i}
			_, errs[i] = run(t, l.acts, in)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("isolate bench-%d: %v", i, err)
		}
	}
	allow := l.acts.allowList(activities.CIDRList{netip.MustParsePrefix("10.10.0.0/24")})
	name := groupName(allow)
	if got := l.srv.SecurityGroups(); len(got) != 1 || got[0] != name {
		t.Errorf("security groups %v, want only %s", got, name)
	}
	rules, ok := l.srv.SecurityGroup(name)
	if !ok {
		t.Fatalf("security group %s missing", name)
	}
	if p := groupProblems(name, rules, groupRules(allow)); len(p) > 0 || len(rules) != 2*len(allow)+2 {
		t.Errorf("security group %s: %d rules %v; problems %v", name, len(rules), rules, p)
	}
	for i := range n {
		if iso, err := l.srv.EffectiveIsolation(1000 + i); err != nil || !iso.FirewallIsolated || iso.OpenRules != 0 {
			t.Errorf("bench-%d not isolated: %+v %v", i, iso, err)
		}
	}
}
