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

// Isolate implements [activities.PVEIsolate]. The firewall method puts a
// rule of type group at position 0 of the container's firewall rules,
// naming the quarantine security group of the allow list (group.go:
// ACCEPT in from and out to each allowed network, then DROP in and out),
// sets firewall=1 on every interface and enables the container firewall
// with DROP policies both ways; the container's own rules are not touched
// (nothing after the group rule is reached). It is refused when the
// datacenter firewall is off, as the isolation would then silently do
// nothing. The link_down method unplugs every interface. Both tag the
// container "quarantine" and record the exact prior state first (see the
// package documentation); the result is read back and verified.
//
// A fresh firewall isolation makes 8 API calls in four rounds, the calls
// of a round together: the reads (config, firewall options, datacenter
// firewall), the config update carrying the quarantine record (alone, so
// that no change is made before the prior state is recorded), the two
// firewall changes (group rule, options: no DROP policy waits for the
// other write), and the read-back (rules and group; the options were
// written with their digest, the config with its own). The first
// isolation with an allow list in a process also reads the group, and
// creates it where it is missing.
func (a *Activities) Isolate(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEIsolateParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x, err := a.beginDeferred(ctx, in, activities.PVEIsolate, p.Asset)
	if err != nil {
		return activities.ActionResult{}, err
	}
	method := p.Method
	if in.IncidentID == "" {
		return activities.ActionResult{}, final(activities.ErrTypeBadParams, x.what()+": no incident id")
	}
	allow := a.allowList(p.Allow)
	if in.DryRun {
		if err := x.requirePrivs(ctx, fmt.Sprintf("/vms/%d", x.ct.VMID), "VM.Audit", "VM.Config.Network", "VM.Config.Options"); err != nil {
			return activities.ActionResult{}, err
		}
	}
	req := isolateRequest{incident: in.IncidentID, method: method, allow: allow, dryRun: in.DryRun, checkDatacenter: true, legacy: a.legacyIsolation}
	if in.DryRun {
		iso, err := x.ensureIsolated(ctx, req)
		if err != nil {
			return activities.ActionResult{}, err
		}
		plan := iso.plan
		if len(plan) == 0 {
			plan = []string{fmt.Sprintf("nothing to change: %s is already isolated by this incident", x.ct)}
		}
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"method": method}, Summary: fmt.Sprintf("dry run: would isolate %s (%s)", x.ct, method)}, nil
	}
	iso, err := x.isolateVerified(ctx, req)
	if err != nil {
		return activities.ActionResult{}, err
	}
	rec := iso.rec
	outputs := map[string]string{"method": method}
	how := method
	if rec.Group != "" {
		outputs["security_group"] = rec.Group
		how += " via security group " + rec.Group
	}
	return activities.ActionResult{
		Outputs:      outputs,
		EvidenceRefs: []string{rec.EvidenceRef},
		Undo:         map[string]string{"node": x.ct.Node, "vmid": strconv.Itoa(x.ct.VMID), "method": method, "prior_ref": rec.EvidenceRef},
		Summary:      fmt.Sprintf("isolated %s (%s, allow %s); prior state %s", x.ct, how, orNone(strings.Join(rec.Allow, ",")), rec.EvidenceRef),
	}, nil
}

// isolateVerified isolates the container as req says and verifies it.
// When the read-back finds the security group missing or changed although
// this process had seen it complete (someone deleted or edited it since),
// it isolates and verifies once more, reading and putting right the group.
func (x *call) isolateVerified(ctx context.Context, req isolateRequest) (*isolation, error) {
	iso, err := x.ensureIsolated(ctx, req)
	if err != nil {
		return nil, err
	}
	err = x.verifyIsolated(ctx, iso)
	if err == nil || !iso.groupCached || x.a.groups.has(iso.rec.Group) {
		return iso, err
	}
	if iso, err = x.ensureIsolated(ctx, req); err != nil {
		return nil, err
	}
	return iso, x.verifyIsolated(ctx, iso)
}

// isolateRequest is what [call.ensureIsolated] is asked to do.
type isolateRequest struct {
	incident, method string
	allow            []string
	dryRun           bool
	// checkDatacenter refuses a firewall isolation while the datacenter
	// firewall is off (read with the container's state).
	checkDatacenter bool
	// legacy isolates a fresh container as releases before the security
	// group did (tests of the records they wrote).
	legacy bool
}

// isolation is the outcome of [call.ensureIsolated].
type isolation struct {
	rec  *quarantineRecord
	plan []string
	// conf is the container config known to hold after the changes, when
	// no read-back of it is needed: nothing changed in it, or only the
	// description and tags in a digest-checked update (applied at once,
	// unlike interface changes, which a running container may leave
	// pending). nil: read the config back.
	conf map[string]any
	// options are the firewall options known to hold after a
	// digest-checked update of them (nil: read them back).
	options map[string]string
	// groupCached: the security group was taken as complete from the
	// process's memory, not read.
	groupCached bool
}

// isolationWrites are the changes left to isolate a container, in the
// order of their rounds.
type isolationWrites struct {
	// group are the changes that make the security group complete, before
	// anything else (they touch no container).
	group []change
	// config is the one config update (record, tag, interfaces), nil if
	// none is needed; nets tells whether it changes interfaces.
	config *change
	nets   bool
	// confAfter is the config after config (description and tags only).
	confAfter map[string]any
	// firewall are the independent firewall changes.
	firewall []change
	// optionsAfter are the options after a digest-checked options update
	// in firewall (nil: none).
	optionsAfter map[string]string
}

// ensureIsolated isolates the container for incident (or plans it, for a
// dry run), continuing from a quarantine record of the same incident.
func (x *call) ensureIsolated(ctx context.Context, req isolateRequest) (*isolation, error) {
	var out *isolation
	err := x.withLockWait(ctx, func() error {
		fw := req.method == methodFirewall
		// A fresh isolation needs neither the container's rules (they are
		// not touched) nor, once this process saw it complete, the group
		// (the read-back reads it).
		parts := stateParts{config: true, options: true, rules: req.legacy, datacenter: req.checkDatacenter && fw}
		if fw && !req.legacy && !x.a.groups.has(groupName(req.allow)) {
			parts.group = groupName(req.allow)
		}
		st, err := x.readStateParts(ctx, parts)
		if err != nil {
			return err
		}
		if parts.datacenter && !st.datacenterOn {
			return final(activities.ErrTypePrecondition, fmt.Sprintf(
				"%s: the datacenter firewall is disabled (GET /cluster/firewall/options enable=0): a container firewall would not filter anything; enable it or isolate with method link_down", x.what()))
		}
		r, err := x.trustedRecord(ctx, st)
		if err != nil {
			return err
		}
		if r != nil && r.Incident != req.incident {
			return final(activities.ErrTypeConflict, fmt.Sprintf("%s: already quarantined by incident %s; lift that isolation first", x.what(), r.Incident))
		}
		if r != nil && r.Method != req.method {
			return final(activities.ErrTypeConflict, fmt.Sprintf("%s: already isolated by this incident with method %s", x.what(), r.Method))
		}
		fresh := r == nil
		if fresh {
			r = &quarantineRecord{Incident: req.incident, Method: req.method, Allow: req.allow}
			if req.legacy {
				r.Prior = st.prior()
			} else {
				r.V = recordGroupModel
				r.Prior = st.prior()
				r.Prior.Rules = nil
				if fw {
					r.Group = groupName(req.allow)
				}
			}
		}
		if parts.group != r.Group {
			st.group = nil // a continued record names another group, or none
		}
		if fw && !fresh {
			// Continuing: read what the first round did not.
			more := stateParts{rules: st.rules == nil}
			if r.Group != "" && st.group == nil && !x.a.groups.has(r.Group) {
				more.group = r.Group
			}
			if more.rules || more.group != "" {
				st2, err := x.readStateParts(ctx, more)
				if err != nil {
					return err
				}
				if more.rules {
					st.rules = st2.rules
				}
				if more.group != "" {
					st.group = st2.group
				}
			}
		}
		out = &isolation{rec: r, groupCached: fw && r.Group != "" && st.group == nil}
		if fresh && !req.dryRun {
			ref, err := x.a.putJSON(ctx, req.incident, fmt.Sprintf("pve/%s/isolation-prior.json", x.ct.Name), x.source(),
				map[string]any{"container": x.ct, "incident": r.Incident, "method": r.Method, "allow": r.Allow, "prior": r.Prior})
			if err != nil {
				return err
			}
			r.EvidenceRef = ref
		}
		w, err := x.isolationChanges(ctx, st, r, fresh)
		if err != nil {
			return err
		}
		if req.dryRun {
			out.plan = append(out.plan, describe(w.group)...)
			if w.config != nil {
				out.plan = append(out.plan, w.config.desc)
			}
			out.plan = append(out.plan, describe(w.firewall)...)
			if fresh {
				out.plan = append([]string{fmt.Sprintf("store the prior network state of %s as evidence and in a quarantine record", x.ct)}, out.plan...)
			}
			return nil
		}
		if len(w.group) > 0 {
			if err := x.ensureGroup(ctx, r.Allow, st.group); err != nil {
				return err
			}
		} else if st.group != nil {
			x.a.groups.set(r.Group, true)
		}
		// The record goes first: a retry after any later failure finds it
		// and continues, never recording a half-isolated state as prior.
		if w.config != nil {
			if err := w.config.do(ctx); err != nil {
				return err
			}
		}
		if err := applyTogether(ctx, w.firewall); err != nil {
			return err
		}
		if !w.nets {
			out.conf = w.confAfter
		}
		out.options = w.optionsAfter
		return nil
	})
	return out, err
}

// verifyIsolated reads the container back and fails unless it is isolated
// as iso.rec says: the firewall rules and security group (firewall
// method), and the config and firewall options unless iso already proves
// them. A security group found missing or changed is forgotten as
// complete, so that the next isolation reads it and puts it right.
func (x *call) verifyIsolated(ctx context.Context, iso *isolation) error {
	rec := iso.rec
	fw := rec.Method != methodLinkDown
	parts := stateParts{config: iso.conf == nil, options: fw && iso.options == nil, rules: fw}
	if fw && !rec.legacy() {
		parts.group = rec.Group
	}
	if !parts.config && !parts.options && !parts.rules {
		parts.config = true
	}
	st, err := x.readStateParts(ctx, parts)
	if err != nil {
		return err
	}
	if !parts.config {
		st.conf = iso.conf
	}
	if !parts.options {
		st.options = iso.options
	}
	if st.group != nil && (!st.group.exists || len(groupProblems(rec.Group, st.group.rules, groupRules(rec.Allow))) > 0) {
		x.a.groups.set(rec.Group, false)
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
func (x *call) isolationChanges(ctx context.Context, st *ctState, rec *quarantineRecord, fresh bool) (isolationWrites, error) {
	var w isolationWrites
	m := marker(rec.Incident)
	// 1. One config update: the record (first), the tag, the interfaces.
	body := map[string]any{}
	var what []string
	if fresh {
		d, err := x.signedDescription(ctx, rec)
		if err != nil {
			return w, err
		}
		body["description"] = d
		what = append(what, "write the quarantine record into the description")
	}
	if !hasTag(st.tags(), QuarantineTag) {
		body["tags"] = strings.Join(append(splitTags(st.tags()), QuarantineTag), ";")
		what = append(what, "tag "+QuarantineTag)
	}
	w.confAfter = maps.Clone(st.conf)
	for k, v := range body {
		w.confAfter[k] = v
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
			w.nets = true
		}
	}
	if len(body) > 0 {
		body["digest"] = st.digest()
		w.config = &change{
			desc: fmt.Sprintf("update the config of %s: %s", x.ct, strings.Join(what, ", ")),
			do:   func(ctx context.Context) error { return x.put(ctx, x.ct.path("/config"), body, nil) },
		}
	}
	if rec.Method == methodLinkDown {
		return w, nil
	}
	if rec.legacy() {
		w.firewall = x.legacyFirewallChanges(st, rec)
		return w, nil
	}
	// 2. The security group, complete before anything refers to it.
	if st.group != nil {
		w.group = x.groupChanges(rec.Group, rec.Allow, st.group)
	}
	// 3. The group rule at position 0, where PVE inserts a new rule.
	if len(st.rules) == 0 || !isGroupRule(st.rules[0], rec) {
		rule := map[string]any{"type": "group", "action": rec.Group, "enable": 1, "comment": m, "pos": 0}
		w.firewall = append(w.firewall, change{
			desc: fmt.Sprintf("insert firewall rule 0: security group %s (comment %s), ahead of the container's own rules", rec.Group, m),
			do:   func(ctx context.Context) error { return x.post(ctx, x.ct.path("/firewall/rules"), rule, nil) },
		})
	}
	// 4. The cut: firewall on, DROP both ways; with the digest of the
	// options read, so that they need no read-back.
	if ch, after := x.dropOptions(st); ch != nil {
		w.firewall = append(w.firewall, *ch)
		w.optionsAfter = after
	}
	return w, nil
}

// isGroupRule reports whether r is the enabled group rule of rec.
func isGroupRule(r map[string]string, rec *quarantineRecord) bool {
	return r["type"] == "group" && r["action"] == rec.Group && r["enable"] == "1" && r["comment"] == marker(rec.Incident)
}

// dropOptions is the options update that enables the container firewall
// with DROP policies both ways (nil if they are so), and the options after it.
func (x *call) dropOptions(st *ctState) (*change, map[string]string) {
	o := st.options
	if o["enable"] == "1" && o["policy_in"] == "DROP" && o["policy_out"] == "DROP" {
		return nil, nil
	}
	body := map[string]any{"enable": 1, "policy_in": "DROP", "policy_out": "DROP"}
	after := maps.Clone(o)
	if after == nil {
		after = map[string]string{}
	}
	after["enable"], after["policy_in"], after["policy_out"] = "1", "DROP", "DROP"
	if st.optionsDigest != "" {
		body["digest"] = st.optionsDigest
	} else {
		after = nil // not digest-checked: read it back
	}
	return &change{
		desc: fmt.Sprintf("set firewall options enable=1 policy_in=DROP policy_out=DROP (now enable=%s policy_in=%s policy_out=%s)",
			cmp.Or(o["enable"], "0"), cmp.Or(o["policy_in"], "DROP"), cmp.Or(o["policy_out"], "ACCEPT")),
		do: func(ctx context.Context) error { return x.put(ctx, x.ct.path("/firewall/options"), body, nil) },
	}, after
}

// legacyFirewallChanges continues a legacy firewall isolation: the
// container's own enabled rules disabled, allow rules appended, options
// set to DROP.
func (x *call) legacyFirewallChanges(st *ctState, rec *quarantineRecord) []change {
	var changes []change
	m := marker(rec.Incident)
	// Positions are those of st: the allow rules are appended after them,
	// so they do not move.
	for pos, r := range st.rules {
		if r["comment"] != m && r["enable"] == "1" {
			p := x.ct.path("/firewall/rules/" + strconv.Itoa(pos))
			changes = append(changes, change{
				desc: fmt.Sprintf("disable firewall rule %d (%s)", pos, ruleText(r)),
				do:   func(ctx context.Context) error { return x.put(ctx, p, map[string]any{"enable": 0}, nil) },
			})
		}
	}
	for _, ar := range allowRules(rec.Allow) {
		if slices.ContainsFunc(st.rules, func(r map[string]string) bool { return ar.matches(r, m) && r["enable"] == "1" }) {
			continue
		}
		rule := map[string]any{"type": ar.typ, "action": "ACCEPT", ar.field: ar.cidr, "enable": 1, "comment": m, "pos": len(st.rules)}
		changes = append(changes, change{
			desc: fmt.Sprintf("add firewall rule %s ACCEPT %s %s (comment %s)", ar.typ, ar.field, ar.cidr, m),
			do:   func(ctx context.Context) error { return x.post(ctx, x.ct.path("/firewall/rules"), rule, nil) },
		})
	}
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
	return changes
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
	if !rec.legacy() {
		if len(st.rules) == 0 || !isGroupRule(st.rules[0], rec) {
			p = append(p, fmt.Sprintf("firewall rule 0 is not the enabled security group rule %s (comment %s)", rec.Group, m))
		}
		switch {
		case st.group == nil:
			p = append(p, "security group "+rec.Group+" not read")
		case !st.group.exists:
			p = append(p, "security group "+rec.Group+" does not exist")
		default:
			p = append(p, groupProblems(rec.Group, st.group.rules, groupRules(rec.Allow))...)
		}
		return p
	}
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
