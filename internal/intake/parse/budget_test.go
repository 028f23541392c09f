package parse

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestEncodedLenDoesNotInflate(t *testing.T) {
	for _, v := range []any{"<<<>>>&&&", map[string]string{"a": "<b>", "c": "\u2028\n\t\"\\"}, []int{1, 2}, "héllo"} {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if EncodedLen(v) != len(b) {
			t.Errorf("EncodedLen(%v) = %d, Marshal %d bytes", v, EncodedLen(v), len(b))
		}
		var back any
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("Marshal(%v) is not JSON: %v", v, err)
		}
	}
	lt := strings.Repeat("<", 1000)
	escaped, _ := json.Marshal(lt)
	if n := EncodedLen(lt); n != 1002 || len(escaped) != 6002 {
		t.Errorf("'<' x1000: %d bytes without escaping (json.Marshal %d)", n, len(escaped))
	}
}

func TestBudgetCheck(t *testing.T) {
	b := DefaultBudget()
	ok := Alert{Rule: "r", Fingerprint: "f", Summary: "s", Labels: map[string]string{"a": strings.Repeat("<", 7<<10)}}
	cases := []struct {
		name  string
		mod   func(a *Alert)
		field string
	}{
		{"within", func(*Alert) {}, ""},
		{"one label", func(a *Alert) { a.Labels["big"] = strings.Repeat("<", 8<<10) }, "x.labels.big"},
		{"all labels", func(a *Alert) {
			for _, k := range []string{"b", "c", "d", "e", "f", "g"} {
				a.Labels[k] = strings.Repeat("x", 7<<10)
			}
		}, "x.labels"},
		{"summary", func(a *Alert) { a.Summary = strings.Repeat("\x01", 1000) }, "x.summary"},
		{"rule", func(a *Alert) { a.Rule = strings.Repeat("r", 1<<10) }, "x.rule"},
		{"fingerprint", func(a *Alert) { a.Fingerprint = strings.Repeat("f", 1<<10) }, "x.fingerprint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := ok
			a.Labels = map[string]string{}
			for k, v := range ok.Labels {
				a.Labels[k] = v
			}
			c.mod(&a)
			err := b.Check(&a, "x")
			var be *BudgetError
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.As(err, &be) || be.Field != c.field || be.Size <= be.Limit {
				t.Fatalf("err %v, want a budget error on %s", err, c.field)
			}
		})
	}
	if err := b.CheckRecord(b.MaxAlertBytes+1, "alerts[2]"); err == nil || !strings.Contains(err.Error(), "alerts[2]") {
		t.Errorf("CheckRecord over: %v", err)
	}
}

func TestBudgetValidate(t *testing.T) {
	for _, c := range []struct {
		b  Budget
		ok bool
	}{
		{Budget{}, true},
		{Budget{MaxAlertBytes: 32 << 10, MaxLabelsBytes: 24 << 10}, true},
		{Budget{MaxAlertBytes: 1 << 20}, false},
		{Budget{MaxAlertBytes: 16 << 10}, false}, // labels default 48 KiB > alert
		{Budget{MaxLabelBytes: 40 << 10, MaxLabelsBytes: 32 << 10}, false},
	} {
		if err := c.b.Validate(); (err == nil) != c.ok {
			t.Errorf("Validate(%+v) = %v", c.b, err)
		}
	}
}

// TestLongSummaryKeptInLabel: normalisation cuts the summary to one line
// but keeps the whole text in a label, so nothing is lost silently.
func TestLongSummaryKeptInLabel(t *testing.T) {
	long := "first line\nsecond line with details"
	a, err := ParseGeneric([]byte(`{"source":"s","rule":"r","severity":"high","asset":"a","summary":` + quote(long) + `,"observed_at":"2024-05-01T00:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if a[0].Summary != "first line" || a[0].Labels["summary"] != long {
		t.Errorf("summary %q, label %q", a[0].Summary, a[0].Labels["summary"])
	}
	a, err = ParseGeneric([]byte(`{"source":"s","rule":"r","severity":"high","asset":"a","summary":"short","observed_at":"2024-05-01T00:00:00Z"}`))
	if err != nil || a[0].Labels["summary"] != "" {
		t.Errorf("short summary copied into a label: %v %v", err, a[0].Labels)
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
