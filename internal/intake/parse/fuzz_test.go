package parse

import (
	"errors"
	"reflect"
	"testing"
)

// fuzzParser fuzzes a parser with the byte caps on (the default budget,
// as the intake applies it): errors are *Error or *BudgetError, accepted
// alerts keep the parsers' invariants and fit the budget.
func fuzzParser(f *testing.F, raw Func, seeds ...string) {
	budget := DefaultBudget()
	parse := Checked(raw, budget)
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
			var be *BudgetError
			if !errors.As(err, &pe) && !errors.As(err, &be) {
				t.Fatalf("error %T %v is not a *parse.Error or *parse.BudgetError", err, err)
			}
			if be != nil && (be.Size <= be.Limit || be.Field == "" && be.Limit != budget.MaxAlertBytes) {
				t.Fatalf("budget error %+v", be)
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
			if n := EncodedLen(alerts[i].Labels); n > budget.MaxLabelsBytes {
				t.Fatalf("alert %d: labels %d bytes encoded, over the budget", i, n)
			}
			if n := EncodedLen(alerts[i].Summary); n > budget.MaxSummaryBytes {
				t.Fatalf("alert %d: summary %d bytes encoded, over the budget", i, n)
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
