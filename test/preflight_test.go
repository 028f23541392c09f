//go:build integration

package test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// TestPreflight runs `starter preflight` (the binary) for the
// container-compromise playbook against the lab: every action plans
// against the real APIs and nothing in the lab changes.
func TestPreflight(t *testing.T) {
	_, starterBin := binaries(t)
	p := testplatform.New(t, testplatform.Options{NoWorker: true})
	testenv.Worker(t, p.Client, workflows.TaskQueue, func(r worker.Registry) { p.Host.Register(r, p.Client) })
	before, err := p.Lab.PVE.State().CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	sessBefore, _ := p.Lab.Keycloak.Sessions("iru", "jdoe")

	cmd := exec.Command(starterBin, "preflight", "container-compromise", "--asset", "api-gateway", "--label", "username=jdoe", "--label", "realm=iru")
	cmd.Env = append(os.Environ(), p.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("preflight: %v\n%s", err, out.String())
	}
	t.Logf("preflight output:\n%s", out.String())
	for _, want := range []string{"containment", "pve.isolate", "would:", "kc.logout_user", "resolved"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	after, err := p.Lab.PVE.State().CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("the dry run changed the lab's Proxmox state")
	}
	if sessAfter, _ := p.Lab.Keycloak.Sessions("iru", "jdoe"); len(sessAfter) != len(sessBefore) {
		t.Errorf("the dry run changed jdoe's sessions: %d → %d", len(sessBefore), len(sessAfter))
	}

	// A playbook that cannot pass its preconditions: an unknown asset.
	cmd = exec.Command(starterBin, "preflight", "container-compromise", "--asset", "no-such-container")
	cmd.Env = append(os.Environ(), p.Env...)
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(b), "no-such-container") {
		t.Errorf("preflight of an unknown asset: %v\n%s", err, b)
	}
}
