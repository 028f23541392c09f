package proxmox

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/evidence"
)

// The remediation actions of the control-drift playbook: pve.firewall_enable
// and pve.firewall_restore. Both are idempotent (they compute what is left
// to change from the state they read), plan without changing anything on a
// dry run, read the result back, and return the prior state as Undo.

const (
	scopeDatacenter = "datacenter"
	scopeContainer  = "container"
	dcOptionsPath   = "/cluster/firewall/options"
)

// FirewallEnable implements [activities.PVEFirewallEnable]: enable=1 on
// the datacenter firewall (refused in a drill: the datacenter is no drill
// target) or on one container's firewall, nothing else changed. The prior
// value is in Undo (the action has no compensation: turning a firewall
// off again is not a recovery).
func (a *Activities) FirewallEnable(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEFirewallEnableParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x := a.call(activities.PVEFirewallEnable)
	// What to turn on comes from the control's failing result, not from
	// the step's parameters alone.
	targets := map[string]string{"scope": p.Scope, "node": p.Node, "vmid": ""}
	if p.VMID != 0 {
		targets["vmid"] = strconv.Itoa(p.VMID)
	}
	er, _ := a.evidence.(activities.EvidenceReader)
	if _, err := activities.ReadControlFix(ctx, er, p.Evidence, activities.PVEFirewallEnable,
		fmt.Sprintf("%s of incident %s: check the fix the control's check named", activities.PVEFirewallEnable, in.IncidentID), targets); err != nil {
		return activities.ActionResult{}, err
	}
	path := dcOptionsPath
	privPath, priv := "/", "Sys.Modify"
	if p.Scope == scopeContainer {
		if err := x.container(ctx, p.Node, p.VMID, in.Drill); err != nil {
			return activities.ActionResult{}, err
		}
		path = x.ct.path("/firewall/options")
		privPath, priv = fmt.Sprintf("/vms/%d", x.ct.VMID), "VM.Config.Network"
	} else if in.Drill {
		return activities.ActionResult{}, final(activities.ErrTypePrecondition, activities.PVEFirewallEnable+": drill refused: the datacenter firewall is not a drill target")
	}
	where := "the datacenter firewall"
	if x.ct != nil {
		where = "the firewall of " + x.ct.String()
	}
	var opts map[string]any
	if err := x.get(ctx, path, &opts); err != nil {
		return activities.ActionResult{}, err
	}
	prior := cmp.Or(str(opts["enable"]), "0")
	undo := map[string]string{"scope": p.Scope, "prior_enable": prior}
	if x.ct != nil {
		undo["node"], undo["vmid"] = x.ct.Node, strconv.Itoa(x.ct.VMID)
	}
	if prior == "1" {
		note := "nothing to change: " + where + " is on"
		res := activities.ActionResult{Outputs: map[string]string{"changed": "false"}, Undo: undo, Summary: note}
		if in.DryRun {
			res.Plan = []string{note}
		}
		return res, nil
	}
	if in.DryRun {
		if err := x.requirePrivs(ctx, privPath, priv); err != nil {
			return activities.ActionResult{}, err
		}
		return activities.ActionResult{Outputs: map[string]string{"changed": "true"},
			Plan:    []string{fmt.Sprintf("set enable=1 on %s (now enable=%s); nothing else changes", where, prior)},
			Summary: "dry run: would turn on " + where}, nil
	}
	body := map[string]any{"enable": 1}
	if d := str(opts["digest"]); d != "" {
		body["digest"] = d
	}
	if err := x.withLockWait(ctx, func() error { return x.put(ctx, path, body, nil) }); err != nil {
		return activities.ActionResult{}, err
	}
	var after map[string]any
	if err := x.get(ctx, path, &after); err != nil {
		return activities.ActionResult{}, err
	}
	if str(after["enable"]) != "1" {
		return activities.ActionResult{}, verifyError(fmt.Sprintf("%s: read-back shows enable=%s on %s", activities.PVEFirewallEnable, str(after["enable"]), where))
	}
	return activities.ActionResult{Outputs: map[string]string{"changed": "true"}, Undo: undo,
		Summary: fmt.Sprintf("turned on %s (was enable=%s)", where, prior)}, nil
}

// container points x at the container at node and vmid after checking
// them as [checkRef] checks a resolved asset (both go into API paths), and
// reads its name and tags; in a drill it must carry the drill tag.
func (x *call) container(ctx context.Context, node string, vmid int, drill bool) error {
	if !reNodeName.MatchString(node) || vmid < minVMID || vmid > maxVMID {
		return final(activities.ErrTypeBadParams, fmt.Sprintf("%s: node %q vmid %d is not a container location", x.action, node, vmid))
	}
	x.ct = &ctRef{Node: node, VMID: vmid}
	var conf map[string]any
	if err := x.get(ctx, x.ct.path("/config"), &conf); err != nil {
		return err
	}
	x.ct.Name, x.ct.Tags = str(conf["hostname"]), str(conf["tags"])
	if drill && !hasTag(x.ct.Tags, x.a.cfg.DrillTag) {
		return final(activities.ErrTypePrecondition, fmt.Sprintf("%s %s: drill refused: the container does not carry the drill tag %q", x.action, x.ct, x.a.cfg.DrillTag))
	}
	return nil
}

// restoreProgress is what an attempt of pve.firewall_restore heartbeats:
// the prior state it stored, so that a retry after a partial restore does
// not record the half-restored state as prior.
type restoreProgress struct {
	PriorRef string `json:",omitempty"`
}

// FirewallRestore implements [activities.PVEFirewallRestore]: the
// container's firewall options and rules become those recorded for it by
// the control's last passing check. The evidence must be a passing
// control result from the locker ([activities.ControlEvidence], under a
// control's namespace) that records this container; the action reads it
// through the locker (the read is in its chain of custody), so nothing an
// alert says can supply the rules. A quarantined container is refused
// (restoring would lift an incident's isolation). The state before the
// change is stored as the incident's evidence first (Undo prior_ref).
// Rules are rewritten only when they differ: all deleted, the recorded
// ones added in order.
func (a *Activities) FirewallRestore(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEFirewallRestoreParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x := a.call(activities.PVEFirewallRestore)
	if in.IncidentID == "" {
		return activities.ActionResult{}, final(activities.ErrTypeBadParams, activities.PVEFirewallRestore+": no incident id")
	}
	if err := x.container(ctx, p.Node, p.VMID, in.Drill); err != nil {
		return activities.ActionResult{}, err
	}
	want, err := a.passingFirewall(ctx, in, p, x)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if in.DryRun {
		if err := x.requirePrivs(ctx, fmt.Sprintf("/vms/%d", x.ct.VMID), "VM.Audit", "VM.Config.Network"); err != nil {
			return activities.ActionResult{}, err
		}
	}
	var plan []string
	priorRef := ""
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		var pr restoreProgress
		if activity.GetHeartbeatDetails(ctx, &pr) == nil {
			priorRef = pr.PriorRef
		}
	}
	err = x.withLockWait(ctx, func() error {
		st, err := x.readStateParts(ctx, allParts)
		if err != nil {
			return err
		}
		if enc, _ := st.recordLines(); enc != "" || hasTag(st.tags(), QuarantineTag) {
			return final(activities.ErrTypeConflict, fmt.Sprintf("%s: %s is quarantined by an incident; lift its isolation (pve.unisolate) before restoring its firewall", x.what(), x.ct))
		}
		changes := x.firewallChanges(st, want)
		if in.DryRun || len(changes) == 0 {
			plan = describe(changes)
			return nil
		}
		if priorRef == "" {
			ref, err := a.putJSON(ctx, in.IncidentID, fmt.Sprintf("pve/%d/firewall-before-restore.json", x.ct.VMID), x.source(),
				map[string]any{"container": x.ct, "options": st.options, "rules": st.rules, "restoring_from": p.Evidence})
			if err != nil {
				return err
			}
			priorRef = ref
			heartbeat(ctx, restoreProgress{PriorRef: priorRef})
		}
		plan = describe(changes)
		return apply(ctx, changes)
	})
	if err != nil {
		return activities.ActionResult{}, err
	}
	undo := map[string]string{"node": x.ct.Node, "vmid": strconv.Itoa(x.ct.VMID)}
	if in.DryRun {
		if len(plan) == 0 {
			plan = []string{fmt.Sprintf("nothing to change: the firewall of %s is as recorded in %s", x.ct, p.Evidence)}
		}
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"changed": strconv.FormatBool(len(plan) > 0 && !strings.HasPrefix(plan[0], "nothing")), "prior_ref": ""},
			Summary: fmt.Sprintf("dry run: would restore the firewall of %s from %s", x.ct, p.Evidence)}, nil
	}
	if len(plan) == 0 && priorRef == "" {
		return activities.ActionResult{Outputs: map[string]string{"changed": "false", "prior_ref": ""}, Undo: undo,
			Summary: fmt.Sprintf("nothing to change: the firewall of %s is as recorded in %s", x.ct, p.Evidence)}, nil
	}
	st, err := x.readStateParts(ctx, firewallParts)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if diffs := firewallDiff(st, want); len(diffs) > 0 {
		return activities.ActionResult{}, verifyError(fmt.Sprintf("%s: read-back differs from %s: %s", x.what(), p.Evidence, strings.Join(diffs, "; ")))
	}
	undo["prior_ref"] = priorRef
	return activities.ActionResult{
		Outputs: map[string]string{"changed": "true", "prior_ref": priorRef}, EvidenceRefs: []string{priorRef}, Undo: undo,
		Summary: fmt.Sprintf("restored the firewall of %s from %s (%d rules); prior state %s", x.ct, p.Evidence, len(want.Rules), priorRef),
	}, nil
}

// passingFirewall reads the evidence the step names and returns the
// container's firewall it records, refusing anything but a passing
// control result that records this container.
func (a *Activities) passingFirewall(ctx context.Context, in activities.ActionInput, p activities.PVEFirewallRestoreParams, x *call) (activities.PVEContainerFirewall, error) {
	var none activities.PVEContainerFirewall
	ns, _, err := evidence.Ref(p.Evidence).Parse()
	if err != nil || !strings.HasPrefix(ns, activities.ControlEvidencePrefix) {
		return none, final(activities.ErrTypeBadParams, fmt.Sprintf("%s: evidence %q is not a control's check result (evidence://%s<id>/sha256:…)", x.what(), p.Evidence, activities.ControlEvidencePrefix))
	}
	r, ok := a.evidence.(activities.EvidenceReader)
	if !ok {
		return none, final(activities.ErrTypePrecondition, x.what()+": the worker's evidence store cannot be read back")
	}
	b, err := r.ReadEvidence(ctx, p.Evidence, "system:worker",
		fmt.Sprintf("%s of incident %s: restore the firewall of CT %d", activities.PVEFirewallRestore, in.IncidentID, x.ct.VMID))
	if err != nil {
		return none, final(activities.ErrTypeNotFound, fmt.Sprintf("%s: read %s: %v", x.what(), p.Evidence, err))
	}
	var ev activities.ControlEvidence
	if err := json.Unmarshal(b, &ev); err != nil {
		return none, final(activities.ErrTypeBadParams, fmt.Sprintf("%s: %s is not a control's check result: %v", x.what(), p.Evidence, err))
	}
	if ev.Status != activities.ControlPass || activities.ControlEvidenceIncident(ev.Control.ID) != ns {
		return none, final(activities.ErrTypePrecondition, fmt.Sprintf("%s: %s is a %q result of control %q, not a passing one of its own namespace", x.what(), p.Evidence, ev.Status, ev.Control.ID))
	}
	var obs activities.PVEFirewallObserved
	if err := json.Unmarshal(ev.Observed, &obs); err != nil {
		return none, final(activities.ErrTypeBadParams, fmt.Sprintf("%s: %s records no container firewalls: %v", x.what(), p.Evidence, err))
	}
	fw, ok := obs.Container(x.ct.Node, x.ct.VMID)
	if !ok {
		return none, final(activities.ErrTypeNotFound, fmt.Sprintf("%s: %s records no firewall of CT %d on %s", x.what(), p.Evidence, x.ct.VMID, x.ct.Node))
	}
	if fw.Options == nil {
		fw.Options = map[string]string{}
	}
	return fw, nil
}

// firewallChanges lists what turns the firewall of st into want: the
// options, then (when any rule differs) every rule deleted from the
// highest position and the recorded ones added, last first, at position 0.
func (x *call) firewallChanges(st *ctState, want activities.PVEContainerFirewall) []change {
	var changes []change
	if body := optionsBody(st.options, want.Options); len(body) > 0 {
		changes = append(changes, change{
			desc: fmt.Sprintf("set firewall options %s (now %s)", fmtOptions(want.Options), fmtOptions(st.options)),
			do:   func(ctx context.Context) error { return x.put(ctx, x.ct.path("/firewall/options"), body, nil) },
		})
	}
	if sameRules(st.rules, want.Rules) {
		return changes
	}
	for pos := len(st.rules) - 1; pos >= 0; pos-- {
		path := x.ct.path("/firewall/rules/" + strconv.Itoa(pos))
		changes = append(changes, change{
			desc: fmt.Sprintf("delete firewall rule %d (%s)", pos, ruleText(st.rules[pos])),
			do:   func(ctx context.Context) error { return x.del(ctx, path, nil) },
		})
	}
	// PVE inserts every new rule at position 0, whatever pos says: the
	// recorded rules go in from the last to the first.
	for pos := len(want.Rules) - 1; pos >= 0; pos-- {
		r := want.Rules[pos]
		body := map[string]any{"pos": 0}
		for k, v := range r {
			if n, err := strconv.Atoi(v); err == nil && (k == "enable" || k == "log") && isDigits(v) {
				body[k] = n
			} else {
				body[k] = v
			}
		}
		if _, ok := body["enable"]; !ok {
			body["enable"] = 0
		}
		changes = append(changes, change{
			desc: fmt.Sprintf("add firewall rule %d (%s) enable=%s", pos, ruleText(r), cmp.Or(r["enable"], "0")),
			do:   func(ctx context.Context) error { return x.post(ctx, x.ct.path("/firewall/rules"), body, nil) },
		})
	}
	return changes
}

// sameRules reports whether two rule lists are equal in order (a missing
// enable is 0, as PVE lists it).
func sameRules(a, b []map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := maps.Clone(a[i]), maps.Clone(b[i])
		x["enable"], y["enable"] = cmp.Or(x["enable"], "0"), cmp.Or(y["enable"], "0")
		if !maps.Equal(x, y) {
			return false
		}
	}
	return true
}

// firewallDiff lists how the firewall of st differs from want.
func firewallDiff(st *ctState, want activities.PVEContainerFirewall) []string {
	var d []string
	if !maps.Equal(st.options, want.Options) {
		d = append(d, fmt.Sprintf("options %s, want %s", fmtOptions(st.options), fmtOptions(want.Options)))
	}
	if !sameRules(st.rules, want.Rules) {
		d = append(d, fmt.Sprintf("%d rules, want %d as recorded", len(st.rules), len(want.Rules)))
	}
	return d
}
