package workflows

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/iru-responder/responder/activities"
)

// TestResolvedAlerts: a detector's resolution marks the incident's alert
// resolved with the detector's time, is not counted as another alert, and
// when every alert is resolved before containment ends the responders are
// told (timeline and notification) while the playbook goes on untouched.
// After containment, or while an alert still fires, nobody is told; an
// alert firing again clears its resolution.
func TestResolvedAlerts(t *testing.T) {
	endsAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	resolution := func(id, fp string) Alert {
		return Alert{ID: id, Fingerprint: fp, Source: "alertmanager", Severity: "high", Resolved: true, ResolvedAt: endsAt}
	}
	tests := []struct {
		name string
		// signals are sent 10 s, 20 s, … after the start; isolation takes a minute.
		signals      [][]Alert
		wantResolved []bool // per distinct alert, at the end
		wantReceived int
		wantNotified bool
	}{
		{name: "all resolved during containment", signals: [][]Alert{{resolution("r1", "fp1")}},
			wantResolved: []bool{true}, wantReceived: 1, wantNotified: true},
		{name: "redelivered resolution counted once", signals: [][]Alert{{resolution("r1", "fp1"), resolution("r1", "fp1")}, {resolution("r2", "fp1")}},
			wantResolved: []bool{true}, wantReceived: 1, wantNotified: true},
		{name: "one of two still firing", signals: [][]Alert{{{ID: "a2", Fingerprint: "fp2", Severity: "high"}}, {resolution("r1", "fp1")}},
			wantResolved: []bool{true, false}, wantReceived: 2, wantNotified: false},
		{name: "fires again after resolution", signals: [][]Alert{{resolution("r1", "fp1")}, {{ID: "a9", Fingerprint: "fp1", Severity: "high"}}},
			wantResolved: []bool{false}, wantReceived: 2, wantNotified: true},
		{name: "resolution of an alert the incident never had", signals: [][]Alert{{resolution("r1", "other")}},
			wantResolved: []bool{false}, wantReceived: 1, wantNotified: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, makePlaybook(pbOpts{}))
			h.env.OnActivity(activities.PVEIsolate, mock.Anything, mock.Anything).After(time.Minute).Return(
				func(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
					return h.fake.run(ctx, in)
				})
			for i, alerts := range tt.signals {
				h.env.RegisterDelayedCallback(func() {
					h.env.SignalWorkflow(AlertSignal, AlertSignalInput{Alerts: alerts})
				}, time.Duration(i+1)*10*time.Second)
			}
			h.approve(5*time.Minute, "stop", lead)
			res, st := h.run(input("wf-test"))
			if res.State != StateResolved {
				t.Fatalf("state %s (%s): a resolution must not change the playbook's course", res.State, res.Reason)
			}
			if res.AlertsReceived != tt.wantReceived {
				t.Errorf("alerts received %d, want %d", res.AlertsReceived, tt.wantReceived)
			}
			if len(st.Alerts) != len(tt.wantResolved) {
				t.Fatalf("%d distinct alerts, want %d", len(st.Alerts), len(tt.wantResolved))
			}
			for i, want := range tt.wantResolved {
				a := st.Alerts[i]
				if got := !a.ResolvedAt.IsZero(); got != want {
					t.Errorf("alert %s resolved=%v, want %v", a.Fingerprint, got, want)
				}
				if want && !a.ResolvedAt.Equal(endsAt) {
					t.Errorf("alert %s resolved at %v, want the detector's endsAt %v", a.Fingerprint, a.ResolvedAt, endsAt)
				}
			}
			if st.Alerts[0].Count != 1+strings.Count(tt.name, "fires again") {
				t.Errorf("count %d: a resolution counted as an alert", st.Alerts[0].Count)
			}
			notified := h.fake.steps(activities.NotifySend)
			told := slices.ContainsFunc(notified, func(s string) bool { return strings.HasPrefix(s, "alerts-resolved-") })
			if told != tt.wantNotified {
				t.Errorf("responders notified=%v (%v), want %v", told, notified, tt.wantNotified)
			}
			onTimeline := slices.ContainsFunc(st.Timeline, func(e TimelineEntry) bool { return strings.Contains(e.What, "every alert of the incident is resolved") })
			if onTimeline != tt.wantNotified {
				t.Errorf("timeline tells of the resolution=%v, want %v", onTimeline, tt.wantNotified)
			}
			if tt.wantNotified {
				in, _ := h.fake.call(notified[slices.IndexFunc(notified, func(s string) bool { return strings.HasPrefix(s, "alerts-resolved-") })])
				if in.Params["event"] != "alerts_resolved" || in.Params["severity"] != "high" {
					t.Errorf("notification event %q severity %q, want alerts_resolved, high (recipient lists go by severity)", in.Params["event"], in.Params["severity"])
				}
			}
			// Nothing automatic: every step of the playbook ran.
			for _, id := range []string{"isolate", "disable", "stop", "enable", "report"} {
				if got := stepStatus(st, id); got != StepSucceeded {
					t.Errorf("step %s = %s", id, got)
				}
			}
			h.fake.checkLedger(t, st.LedgerSeq)
		})
	}
}

// TestResolvedAfterContainmentNotNotified: once the asset is contained a
// resolution is recorded but nobody is paged for it.
func TestResolvedAfterContainmentNotNotified(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(AlertSignal, AlertSignalInput{Alerts: []Alert{{ID: "r1", Fingerprint: "fp1", Resolved: true}}})
	}, 2*time.Minute)
	h.approve(5*time.Minute, "stop", lead)
	_, st := h.run(input("wf-test"))
	if st.Metrics.ContainedAt.IsZero() || !st.Metrics.ContainedAt.Before(st.Alerts[0].ResolvedAt) {
		t.Fatalf("contained %v, resolved %v: the test needs the resolution after containment", st.Metrics.ContainedAt, st.Alerts[0].ResolvedAt)
	}
	if st.AllAlertsResolvedAt.IsZero() {
		t.Error("AllAlertsResolvedAt not set")
	}
	for _, s := range h.fake.steps(activities.NotifySend) {
		if strings.HasPrefix(s, "alerts-resolved-") {
			t.Errorf("notified after containment: %s", s)
		}
	}
}
