package playbooks

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/iru-responder/responder/activities"
)

// TestOrphanedCompensationsPlaybook checks the follow-up playbook: it
// changes nothing by itself (its recovery steps are the inherited
// compensations the interpreter adds, each behind an approval), and it
// still documents the incident.
func TestOrphanedCompensationsPlaybook(t *testing.T) {
	set, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	pb, err := set.Get("orphaned-compensations", "")
	if err != nil {
		t.Fatal(err)
	}
	var post []string
	for _, ph := range pb.Phases {
		for _, e := range ph.Entries {
			for _, s := range e.Steps() {
				a, err := activities.Lookup(s.Action)
				if err != nil {
					t.Fatal(err)
				}
				if a.Compensation != "" || a.Destructive {
					t.Errorf("step %s (%s) changes something; the follow-up only runs approved undo steps", s.ID, s.Action)
				}
				if ph.Name == PhasePostIncident {
					post = append(post, s.Action)
				}
			}
		}
	}
	if !slices.Contains(post, activities.ReportGenerate) {
		t.Errorf("post_incident steps %v: the report is missing", post)
	}
}

// TestEmbeddedPlaybooks checks the shipped playbooks against the product
// rules: complete across the six phases, parallel containment, approvals on
// destroy/restore/rotate steps, recovery and post-incident duties.
func TestEmbeddedPlaybooks(t *testing.T) {
	set, err := Embedded()
	if err != nil {
		t.Fatalf("Embedded: %v", err)
	}
	// The response playbooks, and the follow-up of an incident stopped
	// outside the platform (its steps come from the stopped run; see
	// TestOrphanedCompensationsPlaybook).
	want := []string{"container-compromise", "credential-compromise", "data-exfiltration", "failed-auth-threshold", "key-compromise"}
	if got := set.Names(); !slices.Equal(got, []string{"container-compromise", "control-drift", "credential-compromise", "data-exfiltration",
		"failed-auth-threshold", "key-compromise", "orphaned-compensations", "unknown-asset-triage"}) {
		t.Fatalf("Names = %v, want %v, control-drift, orphaned-compensations and unknown-asset-triage", got, want)
	}
	for _, name := range want {
		t.Run(name, func(t *testing.T) {
			pb, err := set.Get(name, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(pb.Phases) != len(Phases) {
				t.Fatalf("%d phases", len(pb.Phases))
			}
			actions := map[string][]Step{}
			for i, ph := range pb.Phases {
				if ph.Name != Phases[i] {
					t.Errorf("phase %d = %s, want %s", i, ph.Name, Phases[i])
				}
				if len(ph.Entries) == 0 {
					t.Errorf("phase %s is empty", ph.Name)
				}
				for _, e := range ph.Entries {
					for _, s := range e.Steps() {
						actions[ph.Name] = append(actions[ph.Name], s)
						a, err := activities.Lookup(s.Action)
						if err != nil {
							t.Fatal(err)
						}
						if a.Destructive && (s.Approval == nil || !slices.Contains(s.Approval.Roles, "ir-lead")) {
							t.Errorf("step %s: destructive %s without an ir-lead approval", s.ID, s.Action)
						}
						if a.Destructive && name == "key-compromise" && s.Approval.Quorum != 2 {
							t.Errorf("step %s: key compromise quorum %d, want 2", s.ID, s.Approval.Quorum)
						}
					}
				}
			}
			// Independent containment steps run together. The evidence snapshot
			// is not independent of the isolation in Proxmox VE (its task locks
			// the config the isolation writes), so it may follow it.
			independent := 0
			for _, s := range actions[PhaseContainment] {
				if s.Action != activities.PVESnapshot {
					independent++
				}
			}
			hasParallel := slices.ContainsFunc(pb.Phases[1].Entries, func(e Entry) bool { return len(e.Parallel) >= 2 })
			if independent >= 2 && !hasParallel {
				t.Error("containment runs independent steps one after another")
			}
			has := func(phase, action string) bool {
				return slices.ContainsFunc(actions[phase], func(s Step) bool { return s.Action == action })
			}
			if !has(PhasePostIncident, activities.ReportGenerate) || !has(PhasePostIncident, activities.NotifySend) {
				t.Error("post_incident must generate the report and notify")
			}
			lifts := slices.ContainsFunc(actions[PhaseRecovery], func(s Step) bool { return s.Compensates != "" })
			if !lifts {
				t.Error("recovery lifts no containment (no step with compensates)")
			}
			if name == "data-exfiltration" && !has(PhaseInvestigation, activities.ComplianceNotify) {
				t.Error("data exfiltration must start the GDPR clock")
			}
		})
	}
}

const validHead = `name: test
version: "1"
description: test playbook
severity_default: high
`

const validPhases = `phases:
  detection:
    - id: resolve
      action: pve.resolve_asset
      params: {asset: "{{ .Asset }}"}
  containment:
    - parallel:
        - id: isolate
          action: pve.isolate
          params: {asset: "{{ .Asset }}"}
        - id: snap
          action: pve.snapshot
          params: {asset: "{{ .Asset }}"}
  investigation: []
  remediation: []
  recovery: []
  post_incident:
    - id: report
      action: report.generate
`

func TestParseValid(t *testing.T) {
	pb, errs := Parse("ok.yaml", []byte(validHead+validPhases))
	if len(errs) > 0 {
		t.Fatalf("Parse: %v", errs)
	}
	iso, _, ok := pb.Step("isolate")
	if !ok {
		t.Fatal("no isolate step")
	}
	// Catalog defaults are filled; the default compensation gets the
	// forward step's parameters.
	if iso.Params["method"] != "firewall" || iso.OnFailure != OnFailureAbort {
		t.Errorf("defaults not applied: %+v", iso)
	}
	if iso.Compensation == nil || iso.Compensation.Action != activities.PVEUnisolate || iso.Compensation.Params["asset"] != "{{ .Asset }}" {
		t.Errorf("default compensation = %+v", iso.Compensation)
	}
	if pb.StepCount() != 4 {
		t.Errorf("StepCount = %d", pb.StepCount())
	}
}

// TestParseErrors proves each validation rule, with file and line.
func TestParseErrors(t *testing.T) {
	step := func(yaml string) string {
		return validHead + "phases:\n  detection:\n" + yaml + `  containment: []
  investigation: []
  remediation: []
  recovery: []
  post_incident: []
`
	}
	tests := []struct {
		name string
		src  string
		line int
		want string
	}{
		{"unknown action", step("    - id: a\n      action: pve.nuke\n"), 8, `unknown action "pve.nuke"`},
		{"internal action", step("    - id: a\n      action: ledger.append\n"), 8, `unknown action "ledger.append"`},
		{"unknown parameter", step("    - id: a\n      action: pve.start\n      params: {asset: x, colour: red}\n"), 9, `no parameter "colour"`},
		{"missing parameter", step("    - id: a\n      action: pve.start\n"), 7, `needs parameter "asset"`},
		{"bad enum", step("    - id: a\n      action: pve.isolate\n      params: {asset: x, method: unplug}\n"), 9, `"unplug" is not one of`},
		{"bad duration", step("    - id: a\n      action: pve.collect_evidence\n      params: {asset: x, window: forever}\n"), 9, "parameter window"},
		{"bad integer", step("    - id: a\n      action: net.health_probe\n      params:\n        retries: many\n"), 10, `parameter retries: "many" is not an integer`},
		{"bad boolean", step("    - id: a\n      action: pve.snapshot\n      params: {asset: x, include_ram: maybe}\n"), 9, `parameter include_ram: "maybe" is not a boolean`},
		{"bad cidr list", step("    - id: a\n      action: pve.isolate\n      params: {asset: x, allow: \"10.0.0.0/33\"}\n"), 9, "parameter allow"},
		{"bad time", step("    - id: a\n      action: compliance.notify\n      params: {regime: gdpr, aware_since: yesterday}\n"), 9, `parameter aware_since: "yesterday" is not an RFC 3339 time`},
		{"list as parameter", step("    - id: a\n      action: pve.isolate\n      params:\n        asset: x\n        allow: [10.0.0.0/8]\n"), 11, "must be a scalar"},
		{"params struct check", step("    - id: a\n      action: net.health_probe\n      params: {retries: \"0\"}\n"), 9, "parameter retries: 0 is not in [1, 20]"},
		{"unknown compensation parameter", step("    - id: a\n      action: pve.isolate\n      params: {asset: x}\n      compensation:\n        action: pve.unisolate\n        params: {allow: 10.0.0.0/8}\n"), 12, `action pve.unisolate has no parameter "allow"`},
		{"unknown template field", step("    - id: a\n      action: pve.start\n      params: {asset: \"{{ .Host }}\"}\n"), 9, "unknown template field .Host"},
		{"template syntax", step("    - id: a\n      action: pve.start\n      params: {asset: \"{{ .Asset \"}\n"), 9, "bad template"},
		{"reference to later step", step("    - id: a\n      action: pve.start\n      params: {asset: \"{{ .Steps.b.node }}\"}\n    - id: b\n      action: pve.resolve_asset\n      params: {asset: x}\n"), 9, ".Steps.b.node refers to no earlier step"},
		{"reference to unknown output", step("    - id: b\n      action: pve.resolve_asset\n      params: {asset: x}\n    - id: a\n      action: pve.start\n      params: {asset: \"{{ .Steps.b.colour }}\"}\n"), 12, `has no output "colour"`},
		{"reference to sibling", validHead + "phases:\n  detection:\n    - parallel:\n        - id: b\n          action: pve.resolve_asset\n          params: {asset: x}\n        - id: a\n          action: pve.start\n          params: {asset: \"{{ .Steps.b.node }}\"}\n  containment: []\n  investigation: []\n  remediation: []\n  recovery: []\n  post_incident: []\n", 13, "same parallel group"},
		{"bad when", step("    - id: a\n      action: pve.start\n      params: {asset: x}\n      when: '{{ .Nope }}'\n"), 10, "unknown template field .Nope"},
		{"approval without roles", step("    - id: a\n      action: pve.stop\n      params: {asset: x}\n      approval: {quorum: 1}\n"), 10, "approval without roles"},
		{"step id reused", step("    - id: a\n      action: pve.start\n      params: {asset: x}\n    - id: a\n      action: pve.start\n      params: {asset: x}\n"), 10, `step id "a" reused (first at line 7)`},
		{"bad step id", step("    - id: Bad-Id\n      action: pve.start\n      params: {asset: x}\n"), 7, `step id "Bad-Id" must match`},
		{"compensation not an action", step("    - id: a\n      action: pve.start\n      params: {asset: x}\n      compensation: {action: pve.unstart}\n"), 10, `compensation "pve.unstart" is not an action`},
		{"destructive without approval", step("    - id: a\n      action: pve.stop\n      params: {asset: x}\n"), 7, "destructive action pve.stop needs an approval"},
		{"auto approve outside drill", step("    - id: a\n      action: pve.stop\n      params: {asset: x}\n      approval: {roles: [ir-lead], on_timeout: auto_approve}\n"), 10, "auto_approve needs drill_only"},
		{"bad on_failure", step("    - id: a\n      action: pve.start\n      params: {asset: x}\n      on_failure: retry\n"), 10, `on_failure "retry"`},
		{"unknown step field", step("    - id: a\n      action: pve.start\n      params: {asset: x}\n      colour: red\n"), 10, `unknown field "colour" in step`},
		{"bad risk", step("    - id: a\n      action: pve.stop\n      params: {asset: x}\n      approval: {roles: [ir-lead]}\n      risk: extreme\n"), 11, `risk "extreme" must be normal or high`},
		{"high risk without approval", step("    - id: a\n      action: pve.start\n      params: {asset: x}\n      risk: high\n"), 10, "risk high needs an approval"},
		{"compensates nothing", step("    - id: a\n      action: pve.start\n      params: {asset: x}\n      compensates: zz\n"), 10, `compensates "zz"`},
		{"phase out of order", validHead + "phases:\n  containment: []\n  detection: []\n", 7, `phase "detection" out of order`},
		{"unknown phase", validHead + "phases:\n  lunch: []\n", 6, `unknown phase "lunch"`},
		{"missing phase", validHead + "phases:\n  detection: []\n  containment: []\n", 6, `phase "investigation" missing`},
		{"no severity", "name: test\nversion: \"1\"\ndescription: d\n" + validPhases, 1, "severity_default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := Parse("bad.yaml", []byte(tt.src))
			for _, err := range errs {
				var pe *Error
				if errors.As(err, &pe) && strings.Contains(pe.Msg, tt.want) {
					if pe.Line != tt.line || pe.File != "bad.yaml" {
						t.Errorf("error %q at %s:%d, want line %d", pe.Msg, pe.File, pe.Line, tt.line)
					}
					return
				}
			}
			t.Errorf("no error containing %q; got %v", tt.want, errs)
		})
	}
}

func TestDrillPlaybookAllowsAutoApprove(t *testing.T) {
	src := validHead + "drill: true\nphases:\n  detection:\n    - id: a\n      action: pve.stop\n      params: {asset: x}\n      approval: {roles: [ir-lead], on_timeout: auto_approve}\n    - id: b\n      action: pve.restore\n      params: {asset: x, from: snap}\n" +
		"  containment: []\n  investigation: []\n  remediation: []\n  recovery: []\n  post_incident: []\n"
	if _, errs := Parse("drill.yaml", []byte(src)); len(errs) > 0 {
		t.Fatalf("drill playbook rejected: %v", errs)
	}
}

func TestSetVersionsAndLoadDir(t *testing.T) {
	mk := func(v string) string {
		return strings.Replace(validHead, `version: "1"`, `version: "`+v+`"`, 1) + validPhases
	}
	fsys := fstest.MapFS{
		"a.yaml":   {Data: []byte(mk("1.2.0"))},
		"b.yml":    {Data: []byte(mk("1.10.0"))},
		"c.yaml":   {Data: []byte(mk("1.9.1"))},
		"notes.md": {Data: []byte("not a playbook")},
	}
	set, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := set.Get("test", ""); p == nil || p.Version != "1.10.0" {
		t.Errorf("latest = %+v, want 1.10.0", p)
	}
	if p, err := set.Get("test", "1.2.0"); err != nil || p.File != "a.yaml" {
		t.Errorf("Get 1.2.0 = %v, %v", p, err)
	}
	if _, err := set.Get("test", "9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get unknown version: %v", err)
	}
	if _, err := set.Get("nope", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get unknown name: %v", err)
	}

	fsys["d.yaml"] = &fstest.MapFile{Data: []byte(mk("1.2.0"))}
	if _, err := Load(fsys); err == nil || !strings.Contains(err.Error(), "also defined in a.yaml") {
		t.Errorf("duplicate version: %v", err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(mk("2")), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err = LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := set.Get("test", "2"); err != nil || p.Version != "2" {
		t.Errorf("LoadDir: %v %v", p, err)
	}
}

func TestRender(t *testing.T) {
	d := Data{IncidentID: "INC-1", Asset: "web-1", Severity: "critical", Labels: map[string]string{"instance": "10.0.0.5:9100"},
		Steps: map[string]map[string]string{"resolve": {"ip": "10.0.0.5", "last_backup": ""}}}
	tests := []struct {
		tmpl, want string
		ok         bool
	}{
		{"ir-{{ .IncidentID }}", "ir-INC-1", true},
		{"{{ .Labels.instance }}", "10.0.0.5:9100", true},
		{`{{ or (index .Labels "health_url") (printf "%s:22" .Steps.resolve.ip) }}`, "10.0.0.5:22", true},
		{"{{ .Labels.missing }}", "", false},
		{"{{ .Steps.skipped.node }}", "", false},
		{"plain", "plain", true},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			got, err := Render(tt.tmpl, d)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("Render = %q, %v; want %q ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
	for tmpl, want := range map[string]bool{`{{ eq .Severity "critical" }}`: true, `{{ ne .Steps.resolve.last_backup "" }}`: false} {
		if got, err := RenderBool(tmpl, d); err != nil || got != want {
			t.Errorf("RenderBool(%s) = %v, %v", tmpl, got, err)
		}
	}
	if _, err := RenderBool("{{ .Asset }}", d); err == nil {
		t.Error("RenderBool accepted a non-boolean")
	}
}

func TestResolver(t *testing.T) {
	set, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Set: set}
	res, err := r.Resolve(t.Context(), ResolveInput{Name: "key-compromise"})
	if err != nil || res.Playbook.Name != "key-compromise" {
		t.Fatalf("Resolve = %+v, %v", res.Playbook.Name, err)
	}
	if _, err := r.Resolve(t.Context(), ResolveInput{Name: "nope"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Resolve unknown = %v", err)
	}
}

// TestShippedRiskySteps: the shipped playbooks mark restoring, rotating and
// re-enabling users as high risk (their approval needs a second factor).
func TestShippedRiskySteps(t *testing.T) {
	set, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for pbName, ids := range map[string][]string{
		"container-compromise": {"restore"}, "credential-compromise": {"enable"}, "failed-auth-threshold": {"enable"},
		"data-exfiltration": {"rotate_secret"}, "key-compromise": {"rotate_kek", "rotate_token", "rotate_intake"},
	} {
		pb, err := set.Get(pbName, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if s, _, ok := pb.Step(id); !ok || s.Risk != RiskHigh {
				t.Errorf("%s step %s: risk %q, want high", pbName, id, s.Risk)
			}
		}
	}
}

// TestUnknownAssetTriagePlaybook: the triage of an alert for an asset no
// inventory knows acts on nothing: it only notifies, waits for a
// responder's decision and reports.
func TestUnknownAssetTriagePlaybook(t *testing.T) {
	set, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	pb, err := set.Get("unknown-asset-triage", "")
	if err != nil {
		t.Fatal(err)
	}
	var waits bool
	for _, ph := range pb.Phases {
		for _, e := range ph.Entries {
			for _, s := range e.Steps() {
				if s.Action != "notify.send" && s.Action != "report.generate" {
					t.Errorf("step %s runs %s: triage must take no action on an asset", s.ID, s.Action)
				}
				waits = waits || s.Approval != nil
			}
		}
	}
	if !waits {
		t.Error("no step waits for a responder")
	}
}

// TestAfterContainment: the four phases after containment are, detection,
// containment and names that are no phase are not.
func TestAfterContainment(t *testing.T) {
	for phase, want := range map[string]bool{
		PhaseDetection: false, PhaseContainment: false, PhaseInvestigation: true, PhaseRemediation: true,
		PhaseRecovery: true, PhasePostIncident: true, "": false, "compensation": false,
	} {
		if got := AfterContainment(phase); got != want {
			t.Errorf("AfterContainment(%q) = %v, want %v", phase, got, want)
		}
	}
}
