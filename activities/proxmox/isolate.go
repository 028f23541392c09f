package proxmox

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/iru-responder/responder/activities"
)

type allowRule struct{ typ, field, cidr string }

func allowRules(allow []string) []allowRule {
	var out []allowRule
	for _, c := range allow {
		out = append(out, allowRule{"in", "source", c}, allowRule{"out", "dest", c})
	}
	return out
}

func (r allowRule) matches(rule map[string]string, m string) bool {
	return rule["comment"] == m && rule["type"] == r.typ && rule["action"] == "ACCEPT" && rule[r.field] == r.cidr
}

// allowList is IRU_PVE_ALLOW_CIDRS plus the step's allow parameter.
func (a *Activities) allowList(extra activities.CIDRList) []string {
	var out []string
	for _, p := range append(slices.Clone(a.allow), extra...) {
		if s := p.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// datacenterFirewall reports whether the datacenter firewall is enabled.
func (x *call) datacenterFirewall(ctx context.Context) (bool, error) {
	var opts map[string]any
	if err := x.get(ctx, "/cluster/firewall/options", &opts); err != nil {
		return false, err
	}
	return str(opts["enable"]) == "1", nil
}

// Isolate implements [activities.PVEIsolate]. The firewall method enables
// the container firewall with DROP policies both ways, sets firewall=1 on
// every interface, disables the container's own rules and adds ACCEPT rules
// (commented iru:<incident>) for the allow list in both directions; it is
// refused when the datacenter firewall is off, as the isolation would then
// silently do nothing. The link_down method unplugs every interface. Both
// tag the container "quarantine" and record the exact prior state first
// (see the package documentation); the result is read back and verified.
func (a *Activities) Isolate(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEIsolateParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x, err := a.begin(ctx, in, activities.PVEIsolate, p.Asset)
	if err != nil {
		return activities.ActionResult{}, err
	}
	method := p.Method
	if in.IncidentID == "" {
		return activities.ActionResult{}, final(activities.ErrTypeBadParams, x.what()+": no incident id")
	}
	allow := a.allowList(p.Allow)
	if method == methodFirewall {
		on, err := x.datacenterFirewall(ctx)
		if err != nil {
			return activities.ActionResult{}, err
		}
		if !on {
			return activities.ActionResult{}, final(activities.ErrTypePrecondition, fmt.Sprintf(
				"%s: the datacenter firewall is disabled (GET /cluster/firewall/options enable=0): a container firewall would not filter anything; enable it or isolate with method link_down", x.what()))
		}
	}
	if in.DryRun {
		if err := x.requirePrivs(ctx, fmt.Sprintf("/vms/%d", x.ct.VMID), "VM.Audit", "VM.Config.Network", "VM.Config.Options"); err != nil {
			return activities.ActionResult{}, err
		}
	}
	rec, plan, err := x.ensureIsolated(ctx, in.IncidentID, method, allow, in.DryRun)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if in.DryRun {
		if len(plan) == 0 {
			plan = []string{fmt.Sprintf("nothing to change: %s is already isolated by this incident", x.ct)}
		}
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"method": method}, Summary: fmt.Sprintf("dry run: would isolate %s (%s)", x.ct, method)}, nil
	}
	if err := x.verifyIsolated(ctx, rec); err != nil {
		return activities.ActionResult{}, err
	}
	return activities.ActionResult{
		Outputs:      map[string]string{"method": method},
		EvidenceRefs: []string{rec.EvidenceRef},
		Undo:         map[string]string{"node": x.ct.Node, "vmid": strconv.Itoa(x.ct.VMID), "method": method, "prior_ref": rec.EvidenceRef},
		Summary:      fmt.Sprintf("isolated %s (%s, allow %s); prior state %s", x.ct, method, orNone(strings.Join(rec.Allow, ",")), rec.EvidenceRef),
	}, nil
}

// ensureIsolated isolates the container for incident (or plans it, for a
// dry run), continuing from a quarantine record of the same incident.
func (x *call) ensureIsolated(ctx context.Context, incident, method string, allow []string, dryRun bool) (*quarantineRecord, []string, error) {
	var rec *quarantineRecord
	var plan []string
	err := x.withLockWait(ctx, func() error {
		st, err := x.readState(ctx)
		if err != nil {
			return err
		}
		r, err := x.trustedRecord(ctx, st)
		if err != nil {
			return err
		}
		if r != nil && r.Incident != incident {
			return final(activities.ErrTypeConflict, fmt.Sprintf("%s: already quarantined by incident %s; lift that isolation first", x.what(), r.Incident))
		}
		if r != nil && r.Method != method {
			return final(activities.ErrTypeConflict, fmt.Sprintf("%s: already isolated by this incident with method %s", x.what(), r.Method))
		}
		fresh := r == nil
		if fresh {
			r = &quarantineRecord{Incident: incident, Method: method, Allow: allow, Prior: st.prior()}
		}
		rec = r
		if fresh && !dryRun {
			ref, err := x.a.putJSON(ctx, incident, fmt.Sprintf("pve/%s/isolation-prior.json", x.ct.Name), x.source(),
				map[string]any{"container": x.ct, "incident": r.Incident, "method": r.Method, "allow": r.Allow, "prior": r.Prior})
			if err != nil {
				return err
			}
			r.EvidenceRef = ref
		}
		changes, err := x.isolationChanges(ctx, st, r, fresh)
		if err != nil {
			return err
		}
		if dryRun {
			plan = describe(changes)
			if fresh {
				plan = append([]string{fmt.Sprintf("store the prior network state of %s as evidence and in a quarantine record", x.ct)}, plan...)
			}
			return nil
		}
		return apply(ctx, changes)
	})
	return rec, plan, err
}

// verifyIsolated reads the container back and fails unless it is isolated as rec says.
func (x *call) verifyIsolated(ctx context.Context, rec *quarantineRecord) error {
	st, err := x.readState(ctx)
	if err != nil {
		return err
	}
	// Isolate checked the datacenter firewall before any change; isolation
	// does not touch it.
	if problems := isolationProblems(st, rec); len(problems) > 0 {
		return verifyError(fmt.Sprintf("%s: read-back does not show isolation: %s", x.what(), strings.Join(problems, "; ")))
	}
	return nil
}

func (x *call) source() string { return fmt.Sprintf("pve:%s/lxc/%d", x.ct.Node, x.ct.VMID) }

// isolationChanges lists what is left to do to isolate the container as
// rec says, starting from st.
func (x *call) isolationChanges(ctx context.Context, st *ctState, rec *quarantineRecord, fresh bool) ([]change, error) {
	var changes []change
	m := marker(rec.Incident)
	// 1. One config update: the record (first), the tag, the interfaces.
	body := map[string]any{}
	var what []string
	if fresh {
		d, err := x.signedDescription(ctx, rec)
		if err != nil {
			return nil, err
		}
		body["description"] = d
		what = append(what, "write the quarantine record into the description")
	}
	if !hasTag(st.tags(), QuarantineTag) {
		body["tags"] = strings.Join(append(splitTags(st.tags()), QuarantineTag), ";")
		what = append(what, "tag "+QuarantineTag)
	}
	key := "firewall"
	if rec.Method == methodLinkDown {
		key = "link_down"
	}
	nets := st.nets()
	for _, k := range slices.Sorted(maps.Keys(nets)) {
		if parseProps(nets[k])[key] != "1" {
			body[k] = setProp(nets[k], key, "1")
			what = append(what, fmt.Sprintf("set %s %s=1", k, key))
		}
	}
	if len(body) > 0 {
		body["digest"] = st.digest()
		changes = append(changes, change{
			desc: fmt.Sprintf("update the config of %s: %s", x.ct, strings.Join(what, ", ")),
			do:   func(ctx context.Context) error { return x.put(ctx, x.ct.path("/config"), body, nil) },
		})
	}
	if rec.Method == methodLinkDown {
		return changes, nil
	}
	// 2. Disable the container's own enabled rules (positions are those of st).
	for pos, r := range st.rules {
		if r["comment"] != m && r["enable"] == "1" {
			p := x.ct.path("/firewall/rules/" + strconv.Itoa(pos))
			changes = append(changes, change{
				desc: fmt.Sprintf("disable firewall rule %d (%s)", pos, ruleText(r)),
				do:   func(ctx context.Context) error { return x.put(ctx, p, map[string]any{"enable": 0}, nil) },
			})
		}
	}
	// 3. Allow rules for management and forensics.
	for _, ar := range allowRules(rec.Allow) {
		if slices.ContainsFunc(st.rules, func(r map[string]string) bool { return ar.matches(r, m) && r["enable"] == "1" }) {
			continue
		}
		rule := map[string]any{"type": ar.typ, "action": "ACCEPT", ar.field: ar.cidr, "enable": 1, "comment": m}
		changes = append(changes, change{
			desc: fmt.Sprintf("add firewall rule %s ACCEPT %s %s (comment %s)", ar.typ, ar.field, ar.cidr, m),
			do:   func(ctx context.Context) error { return x.post(ctx, x.ct.path("/firewall/rules"), rule, nil) },
		})
	}
	// 4. The cut: firewall on, DROP both ways.
	o := st.options
	if o["enable"] != "1" || o["policy_in"] != "DROP" || o["policy_out"] != "DROP" {
		changes = append(changes, change{
			desc: fmt.Sprintf("set firewall options enable=1 policy_in=DROP policy_out=DROP (now enable=%s policy_in=%s policy_out=%s)",
				cmp.Or(o["enable"], "0"), cmp.Or(o["policy_in"], "DROP"), cmp.Or(o["policy_out"], "ACCEPT")),
			do: func(ctx context.Context) error {
				return x.put(ctx, x.ct.path("/firewall/options"), map[string]any{"enable": 1, "policy_in": "DROP", "policy_out": "DROP"}, nil)
			},
		})
	}
	return changes, nil
}

// isolationProblems lists why st is not isolated as rec says.
func isolationProblems(st *ctState, rec *quarantineRecord) []string {
	var p []string
	if r, err := st.record(); err != nil || r == nil || r.Incident != rec.Incident {
		p = append(p, "quarantine record missing from the description")
	}
	if !hasTag(st.tags(), QuarantineTag) {
		p = append(p, "tag "+QuarantineTag+" missing")
	}
	key := "firewall"
	if rec.Method == methodLinkDown {
		key = "link_down"
	}
	nets := st.nets()
	for _, k := range slices.Sorted(maps.Keys(nets)) {
		if parseProps(nets[k])[key] != "1" {
			p = append(p, fmt.Sprintf("%s has no %s=1", k, key))
		}
	}
	if rec.Method == methodLinkDown {
		return p
	}
	o := st.options
	if o["enable"] != "1" || o["policy_in"] != "DROP" || o["policy_out"] != "DROP" {
		p = append(p, fmt.Sprintf("firewall options enable=%s policy_in=%s policy_out=%s", o["enable"], o["policy_in"], o["policy_out"]))
	}
	m := marker(rec.Incident)
	for pos, r := range st.rules {
		if r["comment"] != m && r["enable"] == "1" {
			p = append(p, fmt.Sprintf("rule %d (%s) still enabled", pos, ruleText(r)))
		}
	}
	for _, ar := range allowRules(rec.Allow) {
		if !slices.ContainsFunc(st.rules, func(r map[string]string) bool { return ar.matches(r, m) && r["enable"] == "1" }) {
			p = append(p, fmt.Sprintf("allow rule %s %s %s missing", ar.typ, ar.field, ar.cidr))
		}
	}
	return p
}

func ruleText(r map[string]string) string {
	var parts []string
	for _, k := range []string{"type", "action", "proto", "source", "dest", "dport", "sport", "macro", "iface"} {
		if v := r[k]; v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	if c := r["comment"]; c != "" {
		parts = append(parts, strconv.Quote(c))
	}
	return strings.Join(parts, " ")
}
