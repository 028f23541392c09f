package report

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/ledger"
)

// chain makes ledger entries from records, one second apart from t0, the
// first one the incident's opening.
func chain(t *testing.T, t0 time.Time, rs ...activities.LedgerAppendInput) []ledger.Entry {
	t.Helper()
	rs = append([]activities.LedgerAppendInput{{Kind: kindOpened, Actor: "workflow", Opening: &activities.LedgerOpening{Playbook: "pb"}}}, rs...)
	out := make([]ledger.Entry, len(rs))
	for i, r := range rs {
		r.IncidentID, r.Seq = "INC-1", int64(i+1)
		b, err := ledger.CanonicalJSON(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = ledger.Entry{Incident: "INC-1", Seq: int64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), Record: b}
	}
	return out
}

func step(phase, id, action, outcome string) activities.LedgerAppendInput {
	return activities.LedgerAppendInput{Kind: kindStep, Actor: "workflow", Phase: phase, StepID: id, Action: action, Outcome: outcome}
}

// TestFromLedgerMetrics: the response times come from the entries that
// mark them, and only from those.
func TestFromLedgerMetrics(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	approve := func(actor string) activities.LedgerAppendInput {
		return activities.LedgerAppendInput{Kind: kindApproval, Actor: actor, StepID: "isolate", Outcome: outcomeApproved, Approvals: 1, Quorum: 1}
	}
	tests := []struct {
		name                     string
		records                  []activities.LedgerAppendInput
		ack, contain, recoverDur time.Duration
	}{
		{"contained when the isolation finished, not the snapshot after it", []activities.LedgerAppendInput{
			step("containment", "isolate", activities.PVEIsolate, "succeeded"),   // 1s
			step("containment", "revoke", activities.KCLogoutUser, "succeeded"),  // 2s
			step("containment", "snapshot", activities.PVESnapshot, "succeeded"), // 3s
			step("recovery", "start", activities.PVEStart, "succeeded"),          // 4s
			step("recovery", "probe", activities.NetHealthProbe, "succeeded")},   // 5s
			0, 2 * time.Second, 5 * time.Second},
		{"a failed isolation does not contain", []activities.LedgerAppendInput{
			step("containment", "isolate", activities.PVEIsolate, "failed")},
			0, 0, 0},
		{"a person's approval acknowledges; the drill's does not", []activities.LedgerAppendInput{
			approve("system:drill"), approve("keycloak:iru/bob")},
			2 * time.Second, 0, 0},
		{"a failed recovery step means not recovered", []activities.LedgerAppendInput{
			step("recovery", "start", activities.PVEStart, "failed"), step("recovery", "probe", activities.NetHealthProbe, "succeeded")},
			0, 0, 0},
		{"an abort means not recovered", []activities.LedgerAppendInput{
			step("recovery", "start", activities.PVEStart, "succeeded"),
			{Kind: kindAbort, Actor: "keycloak:iru/alice", Reason: "stop"}},
			2 * time.Second, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc, err := FromLedger(chain(t, t0, tt.records...))
			if err != nil {
				t.Fatal(err)
			}
			if inc.TimeToAcknowledge != tt.ack || inc.TimeToContain != tt.contain || inc.TimeToRecover != tt.recoverDur {
				t.Errorf("ack, contain, recover = %v, %v, %v; want %v, %v, %v",
					inc.TimeToAcknowledge, inc.TimeToContain, inc.TimeToRecover, tt.ack, tt.contain, tt.recoverDur)
			}
		})
	}
}

// TestFromLedgerEntriesAndStates: entries without a record (an old store)
// are left out, a record that is not JSON is an error, and the closing
// entry sets the state.
func TestFromLedgerEntriesAndStates(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	es := chain(t, t0, step("containment", "isolate", activities.PVEIsolate, "succeeded"),
		activities.LedgerAppendInput{Kind: kindClosed, Actor: "workflow", Outcome: "resolved", Reason: "all phases completed"})
	old := ledger.Entry{Incident: "INC-1", Seq: 4, Time: t0.Add(time.Hour)}
	inc, err := FromLedger(append(es, old))
	if err != nil {
		t.Fatal(err)
	}
	if inc.State != "resolved" || inc.Reason != "all phases completed" || !inc.ClosedAt.Equal(t0.Add(2*time.Second)) || len(inc.Steps) != 1 {
		t.Errorf("incident = %+v", inc)
	}
	bad := es[1]
	bad.Record = json.RawMessage(`{"Kind":`)
	if _, err := FromLedger([]ledger.Entry{es[0], bad}); err == nil || !strings.Contains(err.Error(), "entry 2") {
		t.Errorf("malformed record: err = %v, want one naming entry 2", err)
	}
}

// TestFromLedgerAlertResolution: a resolution marks its alert resolved
// without counting as an alert, and the alert firing again clears it.
func TestFromLedgerAlertResolution(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	endsAt := t0.Add(90 * time.Second)
	fired := activities.LedgerAppendInput{Kind: kindAlert, Actor: "workflow", Alerts: []activities.LedgerAlert{{Fingerprint: "fp1", Rule: "shell", Count: 1}}}
	resolved := activities.LedgerAppendInput{Kind: kindAlert, Actor: "workflow", Alerts: []activities.LedgerAlert{{Fingerprint: "fp1", ResolvedAt: endsAt}, {Fingerprint: "unknown", ResolvedAt: endsAt}}}
	again := activities.LedgerAppendInput{Kind: kindAlert, Actor: "workflow", Alerts: []activities.LedgerAlert{{Fingerprint: "fp1", Count: 2}}}
	tests := []struct {
		name      string
		entries   []activities.LedgerAppendInput
		count     int
		resolveAt time.Time
	}{
		{"firing", []activities.LedgerAppendInput{fired}, 1, time.Time{}},
		{"resolved", []activities.LedgerAppendInput{fired, resolved}, 1, endsAt},
		{"fires again", []activities.LedgerAppendInput{fired, resolved, again}, 2, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc, err := FromLedger(chain(t, t0, tt.entries...))
			if err != nil {
				t.Fatal(err)
			}
			if len(inc.Alerts) != 1 {
				t.Fatalf("alerts = %+v, want the one that fired", inc.Alerts)
			}
			if a := inc.Alerts[0]; a.Count != tt.count || !a.ResolvedAt.Equal(tt.resolveAt) {
				t.Errorf("alert = count %d resolved %v, want %d and %v", a.Count, a.ResolvedAt, tt.count, tt.resolveAt)
			}
		})
	}
}

// TestFromLedgerContainmentPhase: the containment phase lasts from its
// first step's start to its last step's end, apart from the time to
// contain, which ends when the isolation took effect.
func TestFromLedgerContainmentPhase(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	isolate := step("containment", "isolate", activities.PVEIsolate, "succeeded") // ends at 1s
	isolate.StartedAt = t0.Add(500 * time.Millisecond)
	snapshot := step("containment", "snapshot", activities.PVESnapshot, "succeeded") // ends at 2s
	snapshot.StartedAt = t0.Add(1500 * time.Millisecond)
	slow := step("containment", "backup", activities.PVEBackup, "succeeded") // ends at 3s
	slow.StartedAt = t0.Add(2 * time.Second)
	inc, err := FromLedger(chain(t, t0, isolate, snapshot, slow, step("recovery", "start", activities.PVEStart, "succeeded")))
	if err != nil {
		t.Fatal(err)
	}
	if inc.TimeToContain != time.Second || inc.ContainmentPhase != 2500*time.Millisecond {
		t.Errorf("time to contain %v, containment phase %v; want 1s and 2.5s", inc.TimeToContain, inc.ContainmentPhase)
	}
	md := string(Markdown(Build(Input{Incident: inc})))
	if !strings.Contains(md, "| Containment phase (its steps, evidence included) | 2.5s |") || !strings.Contains(md, "| Time to contain | 1s |") {
		t.Errorf("metrics in the report:\n%s", md)
	}
}
