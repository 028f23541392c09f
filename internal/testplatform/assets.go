package testplatform

import (
	"context"
	"testing"

	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/intake/inventory"
)

// LabAssets is the detector intake's asset inventory over the lab's
// Proxmox VE, read with the platform's PVE configuration (env, as
// [Platform.Env]) exactly as `starter serve` builds it.
type LabAssets struct{ inv *pveact.Activities }

// NewLabAssets returns the inventory of the PVE that env configures.
func NewLabAssets(t testing.TB, env []string) LabAssets {
	t.Helper()
	var cfg pveact.Config
	if err := config.LoadFrom(&cfg, env); err != nil {
		t.Fatal(err)
	}
	inv, err := pveact.NewInventory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return LabAssets{inv}
}

// Assets implements inventory.Source.
func (a LabAssets) Assets(ctx context.Context) ([]inventory.Asset, error) {
	cts, err := a.inv.Containers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]inventory.Asset, 0, len(cts))
	for _, ct := range cts {
		out = append(out, inventory.Asset{Name: ct.Name, Node: ct.Node, VMID: ct.VMID, IPs: ct.IPs, Tags: ct.Tags})
	}
	return out, nil
}
