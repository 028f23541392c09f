package workflows

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
)

// TestUnknownAssetTriage: an incident of the triage playbook acts on
// nothing; it notifies the responders and waits until a responder closes
// it with a reason (abort) or confirms the triage.
func TestUnknownAssetTriage(t *testing.T) {
	for _, close := range []bool{true, false} {
		name := map[bool]string{true: "closed with a reason", false: "confirmed"}[close]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			if close {
				h.env.RegisterDelayedCallback(func() {
					h.signal(AbortSignal, AbortInput{By: lead, Reason: "test host outside the inventory, not ours"})
				}, time.Hour)
			} else {
				h.approve(time.Hour, "triage", lead)
			}
			in := input(UnknownAssetPlaybook)
			in.Asset = "ghost-9"
			in.Alerts[0].Labels = map[string]string{"iru.unmapped": "true", "iru.routed_playbook": "container-compromise"}
			res, st := h.run(in)
			want := map[bool]string{true: StateAborted, false: StateResolved}[close]
			if res.State != want {
				t.Fatalf("state %s (%s), want %s", res.State, res.Reason, want)
			}
			if close && !strings.Contains(res.Reason, "not ours") {
				t.Errorf("reason %q lacks the responder's", res.Reason)
			}
			for _, c := range h.fake.steps("") {
				in, _ := h.fake.call(c)
				if in.Action != activities.NotifySend && in.Action != activities.ReportGenerate {
					t.Errorf("triage ran %s (%s)", in.Action, c)
				}
			}
			notify, _ := h.fake.call("notify_triage")
			if !strings.Contains(notify.Params["message"], "ghost-9, which is in no inventory") || !strings.Contains(notify.Params["message"], "container-compromise") {
				t.Errorf("triage notification %q", notify.Params["message"])
			}
			if got := stepStatus(st, "triage"); close == (got == StepSucceeded) {
				t.Errorf("triage step %s", got)
			}
			if !slices.Contains(h.fake.steps(activities.ReportGenerate), "report") {
				t.Error("no report")
			}
		})
	}
}
