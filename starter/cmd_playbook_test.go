package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iru-responder/responder/playbooks"
)

// runStarter runs the CLI with args and returns its output, error output
// and error.
func runPlaybookCmd(args ...string) (string, string, error) {
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// TestPlaybookValidate: exit status 0 for valid playbooks (embedded, a
// folder, a file), 1 with file:line errors for a broken one.
func TestPlaybookValidate(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("../playbooks/container-compromise.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "        retries: \"5\"\n", "        retries: \"5\"\n        colour: red\n", 1)
	bad = strings.Replace(bad, "method: firewall\n", "method: unplug\n", 1)
	if bad == string(good) {
		t.Fatal("the broken copy is not broken")
	}
	goodPath, badPath := filepath.Join(dir, "good", "cc.yaml"), filepath.Join(dir, "bad", "cc.yaml")
	for p, src := range map[string]string{goodPath: string(good), badPath: bad} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		wantOut  string
		wantErrs []string
	}{
		{"embedded", nil, 0, "ok  container-compromise.yaml", nil},
		{"folder", []string{filepath.Dir(goodPath)}, 0, "ok  cc.yaml  container-compromise 1.3.0", nil},
		{"file", []string{goodPath}, 0, "container-compromise 1.3.0, 17 steps", nil},
		{"broken file", []string{goodPath, badPath}, 1, "ok  cc.yaml", []string{
			badPath + `:47: step isolate: parameter method: "unplug" is not one of firewall, link_down`,
			badPath + `:98: step probe: action net.health_probe has no parameter "colour"`,
		}},
		{"broken folder", []string{filepath.Dir(badPath)}, 1, "", []string{badPath + ":47: "}},
		{"missing path", []string{filepath.Join(dir, "nothing.yaml")}, 1, "", []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := runPlaybookCmd(append([]string{"playbook", "validate"}, tt.args...)...)
			code := 0
			if err != nil {
				code = exitCode(err)
			}
			if code != tt.code {
				t.Fatalf("exit status %d (%v), want %d\n%s%s", code, err, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out)
			}
			for _, w := range tt.wantErrs {
				if !strings.Contains(errOut, w) {
					t.Errorf("error output lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// TestPlaybookShow: the description lists phases, steps, approvals and
// compensations; --mermaid prints the playbook's flow chart.
func TestPlaybookShow(t *testing.T) {
	out, _, err := runPlaybookCmd("playbook", "show", "container-compromise")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"container-compromise 1.3.0 (severity high)", "\ncontainment\n", "  in parallel:\n", "isolate", "undone by pve.unisolate",
		"approval by ir-lead (quorum 1, timeout 30m0s, then escalate)", "high risk", "lifts isolate", "\npost_incident\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("show lacks %q:\n%s", w, out)
		}
	}
	out, _, err = runPlaybookCmd("playbook", "show", "--mermaid", "key-compromise")
	if err != nil {
		t.Fatal(err)
	}
	set, err := playbooks.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	pb, err := set.Get("key-compromise", "")
	if err != nil {
		t.Fatal(err)
	}
	if out != pb.Mermaid() || !strings.HasPrefix(out, "flowchart TD\n") {
		t.Errorf("--mermaid printed:\n%s", out)
	}
	if _, _, err := runPlaybookCmd("playbook", "show", "no-such-playbook"); !errors.Is(err, playbooks.ErrNotFound) {
		t.Errorf("unknown playbook: %v, want ErrNotFound", err)
	}
}
