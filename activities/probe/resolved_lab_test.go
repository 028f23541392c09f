//go:build integration

package probe

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/internal/lab/pve"
)

// TestResolvedAssetLab attacks the probe's use of the intake's resolved
// asset with the Proxmox VE simulator as the inventory: a ref whose vmid
// is now another container (the database), a ref on another node, and a
// ref whose node would steer the API path elsewhere must not make the
// probe reach any host, and only the ref's own config is read; the
// genuine ref is probed at its container's address without a cluster-wide
// look-up, and a run without a ref looks the asset up by name.
func TestResolvedAssetLab(t *testing.T) {
	srv, err := pve.New(pve.Options{Addr: "127.0.0.1:0", TaskDuration: pve.InstantTasks})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Close() })
	inv, err := proxmox.NewInventory(proxmox.Config{URL: srv.URL(), TokenID: pve.LabResponderTokenID, TokenSecret: pve.LabResponderTokenSecret, HTTPTimeout: 5 * time.Second},
		proxmox.WithTransport(func(http.RoundTripper) http.RoundTripper { return srv.HTTPClient().Transport }))
	if err != nil {
		t.Fatal(err)
	}
	// The lab's addresses: api-gateway (CT 100 on pve1) and the database
	// (CT 103 on pve2).
	hosts := newNetwork(t, "10.20.10.10", "10.20.30.13")
	a, err := New(Config{Scheme: "http", Port: 80, Path: "/healthz", RetryDelay: time.Millisecond}, inv)
	if err != nil {
		t.Fatal(err)
	}
	hosts.attach(a)
	gateway := activities.AssetRef{Name: "api-gateway", Node: "pve1", VMID: 100}
	const configRoute, resourcesRoute = "GET /nodes/{node}/lxc/{vmid}/config", "GET /cluster/resources"

	for _, tc := range []struct {
		name     string
		ref      *activities.AssetRef
		seen     map[string]int
		pveCalls map[string]int
		errType  string
		errText  string
	}{
		{"genuine ref", &gateway, map[string]int{"10.20.10.10 /healthz": 1}, map[string]int{configRoute: 1}, "", ""},
		{"vmid now the database", &activities.AssetRef{Name: "api-gateway", Node: "pve2", VMID: 103}, map[string]int{},
			map[string]int{configRoute: 1}, activities.ErrTypePrecondition, "no longer asset"},
		{"vmid on another node", &activities.AssetRef{Name: "api-gateway", Node: "pve2", VMID: 100}, map[string]int{},
			map[string]int{configRoute: 1}, activities.ErrTypeNotFound, ""},
		{"node steering the path", &activities.AssetRef{Name: "api-gateway", Node: "pve2/lxc/103/config?x=", VMID: 100}, map[string]int{},
			map[string]int{}, activities.ErrTypeBadParams, "not a container location"},
		{"no ref: looked up by name", nil, map[string]int{"10.20.10.10 /healthz": 1}, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetCalls()
			res, err := runInput(t, a, activities.ActionInput{Action: activities.NetHealthProbe, Asset: "api-gateway", Resolved: tc.ref})
			if got := hosts.take(); !maps.Equal(got, tc.seen) {
				t.Errorf("hosts saw %v, want %v", got, tc.seen)
			}
			calls := srv.Calls()
			if tc.pveCalls != nil && !maps.Equal(map[string]int(calls), tc.pveCalls) {
				t.Errorf("PVE calls %v, want %v", calls, tc.pveCalls)
			}
			if tc.ref == nil && calls[resourcesRoute] == 0 {
				t.Errorf("a run without a ref did not look the asset up (PVE calls %v)", calls)
			}
			if tc.errType != "" {
				var ae *temporal.ApplicationError
				if !errors.As(err, &ae) || ae.Type() != tc.errType || !ae.NonRetryable() || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("probe = %+v, %v; want a final %s naming %q", res, err, tc.errType, tc.errText)
				}
				return
			}
			if err != nil || res.Outputs["healthy"] != "true" {
				t.Fatalf("probe = %+v, %v", res, err)
			}
		})
	}
}
