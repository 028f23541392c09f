//go:build integration

package proxmox

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/iru-responder/responder/activities"
)

// TestIsolateUnisolateFirewall: isolation really isolates in the lab's
// model, is idempotent, and un-isolation restores the exact prior state.
func TestIsolateUnisolateFirewall(t *testing.T) {
	l := newLab(t)
	for _, tc := range []struct {
		asset string
		vmid  int
		nics  int
	}{
		{"api-gateway", 100, 1},  // own ACCEPT rules, policy_out ACCEPT
		{"iru-services", 102, 2}, // two NICs
		{"drill-canary", 900, 1}, // firewall off (enable=0), no rules
	} {
		t.Run(tc.asset, func(t *testing.T) {
			before := l.ct(t, tc.vmid)
			in := input(activities.PVEIsolate, tc.asset, map[string]string{"method": "firewall", "allow": "10.10.0.0/24", "reason": "test"})
			res := mustRun(t, l.acts, in)
			iso, err := l.srv.EffectiveIsolation(tc.vmid)
			if err != nil {
				t.Fatal(err)
			}
			if !iso.DatacenterFirewall || !iso.ContainerFirewall || !iso.InDrop || !iso.OutDrop || !iso.AllNICsFirewalled || len(iso.NICs) != tc.nics {
				t.Fatalf("not isolated: %+v", iso)
			}
			// Only the allow list punches through: 10.10.0.0/24 and the
			// configured 10.99.0.5/32, both directions.
			if iso.AcceptRules != 4 {
				t.Fatalf("accept rules = %d, want 4 (allow list both ways): %+v", iso.AcceptRules, iso)
			}
			if res.Outputs["method"] != "firewall" || res.Undo["prior_ref"] == "" || len(res.EvidenceRefs) != 1 || res.Undo["vmid"] == "" {
				t.Fatalf("result %+v", res)
			}
			var ev struct {
				Prior priorState `json:"prior"`
			}
			if err := json.Unmarshal(l.ev.get(res.Undo["prior_ref"]), &ev); err != nil {
				t.Fatalf("prior evidence: %v", err)
			}
			if ev.Prior.Nets["net0"] == "" || ev.Prior.Options == nil {
				t.Fatalf("prior evidence incomplete: %+v", ev.Prior)
			}
			isolated := l.ct(t, tc.vmid)
			res2 := mustRun(t, l.acts, in) // idempotent
			if got := l.ct(t, tc.vmid); got != isolated {
				t.Fatalf("second isolate changed the state:\n%s\nwant\n%s", got, isolated)
			}
			if res2.Undo["prior_ref"] != res.Undo["prior_ref"] {
				t.Fatalf("second isolate recorded another prior state: %s vs %s", res2.Undo["prior_ref"], res.Undo["prior_ref"])
			}
			un := input(activities.PVEUnisolate, tc.asset, map[string]string{"method": "firewall"})
			mustRun(t, l.acts, un)
			if got := l.ct(t, tc.vmid); got != before {
				t.Fatalf("after unisolate:\n%s\nwant\n%s", got, before)
			}
			if r := mustRun(t, l.acts, un); !contains(r.Summary, "nothing to lift") {
				t.Fatalf("second unisolate: %q", r.Summary)
			}
			if got := l.ct(t, tc.vmid); got != before {
				t.Fatal("second unisolate changed the state")
			}
		})
	}
}

// TestIsolateLinkDown unplugs every NIC and plugs them back.
func TestIsolateLinkDown(t *testing.T) {
	l := newLab(t)
	beforeState := l.srv.State()
	in := input(activities.PVEIsolate, "keycloak", map[string]string{"method": "link_down"})
	mustRun(t, l.acts, in)
	iso, _ := l.srv.EffectiveIsolation(101)
	if !iso.AllLinksDown || !iso.Isolated {
		t.Fatalf("links not down: %+v", iso)
	}
	mustRun(t, l.acts, input(activities.PVEUnisolate, "keycloak", map[string]string{"method": "link_down"}))
	var before, after map[string]string
	for _, c := range beforeState.Containers {
		if c.VMID == 101 {
			before = c.Config
		}
	}
	for _, c := range l.srv.State().Containers {
		if c.VMID == 101 {
			after = c.Config
		}
	}
	// PVE re-prints a property string it is sent: compare netN as sets.
	for k, v := range before {
		if reNetKey.MatchString(k) {
			if !sameProps(after[k], v) {
				t.Fatalf("%s = %q, want %q", k, after[k], v)
			}
			continue
		}
		if after[k] != v {
			t.Fatalf("%s = %q, want %q", k, after[k], v)
		}
	}
	if len(after) != len(before) {
		t.Fatalf("config keys %v, want %v", after, before)
	}
}

// TestIsolateRefusals: datacenter firewall off, a drill on a non-drill
// CT, another incident's quarantine, a missing CT.
func TestIsolateRefusals(t *testing.T) {
	l := newLab(t)
	mustRun(t, l.acts, input(activities.PVEIsolate, "database", nil))
	other := input(activities.PVEIsolate, "database", nil)
	other.IncidentID = "INC-7"
	drill := input(activities.PVEIsolate, "api-gateway", nil)
	drill.Drill = true
	for _, tc := range []struct {
		name string
		in   activities.ActionInput
		typ  string
	}{
		{"drill on a production CT", drill, activities.ErrTypePrecondition},
		{"another incident's quarantine", other, activities.ErrTypeConflict},
		{"missing CT", input(activities.PVEIsolate, "999", nil), activities.ErrTypeNotFound},
		{"unknown method", input(activities.PVEIsolate, "keycloak", map[string]string{"method": "unplug"}), activities.ErrTypeBadParams},
		{"bad allow list", input(activities.PVEIsolate, "keycloak", map[string]string{"allow": "10.0.0.300"}), activities.ErrTypeBadParams},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := l.state(t)
			_, err := run(t, l.acts, tc.in)
			if err == nil {
				t.Fatal("no error")
			}
			if typ, fin := errType(t, err); typ != tc.typ || !fin {
				t.Fatalf("error type %s final %v, want final %s: %v", typ, fin, tc.typ, err)
			}
			if l.state(t) != before {
				t.Fatal("a refused isolation changed the lab state")
			}
		})
	}
	t.Run("datacenter firewall off", func(t *testing.T) {
		x := l.acts.call("test")
		if err := x.put(context.Background(), "/cluster/firewall/options", map[string]any{"enable": 0}, nil); err != nil {
			t.Fatal(err)
		}
		before := l.state(t)
		_, err := run(t, l.acts, input(activities.PVEIsolate, "keycloak", nil))
		if typ, fin := errType(t, err); typ != activities.ErrTypePrecondition || !fin || !contains(err.Error(), "datacenter firewall") {
			t.Fatalf("got %s/%v: %v", typ, fin, err)
		}
		if l.state(t) != before {
			t.Fatal("refused isolation changed the lab state")
		}
		// link_down does not depend on the firewall.
		mustRun(t, l.acts, input(activities.PVEIsolate, "keycloak", map[string]string{"method": "link_down"}))
	})
}

// TestIsolateCrashBetweenSteps fails the Nth API call of an isolation
// (before the request reaches PVE, and after PVE applied it), for every N;
// a second run without faults converges, and un-isolation still restores
// the original state. The same for un-isolation.
func TestIsolateCrashBetweenSteps(t *testing.T) {
	l := newLab(t)
	in := input(activities.PVEIsolate, "api-gateway", map[string]string{"allow": "10.10.0.0/24"})
	un := input(activities.PVEUnisolate, "api-gateway", nil)
	original := l.ct(t, 100)

	start := l.count.n.Load()
	mustRun(t, l.acts, in)
	isoCalls := l.count.n.Load() - start
	isolated := l.ct(t, 100)
	start = l.count.n.Load()
	mustRun(t, l.acts, un)
	unCalls := l.count.n.Load() - start
	if l.ct(t, 100) != original {
		t.Fatal("clean run did not restore")
	}
	t.Logf("isolate: %d API calls, unisolate: %d", isoCalls, unCalls)

	for _, after := range []bool{false, true} {
		for n := int64(1); n <= isoCalls; n++ {
			if err := l.srv.Reset(); err != nil {
				t.Fatal(err)
			}
			l.count.after.Store(after)
			l.count.failAt.Store(l.count.n.Load() + n)
			_, err := run(t, l.acts, in)
			l.count.failAt.Store(0)
			if err == nil {
				t.Fatalf("isolate with call %d failing (after=%v): no error", n, after)
			}
			if _, fin := errType(t, err); fin {
				t.Fatalf("isolate with call %d failing (after=%v): final error %v", n, after, err)
			}
			mustRun(t, l.acts, in)
			if got := l.ct(t, 100); got != isolated {
				t.Fatalf("call %d failing (after=%v): converged to\n%s\nwant\n%s", n, after, got, isolated)
			}
			mustRun(t, l.acts, un)
			if got := l.ct(t, 100); got != original {
				t.Fatalf("call %d failing (after=%v): unisolate left\n%s\nwant\n%s", n, after, got, original)
			}
		}
		for n := int64(1); n <= unCalls; n++ {
			if err := l.srv.Reset(); err != nil {
				t.Fatal(err)
			}
			mustRun(t, l.acts, in)
			l.count.after.Store(after)
			l.count.failAt.Store(l.count.n.Load() + n)
			_, err := run(t, l.acts, un)
			l.count.failAt.Store(0)
			if err == nil {
				t.Fatalf("unisolate with call %d failing: no error", n)
			}
			mustRun(t, l.acts, un)
			if got := l.ct(t, 100); got != original {
				t.Fatalf("unisolate call %d failing (after=%v): left\n%s\nwant\n%s", n, after, got, original)
			}
		}
	}
}

// TestRecordRoundTrip: the quarantine record survives the description.
func TestRecordRoundTrip(t *testing.T) {
	rec := &quarantineRecord{Incident: "INC-1", Method: "firewall", Allow: []string{"10.0.0.0/8"},
		Prior: priorState{Options: map[string]string{"enable": "0"}, Nets: map[string]string{"net0": "name=eth0"}, Description: "line1\nline2\n"}}
	enc, err := encodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	d, err := recordDescription(rec, enc, "sig")
	if err != nil {
		t.Fatal(err)
	}
	st := &ctState{conf: map[string]any{"description": d}}
	got, err := st.record()
	if err != nil || got == nil {
		t.Fatalf("record: %v", err)
	}
	if got.Incident != rec.Incident || got.Prior.Description != rec.Prior.Description || got.Prior.Nets["net0"] != "name=eth0" {
		t.Fatalf("got %+v", got)
	}
	if !contains(d, "line1\nline2") {
		t.Fatal("original description not kept for people")
	}
}
