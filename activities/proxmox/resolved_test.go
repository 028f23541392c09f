//go:build integration

package proxmox

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/lab/pve"
)

// TestResolvedAsset: an action whose asset is the incident's acts on the
// container the intake resolved (no cluster-wide lookup), but only while
// that container still carries the asset's name; an asset parameter that
// names another container is looked up by name.
func TestResolvedAsset(t *testing.T) {
	l := newLab(t)
	withRef := func(action, asset string, ref activities.AssetRef) activities.ActionInput {
		in := input(action, asset, nil)
		in.Asset, in.Resolved = ref.Name, &ref
		return in
	}
	gateway := activities.AssetRef{Name: "api-gateway", Node: "pve1", VMID: 100}

	t.Run("no lookup", func(t *testing.T) {
		l.srv.SetFaults(pve.Fault{Method: "GET", Path: "/cluster/resources", ErrorRate: 1, ErrorStatus: 500})
		defer l.srv.SetFaults()
		res := mustRun(t, l.acts, withRef(activities.PVEResolveAsset, "api-gateway", gateway))
		if o := res.Outputs; o["vmid"] != "100" || o["node"] != "pve1" || o["status"] != "running" || o["ip"] != "10.20.10.10" {
			t.Fatalf("outputs %v", o)
		}
	})
	t.Run("vmid no longer the asset", func(t *testing.T) {
		forged := activities.AssetRef{Name: "api-gateway", Node: "pve2", VMID: 103} // the database
		before := l.state(t)
		_, err := run(t, l.acts, withRef(activities.PVEIsolate, "api-gateway", forged))
		if typ, fin := errType(t, err); typ != activities.ErrTypePrecondition || !fin || !strings.Contains(err.Error(), "no longer asset") {
			t.Fatalf("got %s/%v: %v", typ, fin, err)
		}
		if l.state(t) != before {
			t.Fatal("a refused isolation changed the lab state")
		}
	})
	t.Run("node steering the path", func(t *testing.T) {
		for _, action := range []string{activities.PVEIsolate, activities.PVEResolveAsset, activities.PVESnapshot} {
			forged := activities.AssetRef{Name: "api-gateway", Node: "pve2/lxc/103/config?", VMID: 100}
			before := l.state(t)
			l.srv.ResetCalls()
			_, err := run(t, l.acts, withRef(action, "api-gateway", forged))
			if typ, fin := errType(t, err); typ != activities.ErrTypeBadParams || !fin {
				t.Fatalf("%s: got %s/%v: %v", action, typ, fin, err)
			}
			if calls := l.srv.Calls(); len(calls) != 0 {
				t.Errorf("%s: a forged node made API calls %v", action, calls)
			}
			if l.state(t) != before {
				t.Fatalf("%s: a refused ref changed the lab state", action)
			}
		}
	})
	t.Run("drill tag read from the config", func(t *testing.T) {
		in := withRef(activities.PVEIsolate, "api-gateway", gateway)
		in.Drill = true
		before := l.state(t)
		_, err := run(t, l.acts, in)
		if typ, fin := errType(t, err); typ != activities.ErrTypePrecondition || !fin || !strings.Contains(err.Error(), "drill tag") {
			t.Fatalf("got %s/%v: %v", typ, fin, err)
		}
		if l.state(t) != before {
			t.Fatal("a refused drill isolation changed the lab state")
		}
	})
	t.Run("another asset is resolved", func(t *testing.T) {
		res := mustRun(t, l.acts, withRef(activities.PVEResolveAsset, "database", gateway))
		if o := res.Outputs; o["vmid"] != "103" || o["node"] != "pve2" {
			t.Fatalf("outputs %v", o)
		}
	})
}

// TestResolvedAddr: the address of a resolved asset is read from its
// container's config alone (one call, no cluster-wide lookup), and only
// while that container carries the asset's name; a ref that is not a
// container location is refused before any call.
func TestResolvedAddr(t *testing.T) {
	l := newLab(t)
	const config = "GET /nodes/{node}/lxc/{vmid}/config"
	for _, tc := range []struct {
		name    string
		ref     activities.AssetRef
		addr    string
		errType string
		calls   pve.CallCounts
	}{
		{"genuine", activities.AssetRef{Name: "api-gateway", Node: "pve1", VMID: 100}, "10.20.10.10", "", pve.CallCounts{config: 1}},
		{"name matched without case", activities.AssetRef{Name: "API-Gateway", Node: "pve1", VMID: 100}, "10.20.10.10", "", pve.CallCounts{config: 1}},
		{"vmid now the database", activities.AssetRef{Name: "api-gateway", Node: "pve2", VMID: 103}, "", activities.ErrTypePrecondition, pve.CallCounts{config: 1}},
		{"node with a path", activities.AssetRef{Name: "api-gateway", Node: "pve2/lxc/103/config?", VMID: 100}, "", activities.ErrTypeBadParams, pve.CallCounts{}},
		{"vmid out of range", activities.AssetRef{Name: "api-gateway", Node: "pve1", VMID: 0}, "", activities.ErrTypeBadParams, pve.CallCounts{}},
		{"no name", activities.AssetRef{Node: "pve1", VMID: 100}, "", activities.ErrTypeBadParams, pve.CallCounts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.srv.ResetCalls()
			addr, err := l.acts.ResolvedAddr(t.Context(), tc.ref)
			if calls := l.srv.Calls(); !maps.Equal(calls, tc.calls) {
				t.Errorf("API calls %v, want %v", calls, tc.calls)
			}
			if tc.errType != "" {
				if typ, fin := errType(t, err); typ != tc.errType || !fin {
					t.Fatalf("got %s/%v (%v), want a final %s", typ, fin, err, tc.errType)
				}
				return
			}
			if err != nil || addr.String() != tc.addr {
				t.Fatalf("ResolvedAddr = %v, %v; want %s", addr, err, tc.addr)
			}
		})
	}
}

// TestContainers: the inventory listing carries each container's location,
// status, tags and the static addresses of all its interfaces.
func TestContainers(t *testing.T) {
	l := newLab(t)
	cts, err := l.acts.Containers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got *Container
	for i := range cts {
		if i > 0 && cts[i-1].VMID >= cts[i].VMID {
			t.Fatalf("not in vmid order: %d before %d", cts[i-1].VMID, cts[i].VMID)
		}
		if cts[i].VMID == 102 {
			got = &cts[i]
		}
	}
	if got == nil || got.Name != "iru-services" || got.Node != "pve2" || got.Status != "running" ||
		!slices.Equal(got.Tags, []string{"iru", "services"}) || !slices.Contains(got.IPs, "10.20.20.12") || !slices.Contains(got.IPs, "10.20.40.12") {
		t.Fatalf("CT 102 = %+v", got)
	}
}
