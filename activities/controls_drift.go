package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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

// ControlFixReader is the identity the remediation actions read a
// control's evidence as.
const ControlFixReader = "system:worker"

// ReadControlFix reads the failing control result ref (from the locker,
// through r) and checks that one of its findings names action as its fix
// with exactly the targets the step gives (each key of targets: the
// step's value must equal the finding's FixParams value, both "" when the
// finding has none). It is how a remediation action knows that what it is
// about to change is what the platform's own check found, not what an
// alert's labels say: an incident's labels can name any realm, client or
// container, a result in the locker only what a check read.
func ReadControlFix(ctx context.Context, r EvidenceReader, ref, action, why string, targets map[string]string) (ControlEvidence, error) {
	var ev ControlEvidence
	rest, ok := strings.CutPrefix(ref, "evidence://"+ControlEvidencePrefix)
	ns, _, ok2 := strings.Cut(rest, "/sha256:")
	if !ok || !ok2 {
		return ev, NewFinalError(ErrTypeBadParams, fmt.Sprintf("%s: evidence %q is not a control's check result (evidence://%s<id>/sha256:…)", action, ref, ControlEvidencePrefix), nil)
	}
	if r == nil {
		return ev, NewFinalError(ErrTypePrecondition, action+": the worker's evidence store cannot be read back", nil)
	}
	b, err := r.ReadEvidence(ctx, ref, ControlFixReader, why)
	if err != nil {
		return ev, NewFinalError(ErrTypeNotFound, fmt.Sprintf("%s: read %s: %v", action, ref, err), nil)
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return ev, NewFinalError(ErrTypeBadParams, fmt.Sprintf("%s: %s is not a control's check result: %v", action, ref, err), nil)
	}
	if ControlEvidencePrefix+ns != ControlEvidenceIncident(ev.Control.ID) || ev.Status == ControlPass {
		return ev, NewFinalError(ErrTypePrecondition, fmt.Sprintf("%s: %s is a %q result of control %q, not a failing one of its own", action, ref, ev.Status, ev.Control.ID), nil)
	}
	for _, f := range ev.Findings {
		if f.Fix != action {
			continue
		}
		match := true
		for k, v := range targets {
			if strings.TrimSpace(f.FixParams[k]) != strings.TrimSpace(v) {
				match = false
			}
		}
		if match {
			return ev, nil
		}
	}
	return ev, NewFinalError(ErrTypePrecondition, fmt.Sprintf("%s: no finding of %s names this fix for %s; refused (a step acts only on what the control's check found)", action, ref, fmtTargets(targets)), nil)
}

// fmtTargets prints targets in key order.
func fmtTargets(t map[string]string) string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+t[k])
	}
	return strings.Join(parts, " ")
}
