package playbooks

import (
	"slices"
	"testing"

	"github.com/iru-responder/responder/activities"
)

// TestControlDriftPlaybook: the playbook a failing control opens changes
// nothing without an ir-lead, runs exactly the remediation its finding
// names (or none), takes every remediation's target and evidence from the
// incident's labels, and ends on a re-check that hands over to people when
// the control still fails.
func TestControlDriftPlaybook(t *testing.T) {
	set, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	pb, err := set.Get("control-drift", "")
	if err != nil {
		t.Fatal(err)
	}
	var remediation []Step
	for _, ph := range pb.Phases {
		for _, e := range ph.Entries {
			for _, s := range e.Steps() {
				a, err := activities.Lookup(s.Action)
				if err != nil {
					t.Fatal(err)
				}
				if ph.Name == PhaseRemediation {
					remediation = append(remediation, s)
					if s.Approval == nil || !slices.Contains(s.Approval.Roles, "ir-lead") || s.OnFailure != OnFailureEscalate {
						t.Errorf("remediation %s: approval %+v, on failure %s; want an ir-lead and escalation", s.ID, s.Approval, s.OnFailure)
					}
					if s.Params["evidence"] == "" {
						t.Errorf("remediation %s takes no control evidence", s.ID)
					}
				} else if a.DryRun && ph.Name != PhasePostIncident && s.Action != activities.NotifySend && s.Action != activities.ControlsCollect && s.Action != activities.ControlsRecheck {
					t.Errorf("step %s (%s) changes something outside the remediation", s.ID, s.Action)
				}
			}
		}
	}
	if s, ph, ok := pb.Step("recheck"); !ok || ph != PhaseRecovery || s.Action != activities.ControlsRecheck || s.OnFailure != OnFailureEscalate {
		t.Errorf("recheck: %+v in %s", s, ph)
	}
	tests := []struct {
		fix  string
		runs []string
	}{
		{activities.PVEFirewallEnable, []string{"enable_firewall"}},
		{activities.PVEFirewallRestore, []string{"restore_firewall"}},
		{activities.KCDisableDirectGrants, []string{"disable_direct_grants"}},
		{"", nil},
		{"pve.stop", nil},
	}
	for _, tt := range tests {
		labels := map[string]string{"control.evidence": "evidence://control-x/sha256:aa", "control.last_pass": "evidence://control-x/sha256:bb"}
		if tt.fix != "" {
			labels[activities.FixLabel] = tt.fix
		}
		var runs []string
		for _, s := range remediation {
			ok, err := RenderBool(s.When, Data{Asset: "x", Labels: labels})
			if err != nil {
				t.Fatalf("%s: %v", s.ID, err)
			}
			if ok {
				runs = append(runs, s.ID)
			}
		}
		if !slices.Equal(runs, tt.runs) {
			t.Errorf("fix %q runs %v, want %v", tt.fix, runs, tt.runs)
		}
	}
	// No last passing result: nothing to restore from.
	s, _, _ := pb.Step("restore_firewall")
	if ok, err := RenderBool(s.When, Data{Labels: map[string]string{activities.FixLabel: activities.PVEFirewallRestore}}); err != nil || ok {
		t.Errorf("restore without a last pass: %v %v", ok, err)
	}
}
