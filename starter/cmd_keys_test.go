package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/workflows"
)

// runStarter runs the starter's root command with args.
func runStarter(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestKeysAddDetector(t *testing.T) {
	dir := t.TempDir()
	flagFile := filepath.Join(dir, "flag.yaml")
	envFile := filepath.Join(dir, "env.json")
	t.Setenv("IRU_INTAKE_DETECTORS_FILE", envFile)
	tests := []struct {
		name     string
		args     []string
		file     string
		wantErr  string
		wantCode int
	}{
		{name: "flag file", args: []string{"keys", "add-detector", "siem", "--format", "generic", "--file", flagFile}, file: flagFile},
		{name: "second detector", args: []string{"keys", "add-detector", "am", "--format", "alertmanager", "--file", flagFile}, file: flagFile},
		{name: "env file", args: []string{"keys", "add-detector", "falco", "--format", "falco"}, file: envFile},
		{name: "exists", args: []string{"keys", "add-detector", "siem", "--format", "generic", "--file", flagFile}, wantErr: "already in", wantCode: 1},
		{name: "bad format", args: []string{"keys", "add-detector", "x", "--format", "splunk", "--file", flagFile}, wantErr: "splunk", wantCode: 2},
		{name: "bad name", args: []string{"keys", "add-detector", "a/b", "--format", "generic", "--file", flagFile}, wantErr: "slashes", wantCode: 1},
		{name: "no format", args: []string{"keys", "add-detector", "x", "--file", flagFile}, wantErr: "format", wantCode: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := os.ReadFile(flagFile)
			stdout, stderr, err := runStarter(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != tt.wantCode {
					t.Fatalf("error %v (exit %d), want %q exit %d", err, exitCode(err), tt.wantErr, tt.wantCode)
				}
				if stdout != "" {
					t.Fatalf("printed %q on failure", stdout)
				}
				if after, _ := os.ReadFile(flagFile); !bytes.Equal(before, after) {
					t.Fatal("a failed add changed the file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			key := strings.TrimSuffix(stdout, "\n")
			if strings.Count(stdout, "\n") != 1 || !strings.HasPrefix(key, "iru_") {
				t.Fatalf("stdout %q: want the key alone", stdout)
			}
			name := tt.args[2]
			if !strings.Contains(stderr, "WARNING") || !strings.Contains(stderr, name) || strings.Contains(stderr, key) {
				t.Fatalf("stderr %q: want a warning without the key", stderr)
			}
			fi, err := os.Stat(tt.file)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("file mode %v, %v", fi, err)
			}
			raw, _ := os.ReadFile(tt.file)
			if strings.Contains(string(raw), key) {
				t.Fatal("the key is in the detectors file")
			}
			df, err := detectorsfile.Load(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			i := df.Detector(name)
			if i < 0 || len(df.Detectors[i].APIKeys) != 1 || df.Detectors[i].Format != tt.args[4] {
				t.Fatalf("detectors %+v", df.Detectors)
			}
			a, err := auth.New(df.Detectors, auth.Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("POST", "/v1/alerts/"+name, nil)
			r.Header.Set("Authorization", "Bearer "+key)
			if id, err := a.Authenticate(r, name, nil); err != nil || id.KeyID != df.Detectors[i].APIKeys[0].ID {
				t.Fatalf("the printed key does not authenticate: %v %+v", err, id)
			}
		})
	}
	// Both detectors of the flag file survived the second addition.
	if df, err := detectorsfile.Load(flagFile); err != nil || len(df.Detectors) != 2 {
		t.Fatalf("flag file: %+v, %v", df, err)
	}
}

func TestKeysAddDetectorNeedsAFile(t *testing.T) {
	t.Setenv("IRU_INTAKE_DETECTORS_FILE", "")
	_, _, err := runStarter(t, "keys", "add-detector", "x", "--format", "generic")
	if err == nil || !strings.Contains(err.Error(), "IRU_INTAKE_DETECTORS_FILE") || exitCode(err) != 2 {
		t.Fatalf("error %v", err)
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		t.Fatal("not an exit error")
	}
}

func TestPrintRotation(t *testing.T) {
	var b bytes.Buffer
	printRotation(&b, schedules.IntakeKeyRotationRun{WorkflowID: "keys:intake-rotation:manual:1", Result: workflows.RotateIntakeKeysResult{
		Rotated: []workflows.RotatedIntakeKey{{Detector: "am", KeyID: "rot-1", SecretRef: "secret://intake/am/rot-1/aa"}},
		Summary: "rotated the intake API keys of am",
	}})
	out := b.String()
	for _, want := range []string{"keys:intake-rotation:manual:1", "am", "rot-1", "secret://intake/am/rot-1/aa", "rotated the intake"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := formatDays(workflows.IntakeKeyRotationInterval); got != "90 days" {
		t.Errorf("formatDays = %q", got)
	}
	if got := formatDays(36 * time.Hour); got != "36h0m0s" {
		t.Errorf("formatDays = %q", got)
	}
}

func TestKeysCommands(t *testing.T) {
	for _, sub := range []string{"schedule", "rotate-intake", "add-detector"} {
		t.Run(sub, func(t *testing.T) {
			out, _, err := runStarter(t, "keys", sub, "--help")
			if err != nil || !strings.Contains(out, "Usage:") {
				t.Fatalf("keys %s --help: %v\n%s", sub, err, out)
			}
		})
	}
}
