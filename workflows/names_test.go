package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeploymentRegistersSearchAttributes: the deployment files that
// register the search attributes on a cluster (they are shell, so they
// cannot import names.go) list exactly [SearchAttributeFlags].
func TestDeploymentRegistersSearchAttributes(t *testing.T) {
	want := "for sa in " + strings.Join(SearchAttributeFlags(), " ") + "; do"
	for _, f := range []string{"deploy/temporal/setup.sh", "docker-compose.yml"} {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not register the search attributes of names.go: want a line with %q", f, want)
		}
	}
}
