package parse

import (
	"errors"
	"reflect"
	"testing"
)

func fuzzParser(f *testing.F, parse Func, seeds ...string) {
	for _, s := range seeds {
		f.Add(fixture(f, s))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`[]`))
	f.Add([]byte("{\"a\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		alerts, err := parse(body)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *parse.Error", err, err)
			}
			if alerts != nil {
				t.Fatal("alerts returned with an error")
			}
			return
		}
		if len(alerts) == 0 || len(alerts) > MaxAlerts {
			t.Fatalf("accepted %d alerts", len(alerts))
		}
		if CheckBody(body) != nil {
			t.Fatal("accepted a body CheckBody rejects")
		}
		for i := range alerts {
			if err := invariants(&alerts[i]); err != nil {
				t.Fatalf("alert %d: %v", i, err)
			}
		}
		again, err := parse(body)
		if err != nil || !reflect.DeepEqual(alerts, again) {
			t.Fatal("parsing is not deterministic")
		}
	})
}

func FuzzParseAlertmanager(f *testing.F) {
	fuzzParser(f, ParseAlertmanager, "alertmanager_firing.json", "alertmanager_resolved.json", "alertmanager_grafana.json")
}

func FuzzParseFalco(f *testing.F) {
	fuzzParser(f, ParseFalco, "falco_container_shell.json", "falco_minimal.json")
}

func FuzzParseWazuh(f *testing.F) {
	fuzzParser(f, ParseWazuh, "wazuh_sshd_bruteforce.json", "wazuh_syscheck.json")
}

func FuzzParseGeneric(f *testing.F) {
	fuzzParser(f, ParseGeneric, "generic_single.json", "generic_batch.json")
}
