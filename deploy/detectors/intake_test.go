package detectors_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/iru-responder/responder/internal/intake"
	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/intake/route"
	"github.com/iru-responder/responder/internal/intake/spool"
)

// labAssets is the inventory the kits' alerts are mapped against.
type labAssets []inventory.Asset

func (a labAssets) Assets(context.Context) ([]inventory.Asset, error) { return a, nil }

var kitAssets = labAssets{
	{Name: "web-1", Node: "pve1", VMID: 121, IPs: []string{"10.10.0.21"}, Aliases: []string{"3ad7b26ded6d"}},
	{Name: "db-1", Node: "pve2", VMID: 122, IPs: []string{"10.10.0.22"}, Hostname: "db-1.lab"},
}

// kitIntake is the real intake handler over a spool in a temporary
// directory, served on loopback.
type kitIntake struct {
	URL string
	sp  *spool.Spool
	h   *intake.Handler
}

// newKitIntake serves the intake for detectors.
func newKitIntake(t *testing.T, detectors ...auth.Detector) *kitIntake {
	t.Helper()
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	a, err := auth.New(detectors, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.New(kitAssets, inventory.Options{})
	if err := inv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	rules, err := route.Default()
	if err != nil {
		t.Fatal(err)
	}
	h, err := intake.NewHandler(intake.Options{Auth: a, Inventory: inv, Rules: rules, Spool: sp})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(intake.Pattern, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &kitIntake{URL: srv.URL, sp: sp, h: h}
}

// records returns every record the intake spooled, in order.
func (k *kitIntake) records(t *testing.T) []forward.Record {
	t.Helper()
	items := k.sp.Pending(1<<20, nil)
	out := make([]forward.Record, 0, len(items))
	for _, it := range items {
		r, err := forward.UnmarshalRecord(it.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}
