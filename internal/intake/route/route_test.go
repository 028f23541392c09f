package route

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/iru-responder/responder/internal/intake/parse"
)

func input(a parse.Alert, asset string, tags ...string) Input {
	return Input{Source: a.Source, Rule: a.Rule, Severity: a.Severity, Labels: a.Labels, Asset: asset, AssetTags: tags}
}

// route is rs.Route(in), checking that rs.Choose(in) (the intake's
// routing, without the words) decides the same.
func route(t *testing.T, rs *Rules, in Input) Decision {
	t.Helper()
	d := rs.Route(in)
	c := rs.Choose(in)
	if c.Playbook != d.Playbook || c.RuleName != d.RuleName || !slices.Equal(c.CorrelateBy, d.CorrelateBy) || c.Key(in) != d.Key(in) {
		t.Errorf("Choose = %s by %q (%v), Route = %s by %q (%v)", c.Playbook, c.RuleName, c.CorrelateBy, d.Playbook, d.RuleName, d.CorrelateBy)
	}
	if c.Reason != "" || c.Skipped != nil {
		t.Errorf("Choose built words: %q %q", c.Reason, c.Skipped)
	}
	return d
}

func TestDefaultRulesOnFixtures(t *testing.T) {
	rs, err := Default()
	if err != nil {
		t.Fatalf("default rules: %v", err)
	}
	tests := []struct {
		file     string
		format   string
		i        int
		playbook string
		rule     string
	}{
		{"falco_container_shell.json", parse.SourceFalco, 0, "container-compromise", "falco-container"},
		{"falco_minimal.json", parse.SourceFalco, 0, "container-compromise", ""},
		{"wazuh_sshd_bruteforce.json", parse.SourceWazuh, 0, "failed-auth-threshold", "wazuh-auth-failure-frequency"},
		{"alertmanager_resolved.json", parse.SourceAlertmanager, 0, "failed-auth-threshold", "keycloak-failed-logins-alert"},
		{"alertmanager_firing.json", parse.SourceAlertmanager, 0, "data-exfiltration", "exfiltration"},
		{"alertmanager_grafana.json", parse.SourceAlertmanager, 0, "data-exfiltration", "exfiltration"},
		{"generic_single.json", parse.SourceGeneric, 0, "key-compromise", "key-material"},
		{"generic_batch.json", parse.SourceGeneric, 0, "failed-auth-threshold", "keycloak-failed-logins-count"},
		{"generic_batch.json", parse.SourceGeneric, 1, "data-exfiltration", "exfiltration"},
		{"wazuh_syscheck.json", parse.SourceWazuh, 0, "container-compromise", ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("..", "parse", "testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			p, _ := parse.ForFormat(tt.format)
			alerts, err := p(body)
			if err != nil {
				t.Fatal(err)
			}
			d := route(t, rs, input(alerts[tt.i], "web-1"))
			if d.Playbook != tt.playbook || d.RuleName != tt.rule {
				t.Errorf("Route = %s by %q (%s), want %s by %q", d.Playbook, d.RuleName, d.Reason, tt.playbook, tt.rule)
			}
			if d.Reason == "" {
				t.Error("empty reason")
			}
			if got, want := d.Key(input(alerts[tt.i], "web-1")), tt.playbook+":web-1"; got != want {
				t.Errorf("key = %q, want %q", got, want)
			}
		})
	}
}

func TestDefaultRulesCredentialAndThreshold(t *testing.T) {
	rs, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		in       Input
		playbook string
	}{
		{"keycloak admin login", Input{Source: "generic", Rule: "KeycloakAdminLoginNewCountry", Severity: "high"}, "credential-compromise"},
		{"generic failed logins under threshold", Input{Source: "generic", Rule: "LoginFailureBurst", Labels: map[string]string{"count": "4"}}, "container-compromise"},
		{"generic failed logins over threshold", Input{Source: "generic", Rule: "LoginFailureBurst", Labels: map[string]string{"count": "5"}}, "failed-auth-threshold"},
		{"wazuh single failure few times", Input{Source: "wazuh", Rule: "5503", Labels: map[string]string{"rule.groups": "pam,authentication_failed", "rule.firedtimes": "2"}}, "container-compromise"},
		{"wazuh single failure many times", Input{Source: "wazuh", Rule: "5503", Labels: map[string]string{"rule.groups": "pam,authentication_failed", "rule.firedtimes": "7"}}, "failed-auth-threshold"},
		{"wazuh credential access", Input{Source: "wazuh", Rule: "92652", Labels: map[string]string{"rule.mitre.tactic": "Credential Access"}}, "credential-compromise"},
		{"dns tunnel", Input{Source: "alertmanager", Rule: "DNSTunnelSuspected"}, "data-exfiltration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := route(t, rs, tt.in); d.Playbook != tt.playbook {
				t.Errorf("Route = %s (%s), want %s", d.Playbook, d.Reason, tt.playbook)
			}
		})
	}
}

const custom = `
default_playbook: triage
rules:
  - name: exact-rule
    match: {rule: "Write below etc", sources: [falco]}
    playbook: etc-write
    correlate_by: [playbook, asset, rule]
  - name: prod-high
    match:
      min_severity: high
      asset_tags: [prod]
      labels: {env: prod}
    playbook: prod-incident
    correlate_by: [playbook, label:team]
`

func TestCustomRules(t *testing.T) {
	rs, err := Parse([]byte(custom))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		in       Input
		playbook string
		key      string
		skipped  int
	}{
		{"exact", Input{Source: "falco", Rule: "Write below etc", Asset: "web-1"}, "etc-write", "etc-write:web-1:Write below etc", 0},
		{"exact other source", Input{Source: "wazuh", Rule: "Write below etc", Asset: "web-1"}, "triage", "triage:web-1", 2},
		{"severity and tags", Input{Source: "wazuh", Rule: "x", Severity: "critical", Asset: "db-1", AssetTags: []string{"prod", "db"}, Labels: map[string]string{"env": "prod", "team": "dba"}}, "prod-incident", "prod-incident:dba", 1},
		{"severity too low", Input{Source: "wazuh", Rule: "x", Severity: "medium", Asset: "db-1", AssetTags: []string{"prod"}, Labels: map[string]string{"env": "prod"}}, "triage", "triage:db-1", 2},
		{"missing tag", Input{Source: "wazuh", Rule: "x", Severity: "high", Asset: "db-1", Labels: map[string]string{"env": "prod"}}, "triage", "triage:db-1", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := route(t, rs, tt.in)
			if d.Playbook != tt.playbook {
				t.Fatalf("Route = %s (%s), want %s", d.Playbook, d.Reason, tt.playbook)
			}
			if got := d.Key(tt.in); got != tt.key {
				t.Errorf("key = %q, want %q", got, tt.key)
			}
			if len(d.Skipped) != tt.skipped {
				t.Errorf("skipped = %q, want %d entries", d.Skipped, tt.skipped)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"no default", "rules: []", "default_playbook"},
		{"unknown key", "default_playbook: a\nrulez: []", "rulez"},
		{"bad regex", "default_playbook: a\nrules: [{name: r, playbook: p, match: {rule_regex: '('}}]", "rule_regex"},
		{"bad severity", "default_playbook: a\nrules: [{name: r, playbook: p, match: {min_severity: huge}}]", "min_severity"},
		{"bad source", "default_playbook: a\nrules: [{name: r, playbook: p, match: {sources: [splunk]}}]", "splunk"},
		{"duplicate", "default_playbook: a\nrules: [{name: r, playbook: p}, {name: r, playbook: q}]", "duplicate"},
		{"no playbook", "default_playbook: a\nrules: [{name: r}]", "playbook"},
		{"bad key part", "default_playbook: a\nrules: [{name: r, playbook: p, correlate_by: [host]}]", "host"},
		{"rule and regex", "default_playbook: a\nrules: [{name: r, playbook: p, match: {rule: x, rule_regex: y}}]", "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
