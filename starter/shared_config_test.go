package main

import (
	"strings"
	"testing"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/workerhost"
)

// TestSharedStateConfig: the detectors live in one place. A process
// configured with both the shared store and a detectors file refuses to
// start (the API server would serve one set, the worker rotate another);
// a bad schema name or poll period is refused too.
func TestSharedStateConfig(t *testing.T) {
	const dsn = "IRU_SHARED_STATE_DSN=postgres://postgres@127.0.0.1:5432/test"
	tests := []struct {
		name string
		env  []string
		want string // "" : valid
	}{
		{"file only", []string{"IRU_INTAKE_DETECTORS_FILE=/tmp/d.yaml"}, ""},
		{"shared only", []string{dsn}, ""},
		{"both", []string{dsn, "IRU_INTAKE_DETECTORS_FILE=/tmp/d.yaml"}, "the detectors live in one place"},
		{"bad schema", []string{dsn, "IRU_SHARED_STATE_SCHEMA=iru; drop"}, "IRU_SHARED_STATE_SCHEMA"},
		{"bad poll", []string{dsn, "IRU_SHARED_STATE_POLL=0s"}, "IRU_SHARED_STATE_POLL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, cfg := range []config.Validator{&serveConfig{}, &workerhost.Config{}} {
				// LoadFrom validates; other variables this test leaves
				// unset may be refused too, so only ours are looked at.
				got := ""
				if err := config.LoadFrom(cfg, tc.env); err != nil {
					got = err.Error()
				}
				if tc.want == "" && (strings.Contains(got, "IRU_SHARED_STATE") || strings.Contains(got, "one place")) {
					t.Errorf("%T: refused: %s", cfg, got)
				}
				if tc.want != "" && !strings.Contains(got, tc.want) {
					t.Errorf("%T: error %q, want one naming %q", cfg, got, tc.want)
				}
			}
		})
	}
}
