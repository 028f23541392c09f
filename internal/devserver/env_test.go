package devserver

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/iru-responder/responder/internal/gctune"
)

// TestServerEnv checks the collector setting the dev server gets: the
// platform's (gctune.ServerEnv) unless the parent's environment sets it.
func TestServerEnv(t *testing.T) {
	var gogc string
	for _, kv := range gctune.ServerEnv() {
		if v, ok := strings.CutPrefix(kv, "GOGC="); ok {
			gogc = v
		}
	}
	if gogc == "" {
		t.Fatal("gctune.ServerEnv sets no GOGC")
	}
	tests := []struct {
		name   string
		parent []string
		want   string // GOGC the server sees
	}{
		{"platform's", []string{"PATH=/usr/bin"}, gogc},
		{"parent's wins", []string{"GOGC=100"}, "100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Run the environment through exec.Cmd as launch does: of
			// duplicate variables the last one is used.
			cmd := exec.Command("/bin/sh", "-c", `printf %s "$GOGC"`)
			cmd.Env = serverEnv(tt.parent)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := string(out); got != tt.want {
				t.Errorf("GOGC in the dev server's environment = %q, want %q", got, tt.want)
			}
		})
	}
}
