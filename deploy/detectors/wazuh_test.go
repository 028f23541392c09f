package detectors_test

import (
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/iru-responder/responder/internal/intake/auth"
)

// wazuhIntegration is the <integration> block of the kit's ossec.conf.
type wazuhIntegration struct {
	Name        string `xml:"name"`
	HookURL     string `xml:"hook_url"`
	APIKey      string `xml:"api_key"`
	Level       int    `xml:"level"`
	AlertFormat string `xml:"alert_format"`
}

// runCustomIRU runs the integration script as integratord does: alert
// file, api_key, hook_url.
func runCustomIRU(t *testing.T, alertFile, credential, url string) (int, string) {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	cmd := exec.Command(python, "wazuh/custom-iru", alertFile, credential, url)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("custom-iru: %v", err)
	return 0, ""
}

// TestWazuhKit runs wazuh/custom-iru with a Wazuh alert file against the
// intake: signed with the HMAC secret it is accepted and routed to the
// failed-auth playbook for the agent's asset; with an API key too; with a
// wrong secret it is refused, the script fails and nothing is spooled.
func TestWazuhKit(t *testing.T) {
	b, err := os.ReadFile("wazuh/ossec.conf.xml")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Integrations []wazuhIntegration `xml:"integration"`
	}
	if err := xml.Unmarshal(b, &conf); err != nil {
		t.Fatalf("ossec.conf block: %v", err)
	}
	if len(conf.Integrations) != 1 {
		t.Fatalf("%d integration blocks", len(conf.Integrations))
	}
	ig := conf.Integrations[0]
	if ig.Name != "custom-iru" || ig.AlertFormat != "json" || !strings.HasPrefix(ig.APIKey, "hmac:") ||
		ig.HookURL != "https://iru.example.internal/v1/alerts/wazuh" || ig.Level < 1 {
		t.Errorf("integration block %+v", ig)
	}
	if fi, err := os.Stat("wazuh/custom-iru"); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("custom-iru must be executable: %v %v", fi.Mode(), err)
	}

	const secret, key = "wazuh-kit-hmac-secret-0123456789abcdef", "wazuh-kit-api-key-0123456789"
	in := newKitIntake(t, auth.Detector{Name: "wazuh", Format: "wazuh", HMACSecrets: []auth.HMACSecret{{ID: "w1", Secret: secret}},
		APIKeys: []auth.APIKey{{ID: "k1", SHA256: auth.HashKey("k1", key)}}})
	url := in.URL + "/v1/alerts/wazuh"

	tests := []struct {
		name       string
		credential string
		wantCode   int
		wantBy     string
	}{
		{"wrong secret", "hmac:not-the-secret-0123456789abcdef", 1, ""},
		{"wrong key", "not-the-key", 1, ""},
		{"signed", "hmac:" + secret, 0, "wazuh/w1"},
		{"api key", key, 0, "wazuh/k1"},
		{"no credential", "hmac:", 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(in.records(t))
			code, out := runCustomIRU(t, "testdata/wazuh-alert.json", tt.credential, url)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tt.wantCode, out)
			}
			recs := in.records(t)[before:]
			if tt.wantBy == "" {
				if len(recs) != 0 {
					t.Fatalf("%d records spooled from a refused run", len(recs))
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1 (%s)", len(recs), out)
			}
			r := recs[0]
			if r.OpenedBy != tt.wantBy || r.Alert.Source != "wazuh" || r.Alert.Asset != "web-1" || !r.Mapped || r.Playbook != "failed-auth-threshold" {
				t.Errorf("record %+v", r)
			}
		})
	}
	if code, out := runCustomIRU(t, "testdata/missing.json", "hmac:"+secret, url); code != 2 {
		t.Errorf("missing alert file: exit %d: %s", code, out)
	}
}
