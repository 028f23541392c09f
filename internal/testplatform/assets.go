package testplatform

import (
	"testing"

	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/internal/config"
)

// NewLabAssets returns the detector intake's asset inventory over the
// Proxmox VE that env configures (as [Platform.Env]), built exactly as
// `starter serve` builds it.
func NewLabAssets(t testing.TB, env []string) *pveact.Activities {
	t.Helper()
	var cfg pveact.Config
	if err := config.LoadFrom(&cfg, env); err != nil {
		t.Fatal(err)
	}
	inv, err := pveact.NewInventory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}
