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

// Isolate implements [activities.PVEIsolate]. The firewall method enables
// the container firewall with DROP policies both ways, sets firewall=1 on
// every interface, disables the container's own rules and adds ACCEPT rules
// (commented iru:<incident>) for the allow list in both directions; it is
// refused when the datacenter firewall is off, as the isolation would then
// silently do nothing. The link_down method unplugs every interface. Both
// tag the container "quarantine" and record the exact prior state first
// (see the package documentation); the result is read back and verified.
//
// The calls go in four rounds, the calls of a round together: the reads
// (config, firewall options and rules, datacenter firewall), the config
// update carrying the quarantine record (alone, so that no change is made
// before the prior state is recorded), the firewall changes (rules
// disabled, allow rules appended, options set to DROP, at once: no DROP
// policy waits for the other writes), and the read-back.
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
	iso, err := x.ensureIsolated(ctx, isolateRequest{incident: in.IncidentID, method: method, allow: allow, dryRun: in.DryRun, checkDatacenter: true})
	if err != nil {
		return activities.ActionResult{}, err
	}
	rec := iso.rec
	if in.DryRun {
		plan := iso.plan
		if len(plan) == 0 {
			plan = []string{fmt.Sprintf("nothing to change: %s is already isolated by this incident", x.ct)}
		}
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"method": method}, Summary: fmt.Sprintf("dry run: would isolate %s (%s)", x.ct, method)}, nil
	}
	if err := x.verifyIsolated(ctx, iso); err != nil {
		return activities.ActionResult{}, err
	}
	return activities.ActionResult{
		Outputs:      map[string]string{"method": method},
		EvidenceRefs: []string{rec.EvidenceRef},
		Undo:         map[string]string{"node": x.ct.Node, "vmid": strconv.Itoa(x.ct.VMID), "method": method, "prior_ref": rec.EvidenceRef},
		Summary:      fmt.Sprintf("isolated %s (%s, allow %s); prior state %s", x.ct, method, orNone(strings.Join(rec.Allow, ",")), rec.EvidenceRef),
	}, nil
}

// isolateRequest is what [call.ensureIsolated] is asked to do.
type isolateRequest struct {
	incident, method string
	allow            []string
	dryRun           bool
	// checkDatacenter refuses a firewall isolation while the datacenter
	// firewall is off (read with the container's state).
	checkDatacenter bool
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
}

// isolationWrites are the changes left to isolate a container, in the
// order of their rounds.
type isolationWrites struct {
	// config is the one config update (record, tag, interfaces), nil if
	// none is needed; nets tells whether it changes interfaces.
	config *change
	nets   bool
	// confAfter is the config after config (description and tags only).
	confAfter map[string]any
	// firewall are the independent firewall changes.
	firewall []change
}

// ensureIsolated isolates the container for incident (or plans it, for a
// dry run), continuing from a quarantine record of the same incident.
func (x *call) ensureIsolated(ctx context.Context, req isolateRequest) (*isolation, error) {
	var out *isolation
	err := x.withLockWait(ctx, func() error {
		parts := allParts
		parts.datacenter = req.checkDatacenter && req.method == methodFirewall
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
			r = &quarantineRecord{Incident: req.incident, Method: req.method, Allow: req.allow, Prior: st.prior()}
		}
		out = &isolation{rec: r}
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
			if w.config != nil {
				out.plan = append(out.plan, w.config.desc)
			}
			out.plan = append(out.plan, describe(w.firewall)...)
			if fresh {
				out.plan = append([]string{fmt.Sprintf("store the prior network state of %s as evidence and in a quarantine record", x.ct)}, out.plan...)
			}
			return nil
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
		return nil
	})
	return out, err
}

// verifyIsolated reads the container back and fails unless it is isolated
// as iso.rec says: the firewall options and rules (firewall method), and
// the config unless iso.conf already proves it.
func (x *call) verifyIsolated(ctx context.Context, iso *isolation) error {
	rec := iso.rec
	parts := stateParts{config: iso.conf == nil, firewall: rec.Method != methodLinkDown}
	if !parts.config && !parts.firewall {
		parts.config = true
	}
	st, err := x.readStateParts(ctx, parts)
	if err != nil {
		return err
	}
	if !parts.config {
		st.conf = iso.conf
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
	// 2. Disable the container's own enabled rules (positions are those of
	// st: the allow rules are appended after them, so they do not move).
	for pos, r := range st.rules {
		if r["comment"] != m && r["enable"] == "1" {
			p := x.ct.path("/firewall/rules/" + strconv.Itoa(pos))
			w.firewall = append(w.firewall, change{
				desc: fmt.Sprintf("disable firewall rule %d (%s)", pos, ruleText(r)),
				do:   func(ctx context.Context) error { return x.put(ctx, p, map[string]any{"enable": 0}, nil) },
			})
		}
	}
	// 3. Allow rules for management and forensics, after the others.
	for _, ar := range allowRules(rec.Allow) {
		if slices.ContainsFunc(st.rules, func(r map[string]string) bool { return ar.matches(r, m) && r["enable"] == "1" }) {
			continue
		}
		rule := map[string]any{"type": ar.typ, "action": "ACCEPT", ar.field: ar.cidr, "enable": 1, "comment": m, "pos": len(st.rules)}
		w.firewall = append(w.firewall, change{
			desc: fmt.Sprintf("add firewall rule %s ACCEPT %s %s (comment %s)", ar.typ, ar.field, ar.cidr, m),
			do:   func(ctx context.Context) error { return x.post(ctx, x.ct.path("/firewall/rules"), rule, nil) },
		})
	}
	// 4. The cut: firewall on, DROP both ways.
	o := st.options
	if o["enable"] != "1" || o["policy_in"] != "DROP" || o["policy_out"] != "DROP" {
		w.firewall = append(w.firewall, change{
			desc: fmt.Sprintf("set firewall options enable=1 policy_in=DROP policy_out=DROP (now enable=%s policy_in=%s policy_out=%s)",
				cmp.Or(o["enable"], "0"), cmp.Or(o["policy_in"], "DROP"), cmp.Or(o["policy_out"], "ACCEPT")),
			do: func(ctx context.Context) error {
				return x.put(ctx, x.ct.path("/firewall/options"), map[string]any{"enable": 1, "policy_in": "DROP", "policy_out": "DROP"}, nil)
			},
		})
	}
	return w, nil
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
