package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Remediation and re-check actions of the control-drift playbook: a control
// that fails its check opens an incident whose steps restore the setting
// (with approval) and check the control again.
const (
	// PVEFirewallEnable turns the datacenter firewall, or one container's
	// firewall, on (enable=1), changing nothing else.
	PVEFirewallEnable = "pve.firewall_enable"
	// PVEFirewallRestore restores a container's firewall options and rules
	// to the state recorded by the control's last passing check
	// ([ControlEvidence] in the evidence locker).
	PVEFirewallRestore = "pve.firewall_restore"
	// KCDisableDirectGrants turns off the direct access grants (resource
	// owner password credentials) of a Keycloak client.
	KCDisableDirectGrants = "kc.disable_direct_grants"
	// ControlsCollect runs a control's check now and keeps its result (what
	// was read, what was expected) as the incident's evidence; it never
	// fails on a failing control.
	ControlsCollect = "controls.collect"
	// ControlsRecheck runs a control's check again and fails (final,
	// Precondition) unless the control passes.
	ControlsRecheck = "controls.recheck"
)

// ControlsCollector is the evidence collector recorded for control check
// results.
const ControlsCollector = "system:controls"

// ControlEvidencePrefix starts the evidence locker "incident" under which a
// control's check results are kept ([ControlEvidenceIncident]).
const ControlEvidencePrefix = "control-"

// ControlEvidenceIncident is the evidence locker namespace of control id's
// check results: every result is kept there, a passing one being what
// [PVEFirewallRestore] restores from.
func ControlEvidenceIncident(id string) string { return ControlEvidencePrefix + id }

// ControlEvidenceName is the object name of a check result of control id
// with status, checked at at.
func ControlEvidenceName(id, status string, at time.Time) string {
	return fmt.Sprintf("control/%s/%s/%s.json", id, status, at.UTC().Format("20060102T150405.000000000Z"))
}

// ControlEvidencePassPrefix starts the object names of control id's passing
// results.
func ControlEvidencePassPrefix(id string) string { return "control/" + id + "/" + ControlPass + "/" }

// ControlEvidence is the document a check result is kept as in the evidence
// locker: what was read (Observed), what was expected (each finding's
// Expected), and the outcome.
type ControlEvidence struct {
	Control   ControlSummary
	Status    string
	CheckedAt time.Time
	Targets   int
	Findings  []ControlFinding `json:",omitempty"`
	// Observed is the state the check read: its canonical JSON when it is
	// JSON, else a JSON string.
	Observed json.RawMessage `json:",omitempty"`
	// Run is the workflow that ran the check.
	Run string `json:",omitempty"`
}

// NewControlEvidence builds the evidence document of r, checked by run.
func NewControlEvidence(r ControlCheckResult, run string) ControlEvidence {
	ev := ControlEvidence{Control: r.Control, Status: r.Status, CheckedAt: r.CheckedAt.UTC(), Targets: r.Targets, Findings: r.Findings, Run: run}
	if len(r.Observed) > 0 {
		if json.Valid(r.Observed) {
			ev.Observed = json.RawMessage(r.Observed)
		} else {
			b, _ := json.Marshal(string(r.Observed)) // a string always encodes
			ev.Observed = b
		}
	}
	return ev
}

// PVEFirewallObserved is the part of a container firewall check's Observed
// that [PVEFirewallRestore] reads: the firewall of each container checked.
// A check whose findings name pve.firewall_restore as their fix must
// record its Observed in this shape.
type PVEFirewallObserved struct {
	Containers []PVEContainerFirewall `json:"containers"`
}

// PVEContainerFirewall is one container's firewall as the PVE API lists it.
type PVEContainerFirewall struct {
	Node string `json:"node"`
	VMID int    `json:"vmid"`
	// Options are the firewall options (GET …/firewall/options, without
	// digest), values as text.
	Options map[string]string `json:"options"`
	// Rules are the rules in order (GET …/firewall/rules, without pos,
	// digest and ipversion), values as text.
	Rules []map[string]string `json:"rules"`
}

// Container returns the firewall recorded for the container at node and
// vmid.
func (o PVEFirewallObserved) Container(node string, vmid int) (PVEContainerFirewall, bool) {
	for _, c := range o.Containers {
		if strings.EqualFold(c.Node, node) && c.VMID == vmid {
			return c, true
		}
	}
	return PVEContainerFirewall{}, false
}

// FixParamsLabel is the alert label prefix under which a control-drift
// incident carries its fix's parameters ("fix.<param>"); FixLabel names the
// fix action.
const (
	FixLabel       = "fix"
	FixParamsLabel = "fix."
)

// EvidenceReader reads back what the evidence locker keeps, recording who
// read it and why (the locker's chain of custody). The locker's adapter
// for the activities implements it next to [EvidenceStore].
type EvidenceReader interface {
	ReadEvidence(ctx context.Context, ref, who, why string) ([]byte, error)
}
