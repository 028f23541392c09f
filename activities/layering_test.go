package activities

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// workflowsPkg is the package of the workflows, which imports the
// activities' contracts and never the reverse.
const workflowsPkg = "github.com/iru-responder/responder/workflows"

// TestNoPackageImportsWorkflows fails when a package under activities/
// (its non-test files, directly or through another package) depends on the
// workflows package.
func TestNoPackageImportsWorkflows(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		t.Fatalf("go list found %d packages under activities/, want them all:\n%s", len(lines), out)
	}
	for _, line := range lines {
		pkg, deps, _ := strings.Cut(line, " ")
		if slices.Contains(strings.Fields(deps), workflowsPkg) {
			t.Errorf("%s depends on %s: move what it needs into the activities layer", pkg, workflowsPkg)
		}
	}
}
