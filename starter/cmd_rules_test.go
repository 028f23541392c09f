package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRulesTest(t *testing.T) {
	t.Setenv("IRU_INTAKE_CONFIG", "")
	t.Setenv("IRU_PVE_URL", "")
	tests := []struct {
		format, fixture string
		want            []string
	}{
		{"falco", "falco_container_shell.json", []string{"playbook  container-compromise", `rule "falco-container" matched`, "incident  container-compromise:"}},
		{"wazuh", "wazuh_sshd_bruteforce.json", []string{"playbook  failed-auth-threshold"}},
		{"alertmanager", "alertmanager_firing.json", []string{"playbook  "}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			root := newRoot()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetArgs([]string{"rules", "test", "--format", tt.format, "../internal/intake/parse/testdata/" + tt.fixture})
			if err := root.Execute(); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	// A payload that is not the format it claims is a clear error.
	root := newRoot()
	root.SetOut(&bytes.Buffer{})
	root.SetArgs([]string{"rules", "test", "--format", "falco", "../internal/intake/parse/testdata/wazuh_syscheck.json"})
	if err := root.Execute(); err == nil {
		t.Error("a wazuh payload parsed as falco")
	}
}
