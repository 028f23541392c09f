package proxmox

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
)

// QuarantineTag is the tag pve.isolate adds to an isolated container.
const QuarantineTag = "quarantine"

// recordPrefix starts the description line holding the quarantine record.
const recordPrefix = "iru-quarantine:v1:"

// maxDescription is PVE's limit for a container description.
const maxDescription = 8192

// Isolation methods.
const (
	methodFirewall = "firewall"
	methodLinkDown = "link_down"
)

// priorState is the exact network state of a container before isolation.
type priorState struct {
	// Options are the CT firewall options (without digest).
	Options map[string]string `json:"options"`
	// Rules are the CT firewall rules in order (without pos/digest/ipversion).
	Rules []map[string]string `json:"rules"`
	// Nets are the netN property strings.
	Nets map[string]string `json:"nets"`
	// Tags is the tag list as PVE returned it ("" when unset).
	Tags string `json:"tags,omitempty"`
	// Description is the description as PVE returned it ("" when unset).
	Description string `json:"description,omitempty"`
}

// quarantineRecord is kept (compressed) in the description of an isolated
// container: it is written in the same config update as the first change,
// so it always exists while anything of the isolation does.
type quarantineRecord struct {
	Incident    string     `json:"incident"`
	Method      string     `json:"method"`
	Allow       []string   `json:"allow,omitempty"`
	EvidenceRef string     `json:"evidence_ref,omitempty"`
	Prior       priorState `json:"prior"`
}

func marker(incident string) string { return "iru:" + incident }

func encodeRecord(r *quarantineRecord) (string, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode quarantine record: %w", err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(raw); err != nil {
		return "", fmt.Errorf("compress quarantine record: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("compress quarantine record: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(buf.Bytes()), nil
}

func decodeRecord(enc string) (*quarantineRecord, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return nil, fmt.Errorf("decode quarantine record: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decompress quarantine record: %w", err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("decompress quarantine record: %w", err)
	}
	var r quarantineRecord
	if err := json.Unmarshal(js, &r); err != nil {
		return nil, fmt.Errorf("decode quarantine record: %w", err)
	}
	return &r, nil
}

// recordDescription is the description of an isolated container: a line
// for people, the record and its signature, and the original text when it
// still fits.
func recordDescription(r *quarantineRecord, enc, sigLine string) (string, error) {
	d := fmt.Sprintf("IRU QUARANTINE: network isolated (%s) by IRU Responder for incident %s. Lift it with pve.unisolate; keep the next lines.\n%s%s\n%s%s\n",
		r.Method, r.Incident, recordPrefix, enc, recordSigPrefix, sigLine)
	if orig := strings.TrimRight(r.Prior.Description, "\n"); orig != "" && len(d)+1+len(orig) <= maxDescription {
		d += "\n" + orig + "\n"
	}
	if len(d) > maxDescription {
		return "", fmt.Errorf("quarantine record of %d bytes does not fit the %d byte description", len(d), maxDescription)
	}
	return d, nil
}

// ctState is what isolation reads of a container.
type ctState struct {
	conf    map[string]any
	options map[string]string
	rules   []map[string]string
}

// readState reads config, firewall options and rules.
func (x *call) readState(ctx context.Context) (*ctState, error) {
	st := &ctState{}
	if err := x.get(ctx, x.ct.path("/config"), &st.conf); err != nil {
		return nil, err
	}
	var opts map[string]any
	if err := x.get(ctx, x.ct.path("/firewall/options"), &opts); err != nil {
		return nil, err
	}
	st.options = map[string]string{}
	for k, v := range opts {
		if k != "digest" {
			st.options[k] = str(v)
		}
	}
	var rules []map[string]any
	if err := x.get(ctx, x.ct.path("/firewall/rules"), &rules); err != nil {
		return nil, err
	}
	for _, r := range rules {
		m := map[string]string{}
		for k, v := range r {
			switch k {
			case "pos", "digest", "ipversion":
			default:
				m[k] = str(v)
			}
		}
		st.rules = append(st.rules, m)
	}
	return st, nil
}

func (s *ctState) digest() string      { return str(s.conf["digest"]) }
func (s *ctState) tags() string        { return str(s.conf["tags"]) }
func (s *ctState) description() string { return str(s.conf["description"]) }

func (s *ctState) nets() map[string]string {
	out := map[string]string{}
	for _, k := range netKeys(s.conf) {
		out[k] = str(s.conf[k])
	}
	return out
}

func (s *ctState) prior() priorState {
	rules := make([]map[string]string, 0, len(s.rules))
	for _, r := range s.rules {
		rules = append(rules, maps.Clone(r))
	}
	return priorState{Options: maps.Clone(s.options), Rules: rules, Nets: s.nets(), Tags: s.tags(), Description: s.description()}
}

// recordLines returns the encoded record and its signature line in the
// description ("" when absent).
func (s *ctState) recordLines() (enc, sig string) {
	for _, l := range strings.Split(s.description(), "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, recordPrefix); ok && enc == "" {
			enc = v
		}
		if v, ok := strings.CutPrefix(l, recordSigPrefix); ok && sig == "" {
			sig = v
		}
	}
	return enc, sig
}

// record decodes the quarantine record in the description (nil if none)
// WITHOUT checking its signature: only for reading back what this call
// wrote. Anything acted upon goes through [call.trustedRecord].
func (s *ctState) record() (*quarantineRecord, error) {
	if enc, _ := s.recordLines(); enc != "" {
		return decodeRecord(enc)
	}
	return nil, nil
}

func (s *ctState) hasMarkerRules(m string) bool {
	return slices.ContainsFunc(s.rules, func(r map[string]string) bool { return r["comment"] == m })
}

// change is one planned modification: described for dry runs, applied otherwise.
type change struct {
	desc string
	do   func(ctx context.Context) error
}

func apply(ctx context.Context, changes []change) error {
	for _, c := range changes {
		if err := c.do(ctx); err != nil {
			return err
		}
	}
	return nil
}

func describe(changes []change) []string {
	out := make([]string, 0, len(changes))
	for _, c := range changes {
		out = append(out, c.desc)
	}
	return out
}

// allowRule is one rule kept open during a firewall isolation.
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
	problems := isolationProblems(st, rec)
	if rec.Method == methodFirewall {
		on, err := x.datacenterFirewall(ctx)
		if err != nil {
			return err
		}
		if !on {
			problems = append(problems, "datacenter firewall is off")
		}
	}
	if len(problems) > 0 {
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
	for _, k := range sortedKeys(nets) {
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
				orDefault(o["enable"], "0"), orDefault(o["policy_in"], "DROP"), orDefault(o["policy_out"], "ACCEPT")),
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
	for _, k := range sortedKeys(nets) {
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

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Unisolate implements [activities.PVEUnisolate]: it restores exactly the
// state recorded by pve.isolate of the same incident (firewall options
// including enable=0, rules and their order, netN strings, tags and
// description), removing the record last, and verifies the read-back. A
// container without this incident's record has nothing to lift: success.
func (a *Activities) Unisolate(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEUnisolateParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x, err := a.begin(ctx, in, activities.PVEUnisolate, p.Asset)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if in.IncidentID == "" {
		return activities.ActionResult{}, final(activities.ErrTypeBadParams, x.what()+": no incident id")
	}
	if in.DryRun {
		if err := x.requirePrivs(ctx, fmt.Sprintf("/vms/%d", x.ct.VMID), "VM.Audit", "VM.Config.Network", "VM.Config.Options"); err != nil {
			return activities.ActionResult{}, err
		}
	}
	m := marker(in.IncidentID)
	var rec *quarantineRecord
	var plan []string
	note := ""
	err = x.withLockWait(ctx, func() error {
		st, err := x.readState(ctx)
		if err != nil {
			return err
		}
		r, err := x.trustedRecord(ctx, st)
		if err != nil {
			return err
		}
		if r == nil || r.Incident != in.IncidentID {
			rec = nil
			if st.hasMarkerRules(m) {
				return final(activities.ErrTypeConflict, fmt.Sprintf(
					"%s: firewall rules commented %s exist but the quarantine record is gone from the description; restore manually from the prior state %s",
					x.what(), m, orNone(in.Undo["prior_ref"])))
			}
			note = fmt.Sprintf("nothing to lift: %s carries no isolation of incident %s", x.ct, in.IncidentID)
			if r != nil {
				note += " (it is quarantined by incident " + r.Incident + ")"
			}
			return nil
		}
		rec = r
		changes, err := x.restoreChanges(st, r)
		if err != nil {
			return err
		}
		if in.DryRun {
			plan = describe(changes)
			return nil
		}
		return apply(ctx, changes)
	})
	if err != nil {
		return activities.ActionResult{}, err
	}
	if rec == nil {
		res := activities.ActionResult{Outputs: map[string]string{"method": p.Method}, Summary: note}
		if in.DryRun {
			res.Plan = []string{note}
		}
		return res, nil
	}
	if in.DryRun {
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"method": rec.Method},
			Summary: fmt.Sprintf("dry run: would restore the network state of %s recorded in %s", x.ct, rec.EvidenceRef)}, nil
	}
	st, err := x.readState(ctx)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if diffs := priorDiff(st, rec.Prior); len(diffs) > 0 {
		return activities.ActionResult{}, verifyError(fmt.Sprintf("%s: read-back differs from the recorded prior state: %s", x.what(), strings.Join(diffs, "; ")))
	}
	return activities.ActionResult{
		Outputs:      map[string]string{"method": rec.Method},
		EvidenceRefs: []string{rec.EvidenceRef},
		Summary:      fmt.Sprintf("lifted the isolation (%s) of %s; restored the state recorded in %s", rec.Method, x.ct, rec.EvidenceRef),
	}, nil
}

// restoreChanges lists what is left to do to bring st back to rec.Prior:
// firewall options, then rules (ours deleted from the highest position,
// the container's own re-enabled), then the config with the record last.
func (x *call) restoreChanges(st *ctState, rec *quarantineRecord) ([]change, error) {
	var changes []change
	prior := rec.Prior
	m := marker(rec.Incident)
	if body := optionsBody(st.options, prior.Options); len(body) > 0 {
		changes = append(changes, change{
			desc: fmt.Sprintf("restore firewall options %s", fmtOptions(prior.Options)),
			do:   func(ctx context.Context) error { return x.put(ctx, x.ct.path("/firewall/options"), body, nil) },
		})
	}
	var own []map[string]string
	for pos := len(st.rules) - 1; pos >= 0; pos-- {
		r := st.rules[pos]
		if r["comment"] == m {
			p := x.ct.path("/firewall/rules/" + strconv.Itoa(pos))
			changes = append(changes, change{
				desc: fmt.Sprintf("delete firewall rule %d (%s)", pos, ruleText(r)),
				do:   func(ctx context.Context) error { return x.del(ctx, p, nil) },
			})
			continue
		}
		own = append([]map[string]string{r}, own...)
	}
	if !sameRulesButEnable(own, prior.Rules) {
		return nil, final(activities.ErrTypeConflict, fmt.Sprintf(
			"%s: the container's firewall rules changed during the isolation (%d rules now, %d recorded); restore them manually from %s",
			x.what(), len(own), len(prior.Rules), orNone(rec.EvidenceRef)))
	}
	for pos, r := range own {
		if want := orDefault(prior.Rules[pos]["enable"], "0"); orDefault(r["enable"], "0") != want {
			p := x.ct.path("/firewall/rules/" + strconv.Itoa(pos))
			n, _ := strconv.Atoi(want)
			changes = append(changes, change{
				desc: fmt.Sprintf("set firewall rule %d (%s) enable=%s", pos, ruleText(r), want),
				do:   func(ctx context.Context) error { return x.put(ctx, p, map[string]any{"enable": n}, nil) },
			})
		}
	}
	body := map[string]any{}
	var del, what []string
	cur := st.nets()
	for _, k := range sortedKeys(prior.Nets) {
		if c, ok := cur[k]; !ok || !sameProps(c, prior.Nets[k]) {
			body[k] = prior.Nets[k]
			what = append(what, "restore "+k)
		}
	}
	if normTags(st.tags()) != normTags(prior.Tags) {
		if prior.Tags == "" {
			del = append(del, "tags")
		} else {
			body["tags"] = prior.Tags
		}
		what = append(what, fmt.Sprintf("restore tags %q", prior.Tags))
	}
	if strings.TrimRight(st.description(), "\n") != strings.TrimRight(prior.Description, "\n") {
		if strings.TrimRight(prior.Description, "\n") == "" {
			del = append(del, "description")
		} else {
			body["description"] = prior.Description
		}
		what = append(what, "restore the description (removing the quarantine record)")
	}
	if len(del) > 0 {
		body["delete"] = strings.Join(del, ",")
	}
	if len(body) > 0 {
		body["digest"] = st.digest()
		changes = append(changes, change{
			desc: fmt.Sprintf("update the config of %s: %s", x.ct, strings.Join(what, ", ")),
			do:   func(ctx context.Context) error { return x.put(ctx, x.ct.path("/config"), body, nil) },
		})
	}
	return changes, nil
}

// optionsBody is the PUT body turning firewall options cur into want:
// changed keys set (numbers as numbers: go-proxmox's typed struct would
// drop enable=0), extra keys deleted.
func optionsBody(cur, want map[string]string) map[string]any {
	body := map[string]any{}
	for _, k := range sortedKeys(want) {
		if cur[k] != want[k] {
			if n, err := strconv.Atoi(want[k]); err == nil && isDigits(want[k]) {
				body[k] = n
			} else {
				body[k] = want[k]
			}
		}
	}
	var del []string
	for _, k := range sortedKeys(cur) {
		if _, ok := want[k]; !ok {
			del = append(del, k)
		}
	}
	if len(del) > 0 {
		body["delete"] = strings.Join(del, ",")
	}
	return body
}

func fmtOptions(o map[string]string) string {
	if len(o) == 0 {
		return "(none: PVE defaults)"
	}
	var parts []string
	for _, k := range sortedKeys(o) {
		parts = append(parts, k+"="+o[k])
	}
	return strings.Join(parts, " ")
}

func sameRulesButEnable(a, b []map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := maps.Clone(a[i]), maps.Clone(b[i])
		delete(x, "enable")
		delete(y, "enable")
		if !maps.Equal(x, y) {
			return false
		}
	}
	return true
}

func normTags(t string) string {
	parts := splitTags(strings.ToLower(t))
	sort.Strings(parts)
	return strings.Join(slices.Compact(parts), ";")
}

// priorDiff lists how st differs from the recorded prior state.
func priorDiff(st *ctState, prior priorState) []string {
	var d []string
	if !maps.Equal(st.options, prior.Options) {
		d = append(d, fmt.Sprintf("firewall options %s, recorded %s", fmtOptions(st.options), fmtOptions(prior.Options)))
	}
	if len(st.rules) != len(prior.Rules) {
		d = append(d, fmt.Sprintf("%d firewall rules, recorded %d", len(st.rules), len(prior.Rules)))
	} else {
		for i := range st.rules {
			if !maps.Equal(st.rules[i], prior.Rules[i]) {
				d = append(d, fmt.Sprintf("firewall rule %d is %s, recorded %s", i, ruleText(st.rules[i]), ruleText(prior.Rules[i])))
			}
		}
	}
	cur := st.nets()
	for _, k := range sortedKeys(prior.Nets) {
		if !sameProps(cur[k], prior.Nets[k]) {
			d = append(d, fmt.Sprintf("%s is %q, recorded %q", k, cur[k], prior.Nets[k]))
		}
	}
	if normTags(st.tags()) != normTags(prior.Tags) {
		d = append(d, fmt.Sprintf("tags %q, recorded %q", st.tags(), prior.Tags))
	}
	if strings.TrimRight(st.description(), "\n") != strings.TrimRight(prior.Description, "\n") {
		d = append(d, "description differs from the recorded one")
	}
	return d
}

// verifyError is a retryable read-back mismatch.
func verifyError(msg string) error {
	return temporal.NewApplicationError(msg, ErrTypeVerify)
}
