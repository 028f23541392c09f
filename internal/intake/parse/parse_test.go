package parse

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/iru-responder/responder/internal/severity"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

func TestFixtures(t *testing.T) {
	tests := []struct {
		file  string
		parse Func
		n     int
		check func(t *testing.T, a []Alert)
	}{
		{"alertmanager_firing.json", ParseAlertmanager, 2, func(t *testing.T, a []Alert) {
			want := time.Date(2024, 5, 1, 12, 34, 56, 789123456, time.UTC)
			if !a[0].ObservedAt.Equal(want) {
				t.Errorf("startsAt = %v, want %v", a[0].ObservedAt, want)
			}
			eq(t, "rule", a[0].Rule, "ContainerHighEgress")
			eq(t, "severity", a[0].Severity, severity.Critical)
			eq(t, "summary", a[0].Summary, "web-1 sends 48 MiB/s to the internet")
			eq(t, "fingerprint", a[0].Fingerprint, "5b3c8a0e1f2d4c6b")
			eq(t, "label vmid", a[0].Labels["vmid"], "121")
			eq(t, "annotation", a[0].Labels["annotation.description"], "Egress above 40 MiB/s for 5 minutes.\nCheck the container.")
			hints(t, a[0].AssetHints, "name=web-1 vmid=121 ip=10.10.0.21 node=pve1")
			hints(t, a[1].AssetHints, "hostname=db-1.lxc.example.org")
			if a[0].Resolved || a[1].Resolved || !a[0].EndedAt.IsZero() {
				t.Error("firing alerts marked resolved")
			}
			if !a[1].ObservedAt.Equal(time.Date(2024, 5, 1, 10, 35, 1, 0, time.UTC)) {
				t.Errorf("offset time = %v", a[1].ObservedAt)
			}
		}},
		{"alertmanager_resolved.json", ParseAlertmanager, 1, func(t *testing.T, a []Alert) {
			if !a[0].Resolved {
				t.Error("resolved alert not marked resolved")
			}
			if want := time.Date(2024, 5, 1, 11, 20, 0, 500000000, time.UTC); !a[0].EndedAt.Equal(want) {
				t.Errorf("endsAt = %v, want %v", a[0].EndedAt, want)
			}
			eq(t, "severity", a[0].Severity, severity.Medium)
			hints(t, a[0].AssetHints, "name=keycloak-1")
		}},
		{"alertmanager_grafana.json", ParseAlertmanager, 1, func(t *testing.T, a []Alert) {
			eq(t, "severity", a[0].Severity, severity.High)
			eq(t, "summary", a[0].Summary, "Long random subdomains queried at a high rate")
			hints(t, a[0].AssetHints, "hostname=app-3")
		}},
		{"falco_container_shell.json", ParseFalco, 1, func(t *testing.T, a []Alert) {
			// 1714566896789012345 is not representable as a float64: an exact
			// decode is the only way to get this time back.
			want := time.Unix(0, 1714566896789012345).UTC()
			if !a[0].ObservedAt.Equal(want) {
				t.Errorf("evt.time = %v, want %v", a[0].ObservedAt.UnixNano(), want.UnixNano())
			}
			eq(t, "evt.time label", a[0].Labels["evt.time"], "1714566896789012345")
			eq(t, "severity", a[0].Severity, severity.Low)
			eq(t, "fingerprint", a[0].Fingerprint, "7b1f0f4e-3c3a-4d61-9a31-2d5e0f7f0a11")
			eq(t, "tags", a[0].Labels["tags"], "container,maturity_stable,mitre_execution,shell,T1059")
			eq(t, "array field", a[0].Labels["evt.arg.flags"], "O_RDONLY,O_CLOEXEC")
			eq(t, "negative number", a[0].Labels["user.loginuid"], "-1")
			if _, ok := a[0].Labels["k8s.ns.name"]; ok {
				t.Error("null output field kept as a label")
			}
			hints(t, a[0].AssetHints, "name=web-1 name=3ad7b26ded6d hostname=pve1")
		}},
		{"falco_minimal.json", ParseFalco, 1, func(t *testing.T, a []Alert) {
			eq(t, "severity", a[0].Severity, severity.Medium)
			if got := a[0].ObservedAt.UnixNano(); got != 1714567200000000001 {
				t.Errorf("evt.time = %d", got)
			}
			hints(t, a[0].AssetHints, "")
		}},
		{"wazuh_sshd_bruteforce.json", ParseWazuh, 1, func(t *testing.T, a []Alert) {
			if !a[0].ObservedAt.Equal(time.Date(2024, 5, 1, 12, 34, 56, 789e6, time.UTC)) {
				t.Errorf("timestamp = %v", a[0].ObservedAt)
			}
			eq(t, "rule", a[0].Rule, "5712")
			eq(t, "severity", a[0].Severity, severity.Medium)
			eq(t, "groups", a[0].Labels["rule.groups"], "syslog,sshd,authentication_failures")
			eq(t, "mitre", a[0].Labels["rule.mitre.id"], "T1110")
			eq(t, "data", a[0].Labels["data.srcip"], "203.0.113.7")
			eq(t, "fingerprint", a[0].Fingerprint, "1714566896.1234567")
			hints(t, a[0].AssetHints, "name=web-1 ip=10.10.0.21")
		}},
		{"wazuh_syscheck.json", ParseWazuh, 1, func(t *testing.T, a []Alert) {
			if !a[0].ObservedAt.Equal(time.Date(2024, 5, 1, 15, 30, 0, 0, time.UTC)) {
				t.Errorf("timestamp with -0230 = %v", a[0].ObservedAt.UTC())
			}
			eq(t, "severity", a[0].Severity, severity.Medium)
			hints(t, a[0].AssetHints, "name=kc-1")
		}},
		{"generic_single.json", ParseGeneric, 1, func(t *testing.T, a []Alert) {
			eq(t, "source", a[0].Source, SourceGeneric)
			eq(t, "source label", a[0].Labels["source"], "hsm-monitor")
			eq(t, "severity", a[0].Severity, severity.Critical)
			eq(t, "fingerprint", a[0].Fingerprint, "hsm-export-0001")
			hints(t, a[0].AssetHints, "name=vault-1")
		}},
		{"generic_batch.json", ParseGeneric, 2, func(t *testing.T, a []Alert) {
			eq(t, "rule", a[1].Rule, "EgressVolumeAnomaly")
			if a[1].Fingerprint == "" || a[0].Fingerprint == a[1].Fingerprint {
				t.Errorf("default fingerprints %q %q", a[0].Fingerprint, a[1].Fingerprint)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			alerts, err := tt.parse(fixture(t, tt.file))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if len(alerts) != tt.n {
				t.Fatalf("got %d alerts, want %d", len(alerts), tt.n)
			}
			for i := range alerts {
				if err := invariants(&alerts[i]); err != nil {
					t.Errorf("alert %d: %v", i, err)
				}
			}
			tt.check(t, alerts)
		})
	}
}

func eq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func hints(t *testing.T, h []AssetHint, want string) {
	t.Helper()
	parts := make([]string, 0, len(h))
	for _, x := range h {
		parts = append(parts, string(x.Kind)+"="+x.Value)
	}
	if got := strings.Join(parts, " "); got != want {
		t.Errorf("asset hints = %q, want %q", got, want)
	}
}

func TestRejects(t *testing.T) {
	am := string(fixture(t, "alertmanager_firing.json"))
	amBad := func(old, new string) string {
		if !strings.Contains(am, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(am, old, new, 1)
	}
	fa := string(fixture(t, "falco_container_shell.json"))
	wz := string(fixture(t, "wazuh_sshd_bruteforce.json"))
	tests := []struct {
		name  string
		parse Func
		body  string
		field string
		msg   string
	}{
		{"empty", ParseAlertmanager, "  ", "", "empty body"},
		{"invalid utf8", ParseGeneric, "{\"source\":\"a\xff\"}", "", "not valid UTF-8"},
		{"nul byte", ParseFalco, "{\"rule\":\"a\x00\"}", "", "NUL byte"},
		{"escaped nul", ParseFalco, strings.Replace(fa, `"rule": "Terminal shell in container"`, `"rule": "Terminal\u0000shell"`, 1), "", "NUL character"},
		{"syntax", ParseAlertmanager, `{"version":`, "", "truncated JSON"},
		{"trailing data", ParseAlertmanager, am + "{}", "", "unexpected data"},
		{"am version", ParseAlertmanager, amBad(`"version": "4"`, `"version": "3"`), "version", "unsupported version"},
		{"am no alerts", ParseAlertmanager, `{"version":"4","status":"firing"}`, "alerts", "required"},
		{"am empty alerts", ParseAlertmanager, `{"version":"4","status":"firing","alerts":[]}`, "alerts", "must not be empty"},
		{"am bad startsAt", ParseAlertmanager, amBad(`"startsAt": "2024-05-01T12:35:01+02:00"`, `"startsAt": "yesterday"`), "alerts[1].startsAt", "RFC 3339"},
		{"am bad endsAt", ParseAlertmanager, amBad(`"endsAt": "0001-01-01T00:00:00Z"`, `"endsAt": "2024-13-01T00:00:00Z"`), "alerts[0].endsAt", "RFC 3339"},
		{"am label type", ParseAlertmanager, amBad(`"vmid": "121"`, `"vmid": 121`), "alerts[0].labels", "expected string, got number"},
		{"am no alertname", ParseAlertmanager, amBad(`"labels": {"alertname": "ContainerHighEgress", "instance": "db-1`, `"labels": {"instance": "db-1`), "alerts[1].labels.alertname", "required"},
		{"am alert status", ParseAlertmanager, amBad(`"status": "firing",
      "labels"`, `"status": "burning",
      "labels"`), "alerts[0].status", "firing or resolved"},
		{"falco no rule", ParseFalco, strings.Replace(fa, `"rule": "Terminal shell in container"`, `"rule": ""`, 1), "rule", "required"},
		{"falco priority", ParseFalco, strings.Replace(fa, `"priority": "Notice"`, `"priority": "Loud"`, 1), "priority", "unknown priority"},
		{"falco evt.time float", ParseFalco, strings.Replace(fa, `1714566896789012345`, `1.714566896789012345e18`, 1), "output_fields.evt.time", "positive integer"},
		{"falco evt.time string", ParseFalco, strings.Replace(fa, `1714566896789012345`, `"1714566896789012345"`, 1), "output_fields.evt.time", "must be an integer"},
		{"falco time", ParseFalco, strings.Replace(fa, `"time": "2024-05-01T12:34:56.789012345Z"`, `"time": "12:34"`, 1), "time", "RFC 3339"},
		{"wazuh level", ParseWazuh, strings.Replace(wz, `"level": 10`, `"level": 16`, 1), "rule.level", "0 to 15"},
		{"wazuh level type", ParseWazuh, strings.Replace(wz, `"level": 10`, `"level": "10"`, 1), "rule.level", "must be an integer"},
		{"wazuh firedtimes", ParseWazuh, strings.Replace(wz, `"firedtimes": 3`, `"firedtimes": 3.5`, 1), "rule.firedtimes", "must be an integer"},
		{"am truncated", ParseAlertmanager, strings.Replace(am, `"truncatedAlerts": 0`, `"truncatedAlerts": -1`, 1), "truncatedAlerts", "must be an integer"},
		{"wazuh timestamp", ParseWazuh, strings.Replace(wz, `2024-05-01T12:34:56.789+0000`, `2024-05-01 12:34:56`, 1), "timestamp", "like"},
		{"wazuh agent", ParseWazuh, strings.Replace(wz, `"agent": {"id": "003", "name": "web-1", "ip": "10.10.0.21"},`, ``, 1), "agent", "required"},
		{"generic unknown field", ParseGeneric, `{"source":"s","rule":"r","severity":"high","asset":"a","summary":"x","observed_at":"2024-05-01T00:00:00Z","colour":"red"}`, "colour", "unknown field"},
		{"generic severity", ParseGeneric, `{"source":"s","rule":"r","severity":"HIGH","asset":"a","summary":"x","observed_at":"2024-05-01T00:00:00Z"}`, "severity", "must be critical"},
		{"generic batch field", ParseGeneric, `[{"source":"s","rule":"r","severity":"high","asset":"a","summary":"x","observed_at":"2024-05-01T00:00:00Z"},{"source":"s","rule":"r","severity":"high","asset":"a","summary":"x","observed_at":"2024-05-01"}]`, "[1].observed_at", "RFC 3339"},
		{"generic batch missing", ParseGeneric, `[{"source":"s","rule":"r","severity":"high","summary":"x","observed_at":"2024-05-01T00:00:00Z"}]`, "[0].asset", "required"},
		{"generic not object", ParseGeneric, `[1]`, "[0]", "expected an alert object"},
		{"generic empty batch", ParseGeneric, `[]`, "", "at least one alert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alerts, err := tt.parse([]byte(tt.body))
			if err == nil {
				t.Fatalf("accepted %d alerts, want an error", len(alerts))
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *parse.Error", err, err)
			}
			if pe.Field != tt.field || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("error = {field %q, msg %q}, want field %q, msg containing %q", pe.Field, pe.Msg, tt.field, tt.msg)
			}
			if alerts != nil {
				t.Errorf("returned %d alerts with the error", len(alerts))
			}
		})
	}
}

func TestSeverityMaps(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Emergency", severity.Critical}, {"Alert", severity.Critical}, {"Critical", severity.Critical},
		{"Error", severity.High}, {"Warning", severity.Medium}, {"Notice", severity.Low},
		{"Informational", severity.Info}, {"Debug", severity.Info},
	} {
		t.Run("falco "+tt.in, func(t *testing.T) {
			got, ok := falcoSeverity(tt.in)
			if !ok || got != tt.want {
				t.Errorf("falcoSeverity(%q) = %q %v, want %q", tt.in, got, ok, tt.want)
			}
		})
	}
	for level, want := range map[int64]string{0: severity.Info, 2: severity.Info, 3: severity.Low, 6: severity.Low, 7: severity.Medium, 10: severity.Medium, 11: severity.High, 13: severity.High, 14: severity.Critical, 15: severity.Critical} {
		if got := wazuhSeverity(level); got != want {
			t.Errorf("wazuhSeverity(%d) = %q, want %q", level, got, want)
		}
	}
}

func TestForFormat(t *testing.T) {
	for _, f := range []string{SourceAlertmanager, SourceFalco, SourceWazuh, SourceGeneric} {
		if _, err := ForFormat(f); err != nil {
			t.Errorf("ForFormat(%q): %v", f, err)
		}
	}
	if _, err := ForFormat("splunk"); err == nil {
		t.Error("ForFormat accepted an unknown format")
	}
}

// invariants holds for every accepted alert.
func invariants(a *Alert) error {
	switch {
	case a.Source != SourceAlertmanager && a.Source != SourceFalco && a.Source != SourceWazuh && a.Source != SourceGeneric:
		return errors.New("unknown source " + a.Source)
	case strings.TrimSpace(a.Rule) == "":
		return errors.New("empty rule")
	case severity.Rank(a.Severity) < 0:
		return errors.New("bad severity " + a.Severity)
	case a.Fingerprint == "":
		return errors.New("empty fingerprint")
	case a.ObservedAt.IsZero():
		return errors.New("zero observed time")
	case a.Labels == nil:
		return errors.New("nil labels")
	case len(a.Summary) > 512 || strings.ContainsAny(a.Summary, "\r\n"):
		return errors.New("summary is not one short line")
	}
	strs := []string{a.Rule, a.Summary, a.Fingerprint, a.Severity}
	for k, v := range a.Labels {
		strs = append(strs, k, v)
	}
	for _, h := range a.AssetHints {
		if h.Value == "" || h.Kind == "" {
			return errors.New("empty asset hint")
		}
		strs = append(strs, h.Value)
	}
	for _, s := range strs {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return errors.New("invalid UTF-8 or NUL in " + s)
		}
	}
	return nil
}
