package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
	controlsact "github.com/iru-responder/responder/activities/controls"
	"github.com/iru-responder/responder/controls"
)

// TestControlsList lists the embedded controls as a table and as JSON.
func TestControlsList(t *testing.T) {
	t.Setenv("IRU_CONTROLS_FILE", "")
	out, err := runCLI(t, "controls", "list")
	wantExit(t, err, 0, out)
	for _, want := range []string{"net-ingress-ports", "pve.ingress", "idm-token-lifespan", "keys-rotated-90d"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, "controls", "list", "--json")
	wantExit(t, err, 0, out)
	var res activities.ControlsListResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Controls) < 10 || res.Digest == "" {
		t.Fatalf("list --json: %v %+v", err, res)
	}
}

// TestControlsFileErrors checks an invalid controls file is refused with
// its file:line errors and exit status 2.
func TestControlsFileErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("controls:\n  - id: a\n    section: s\n    title: t\n    check: pve.nope\n    severity: high\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "controls", "list", "--file", p)
	wantExit(t, err, 2, out)
	if !strings.Contains(err.Error(), p+`:5: control "a": unknown check kind "pve.nope"`) {
		t.Fatalf("error %v", err)
	}
}

// TestControlsReport writes the compliance matrix from kept results: each
// control with its section, its last status, the SHA-256 of its result's
// canonical JSON and its clauses; a control without a result is "not checked".
func TestControlsReport(t *testing.T) {
	t.Setenv("IRU_CONTROLS_FILE", "")
	dir := t.TempDir()
	f, err := controls.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.Get("idm-brute-force")
	res := activities.ControlCheckResult{Control: c.Summary(), Status: activities.ControlFail, Targets: 1, CheckedAt: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC),
		Findings: []activities.ControlFinding{{Target: "keycloak/iru", Setting: "bruteForceProtected", Observed: "false", Expected: "true"}}}
	results := filepath.Join(dir, "results.json")
	if err := saveControlsResults(results, f, []activities.ControlCheckResult{res}); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "controls", "report", "--results", results, "--out", dir)
	wantExit(t, err, 0, out)
	var m matrix
	b, err := os.ReadFile(filepath.Join(dir, "compliance-matrix.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	hash, err := controlsact.EvidenceHash(res)
	if err != nil {
		t.Fatal(err)
	}
	var got, other *matrixRow
	for i := range m.Rows {
		switch m.Rows[i].ID {
		case "idm-brute-force":
			got = &m.Rows[i]
		case "net-ingress-ports":
			other = &m.Rows[i]
		}
	}
	if got == nil || got.Status != activities.ControlFail || got.EvidenceHash != hash || got.Section != c.Section || len(got.Frameworks) == 0 {
		t.Fatalf("row %+v, want status fail, hash %s", got, hash)
	}
	if other == nil || other.Status != "not checked" || other.EvidenceHash != "" {
		t.Fatalf("unchecked row %+v", other)
	}
	md, err := os.ReadFile(filepath.Join(dir, "compliance-matrix.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| idm-brute-force: Brute-force protection is on |", hash, "ISO27001 A.8.5", "## Clauses"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("matrix lacks %q:\n%s", want, md)
		}
	}
}
