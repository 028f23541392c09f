package workerhost

import (
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/workflows"
)

// TestDriftAlert: the alert a failing control sends its incident. The
// same drift found again has the same fingerprint (counted as a repeat)
// and a new id (not dropped as a redelivery); a different drift has a
// new fingerprint; the first finding's fix and parameters are in the
// labels the playbook's remediation reads.
func TestDriftAlert(t *testing.T) {
	at := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	result := func(observed string) activities.ControlCheckResult {
		return activities.ControlCheckResult{
			Control: activities.ControlSummary{ID: "net-ct-firewall", Section: "Network Security", Severity: "high"},
			Status:  activities.ControlFail, CheckedAt: at,
			Findings: []activities.ControlFinding{
				{Target: "pve/pve2/lxc/103", Setting: "policy_in", Observed: observed, Expected: "DROP"},
				{Target: "pve/pve2/lxc/103", Setting: "rule 0", Observed: "ACCEPT 22", Expected: "none",
					Fix: activities.PVEFirewallRestore, FixParams: map[string]string{"node": "pve2", "vmid": "103"}},
			},
		}
	}
	day1 := driftAlert(workflows.ControlIncidentInput{Result: result("ACCEPT"), EvidenceRef: "evidence://control-net-ct-firewall/sha256:aa", SHA256: "aa", LastPassRef: "evidence://control-net-ct-firewall/sha256:pp"})
	day2 := driftAlert(workflows.ControlIncidentInput{Result: result("ACCEPT"), EvidenceRef: "evidence://control-net-ct-firewall/sha256:bb", SHA256: "bb"})
	other := driftAlert(workflows.ControlIncidentInput{Result: result("REJECT"), EvidenceRef: "evidence://control-net-ct-firewall/sha256:cc", SHA256: "cc"})
	tests := []struct {
		name string
		ok   bool
	}{
		{"same drift, same fingerprint", day1.Fingerprint == day2.Fingerprint},
		{"same drift, new id", day1.ID != day2.ID},
		{"other drift, new fingerprint", day1.Fingerprint != other.Fingerprint},
		{"asset is the control", day1.Asset == "net-ct-firewall" && day1.Rule == "net-ct-firewall" && day1.Source == "controls"},
		{"fix of the first fixable finding", day1.Labels[activities.FixLabel] == activities.PVEFirewallRestore &&
			day1.Labels["fix.node"] == "pve2" && day1.Labels["fix.vmid"] == "103"},
		{"evidence and last pass", day1.Labels["control.evidence"] == "evidence://control-net-ct-firewall/sha256:aa" &&
			day1.Labels["control.last_pass"] == "evidence://control-net-ct-firewall/sha256:pp"},
		{"no empty labels", func() bool { _, ok := day2.Labels["control.last_pass"]; return !ok }()},
		{"summary names the first finding", day1.Summary == "control net-ct-firewall (Network Security) is fail: pve/pve2/lxc/103 policy_in is ACCEPT, expected DROP (+1 more)"},
		{"severity of the control", day1.Severity == "high"},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("%s: %+v", tt.name, day1)
		}
	}
}
