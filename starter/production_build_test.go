package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProductionBinariesHaveNoLab builds the production binaries as make
// build does (no build tags) and checks with go tool nm that none of them
// contains the lab's simulators, the demo scenario or the local stack's
// commands; the localstack build, which has them, shows that the check
// finds them when they are there.
func TestProductionBinariesHaveNoLab(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	forbidden := []string{
		"github.com/iru-responder/responder/internal/lab",
		"github.com/iru-responder/responder/internal/demo",
		"github.com/iru-responder/responder/internal/localstack",
		"main.newUpCmd",
		"main.newLabCmd",
		"main.newClusterCmd",
	}
	symbols := func(t *testing.T, tags string, pkg string) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
		args := []string{"build", "-o", bin}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		build := exec.Command("go", append(args, pkg)...)
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		out, err := exec.Command("go", "tool", "nm", bin).Output()
		if err != nil {
			t.Fatalf("go tool nm %s: %v", bin, err)
		}
		return string(out)
	}
	found := func(syms string) []string {
		var hits []string
		for _, f := range forbidden {
			if strings.Contains(syms, " "+f) {
				hits = append(hits, f)
			}
		}
		return hits
	}
	for _, pkg := range []string{"./worker", "./starter"} {
		if hits := found(symbols(t, "", pkg)); len(hits) > 0 {
			t.Errorf("production build of %s contains %v", pkg, hits)
		}
	}
	if hits := found(symbols(t, "localstack", "./starter")); len(hits) == 0 {
		t.Errorf("the localstack build of ./starter has none of %v: the check cannot see them", forbidden)
	}
}
