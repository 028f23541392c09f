package workflows

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
)

// parallelApprovalPlaybook has a step that waits for an approval beside
// one whose action runs.
const parallelApprovalPlaybook = `name: wf-parallel
version: "1"
description: an approval beside a running action
severity_default: high
phases:
  detection:
    - id: resolve
      action: pve.resolve_asset
      params: {asset: "{{ .Asset }}"}
  containment:
    - parallel:
        - id: isolate
          action: pve.isolate
          params: {asset: "{{ .Asset }}"}
        - id: stop
          action: pve.stop
          params: {asset: "{{ .Asset }}"}
          approval: {roles: [ir-lead], quorum: 1, timeout: 30m}
          compensation: none
  investigation:
    - id: probe
      action: net.health_probe
      params: {target: "{{ .Steps.resolve.ip }}:22"}
  remediation:
    - id: note
      action: notify.send
      params: {event: remediated}
  recovery:
    - id: unisolate
      action: pve.unisolate
      params: {asset: "{{ .Asset }}"}
  post_incident:
    - id: report
      action: report.generate
`

// TestNotificationFirstAttemptLocal: the approval request's notification
// is a local activity while the incident only waits for the person (no
// activity: no task through the server, no start, no completion and no
// workflow task after it); channels the local attempt did not reach get
// it as an activity, to those channels only; beside a running action,
// and in runs from before the change, it is an activity.
func TestNotificationFirstAttemptLocal(t *testing.T) {
	tests := []struct {
		name, playbook, pbName string
		// old runs without the notify-local marker.
		old bool
		// undelivered is what the local attempt reports.
		undelivered string
		// wantLocal and wantActivity are the StepIDs of the
		// notifications run as local activities and as activities.
		wantLocal, wantActivity []string
		// wantOnly is the only parameter of the activity.
		wantOnly string
	}{
		{name: "waits for a person", playbook: makePlaybook(pbOpts{}), pbName: "wf-test",
			wantLocal: []string{"approval-stop"}},
		{name: "a channel not reached", playbook: makePlaybook(pbOpts{}), pbName: "wf-test", undelivered: "pager,slack",
			wantLocal: []string{"approval-stop"}, wantActivity: []string{"approval-stop"}, wantOnly: "pager,slack"},
		{name: "run from before the change", playbook: makePlaybook(pbOpts{}), pbName: "wf-test", old: true,
			wantActivity: []string{"approval-stop"}},
		{name: "beside a running action", playbook: parallelApprovalPlaybook, pbName: "wf-parallel",
			wantActivity: []string{"approval-stop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.playbook)
			h.fake.undelivered = tt.undelivered
			if tt.old {
				h.env.OnGetVersion(notifyLocalChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
			}
			h.approve(time.Minute, "stop", lead)
			res, st := h.run(input(tt.pbName))
			if res.State != StateResolved {
				t.Fatalf("state = %s (%s)", res.State, res.Reason)
			}
			var local, act []string
			remaining := slices.Clone(h.fake.local)
			for _, c := range h.fake.calls {
				if c.Action != activities.NotifySend || !strings.HasPrefix(c.StepID, "approval-") {
					continue // a playbook's own notify.send step
				}
				if i := slices.Index(remaining, c.StepID); i >= 0 {
					local = append(local, c.StepID)
					remaining = slices.Delete(remaining, i, i+1)
					continue
				}
				act = append(act, c.StepID)
				if got := c.Params["only"]; got != tt.wantOnly {
					t.Errorf("activity %s: only = %q, want %q", c.StepID, got, tt.wantOnly)
				}
			}
			if !slices.Equal(local, tt.wantLocal) || !slices.Equal(act, tt.wantActivity) {
				t.Errorf("notifications: local %v, activities %v; want local %v, activities %v", local, act, tt.wantLocal, tt.wantActivity)
			}
			if stepStatus(st, "stop") != StepSucceeded {
				t.Errorf("stop = %s", stepStatus(st, "stop"))
			}
			for _, e := range st.Timeline {
				if e.What == "notification to ir-lead failed" {
					t.Errorf("timeline: %s (%s)", e.What, e.Reason)
				}
			}
		})
	}
}
