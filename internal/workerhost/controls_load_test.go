package workerhost

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iru-responder/responder/controls"
)

// playbookNames is a playbook set of fixed names.
type playbookNames []string

func (n playbookNames) Names() []string { return n }

// TestCheckedControls: a controls file the operator chose that names a
// playbook the worker has not loaded is refused at start; the embedded
// file with such a playbook set is loaded with a warning naming the
// control; a complete set loads silently.
func TestCheckedControls(t *testing.T) {
	custom := filepath.Join(t.TempDir(), "controls.yaml")
	if err := os.WriteFile(custom, controls.EmbeddedSource(), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		set     playbookNames
		wantErr string
		wantLog string
	}{
		{"operator's file, playbook missing", custom, playbookNames{"container-compromise"}, `playbook "control-drift" is not loaded`, ""},
		{"operator's file, complete", custom, playbookNames{"container-compromise", "control-drift"}, "", ""},
		{"embedded file, playbook missing", "", playbookNames{"container-compromise"}, "", `playbook \"control-drift\" is not loaded`},
		{"embedded file, complete", "", playbookNames{"control-drift"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			f, err := ControlsConfig{File: tt.file}.checkedControls(tt.set, slog.New(slog.NewTextHandler(&logs, nil)))
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "IRU_CONTROLS_FILE") {
					t.Fatalf("err = %v, want one naming IRU_CONTROLS_FILE and %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case len(f.Controls) == 0:
				t.Fatal("no controls loaded")
			}
			if tt.wantLog == "" && logs.Len() > 0 {
				t.Errorf("unexpected log: %s", logs.String())
			}
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log %q does not contain %q", logs.String(), tt.wantLog)
			}
		})
	}
}
