package workflows

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
)

// TestLedgerRecordKey: the key of a record is the same after a JSON round
// trip (as the ledger stores it) and whatever the addresses of its
// pointed-to parts, and differs when the event differs. Every pointer field
// of the record is filled, so a new one the key prints by address fails.
func TestLedgerRecordKey(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	fill := func() activities.LedgerAppendInput {
		r := activities.LedgerAppendInput{IncidentID: "INC-1", Seq: 7, At: at, Kind: "step", StepID: "isolate", Outcome: "succeeded",
			StartedAt: at.Add(-time.Second), Outputs: map[string]string{"method": "firewall"}, Params: map[string]string{}}
		v := reflect.ValueOf(&r).Elem()
		for i := range v.NumField() {
			if f := v.Field(i); f.Kind() == reflect.Pointer {
				f.Set(reflect.New(f.Type().Elem()))
			}
		}
		r.Opening.Playbook = "container-compromise"
		return r
	}
	a, b := fill(), fill()
	b.Seq, b.At = 9, at.Add(time.Minute)
	var c activities.LedgerAppendInput
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &c); err != nil {
		t.Fatal(err)
	}
	other := fill()
	other.Outcome = "failed"
	tests := []struct {
		name string
		x, y activities.LedgerAppendInput
		same bool
	}{
		{"other slot, time and pointers", a, b, true},
		{"JSON round trip", a, c, true},
		{"another outcome", a, other, false},
	}
	for _, tt := range tests {
		if got := ledgerRecordKey(tt.x) == ledgerRecordKey(tt.y); got != tt.same {
			t.Errorf("%s: same = %v, want %v\n%s\n%s", tt.name, got, tt.same, ledgerRecordKey(tt.x), ledgerRecordKey(tt.y))
		}
	}
}
