package pve

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var ruleFields = []string{"type", "action", "enable", "source", "dest", "proto", "dport", "sport", "iface", "macro", "log", "icmp-type", "comment"}

func hCTFirewallIndex(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, aerr := s.ctLocked(r); aerr != nil {
		return result{}, aerr
	}
	var out []map[string]string
	for _, n := range []string{"rules", "aliases", "ipset", "options", "log", "refs"} {
		out = append(out, map[string]string{"name": n})
	}
	return result{data: out}, nil
}

func hCTFWOptionsGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	return result{data: optionsJSON(ct.fw.options, optionsDigest(ct.fw.options))}, nil
}

// As in pve-firewall, the options and the rule list of a firewall file
// have digests of their own (copy_opject_with_digest of the options,
// copy_list_with_digest of the rules): a digest-checked options update
// does not conflict with a rule added at the same time.

// optionsDigest is the digest of firewall options.
func optionsDigest(opts map[string]string) string { return fwDigest(fwConfig{options: opts}) }

// rulesDigest is the digest of a rule list.
func rulesDigest(rules []map[string]string) string { return fwDigest(fwConfig{rules: rules}) }

// checkDigest fails when the request's digest is not current.
func checkDigest(r *request, current string) *apiError {
	if d := r.params["digest"]; d != "" && d != current {
		return errf("detected modified configuration - file changed by other user? Try again.")
	}
	return nil
}

func (s *Server) fwSyslog(ct *container, r *request, what string) {
	s.st.syslog(ct.node, s.now(), "pve-firewall[1042]", fmt.Sprintf("CT %d firewall %s by %s", ct.vmid, what, r.auth.full()))
	ct.fwLog = append(ct.fwLog, logLine{t: s.now(), text: fmt.Sprintf("%d 6 - %s firewall %s", ct.vmid, s.now().UTC().Format("02/Jan/2006:15:04:05 -0700"), what)})
}

func hCTFWOptionsPut(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if aerr := checkDigest(r, optionsDigest(ct.fw.options)); aerr != nil {
		return result{}, aerr
	}
	applyOptions(ct.fw.options, r.params, map[string]bool{"node": true, "vmid": true})
	s.fwSyslog(ct, r, fmt.Sprintf("options updated (enable=%s policy_in=%s policy_out=%s)",
		orDefault(ct.fw.options["enable"], "0"), orDefault(ct.fw.options["policy_in"], "DROP"), orDefault(ct.fw.options["policy_out"], "ACCEPT")))
	return result{data: nil}, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func ruleJSON(rule map[string]string, pos int, digest string) map[string]any {
	m := map[string]any{"pos": pos, "digest": digest}
	for k, v := range rule {
		if k == "enable" {
			n, _ := strconv.Atoi(v)
			m[k] = n
			continue
		}
		m[k] = v
	}
	if _, ok := m["enable"]; !ok {
		m["enable"] = 0
	}
	ipv := 0
	for _, k := range []string{"source", "dest"} {
		if ip := firstIP(rule[k]); ip != nil {
			if ip.To4() != nil {
				ipv = 4
			} else {
				ipv = 6
			}
		}
	}
	if ipv != 0 {
		m["ipversion"] = ipv
	}
	return m
}

func firstIP(v string) net.IP {
	if v == "" {
		return nil
	}
	a := strings.Split(strings.Split(v, ",")[0], "-")[0]
	if ip, _, err := net.ParseCIDR(a); err == nil {
		return ip
	}
	return net.ParseIP(a)
}

// reSecurityGroup is pve-firewall's security group name pattern.
var reSecurityGroup = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_]+$`)

// verifyRule mirrors pve-firewall's verify_rule checks that raise 400.
// inGroup is the rule_env "group": a security group's rules cannot
// reference groups. As in PVE, a rule may reference a group that does not
// exist (yet): it is stored, and the firewall treats the group as empty.
func verifyRule(rule map[string]string, inGroup bool) *apiError {
	errs := map[string]string{}
	switch rule["type"] {
	case "in", "out", "forward":
		switch rule["action"] {
		case "ACCEPT", "DROP", "REJECT":
		default:
			errs["action"] = fmt.Sprintf("unknown action '%s'", rule["action"])
		}
	case "group":
		if inGroup {
			errs["type"] = "security groups not allowed"
		}
		if !reSecurityGroup.MatchString(rule["action"]) {
			errs["action"] = "invalid characters in security group name"
		}
	}
	if (rule["dport"] != "" || rule["sport"] != "") && rule["proto"] == "" && rule["macro"] == "" {
		key := "dport"
		if rule["dport"] == "" {
			key = "sport"
		}
		errs["proto"] = fmt.Sprintf("missing property - '%s' requires this property", key)
	}
	if ifc := rule["iface"]; ifc != "" && !strings.HasPrefix(ifc, "net") {
		errs["iface"] = fmt.Sprintf("invalid interface name '%s' - use net[0-9]+", ifc)
	}
	if len(errs) > 0 {
		return paramErr(errs)
	}
	return nil
}

func hCTFWRules(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	d := rulesDigest(ct.fw.rules)
	out := []map[string]any{}
	for i, rule := range ct.fw.rules {
		out = append(out, ruleJSON(rule, i, d))
	}
	return result{data: out}, nil
}

func hCTFWRuleCreate(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	rules, pos, rule, aerr := createRule(ct.fw.rules, r, false)
	if aerr != nil {
		return result{}, aerr
	}
	ct.fw.rules = rules
	s.fwSyslog(ct, r, fmt.Sprintf("rule added at pos %d: %s", pos, renderRule(rule)))
	return result{data: nil}, nil
}

// createRule adds the rule of a create_rule request to rules. PVE's
// create_rule checks no digest. The lab honours pos (PVE 9.1 ignores it
// and always inserts at position 0, which is what pos 0 gives).
func createRule(rules []map[string]string, r *request, inGroup bool) ([]map[string]string, int, map[string]string, *apiError) {
	rule := map[string]string{"enable": "0"}
	for _, f := range ruleFields {
		if v, ok := r.params[f]; ok && v != "" {
			rule[f] = v
		}
	}
	if aerr := verifyRule(rule, inGroup); aerr != nil {
		return nil, 0, nil, aerr
	}
	pos := 0
	if v, ok := r.params["pos"]; ok {
		pos, _ = strconv.Atoi(v)
		if pos > len(rules) {
			pos = len(rules)
		}
	}
	out := append([]map[string]string{}, rules[:pos]...)
	out = append(out, rule)
	return append(out, rules[pos:]...), pos, rule, nil
}

// rulePos returns the request's rule position, checked against rules.
func rulePos(rules []map[string]string, r *request) (int, *apiError) {
	pos, _ := strconv.Atoi(r.params["pos"])
	if pos < 0 || pos >= len(rules) {
		return pos, errf("no rule at position %d", pos)
	}
	return pos, nil
}

func (s *Server) ruleLocked(r *request) (*container, int, *apiError) {
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return nil, 0, aerr
	}
	pos, aerr := rulePos(ct.fw.rules, r)
	return ct, pos, aerr
}

func hCTFWRuleGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, pos, aerr := s.ruleLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	return result{data: ruleJSON(ct.fw.rules[pos], pos, rulesDigest(ct.fw.rules))}, nil
}

func hCTFWRulePut(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, pos, aerr := s.ruleLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	rules, what, aerr := updateRule(ct.fw.rules, pos, r, false)
	if aerr != nil {
		return result{}, aerr
	}
	ct.fw.rules = rules
	s.fwSyslog(ct, r, what)
	return result{data: nil}, nil
}

// updateRule applies an update_rule request (a move, or changed fields)
// to the rule at pos, after checking the list's digest; it returns the
// new list and what changed.
func updateRule(rules []map[string]string, pos int, r *request, inGroup bool) ([]map[string]string, string, *apiError) {
	if aerr := checkDigest(r, rulesDigest(rules)); aerr != nil {
		return nil, "", aerr
	}
	if mv, ok := r.params["moveto"]; ok {
		to, _ := strconv.Atoi(mv)
		rule := rules[pos]
		rest := append(append([]map[string]string{}, rules[:pos]...), rules[pos+1:]...)
		if to > pos {
			to-- // PVE inserts before the rule that was at "moveto"
		}
		if to > len(rest) {
			to = len(rest)
		}
		if to < 0 {
			to = 0
		}
		return append(append(append([]map[string]string{}, rest[:to]...), rule), rest[to:]...), fmt.Sprintf("rule moved from pos %d to %d", pos, to), nil
	}
	rule := cloneMap(rules[pos])
	for _, k := range splitList(r.params["delete"]) {
		delete(rule, k)
	}
	for _, f := range ruleFields {
		if v, ok := r.params[f]; ok {
			rule[f] = v
		}
	}
	if aerr := verifyRule(rule, inGroup); aerr != nil {
		return nil, "", aerr
	}
	out := append([]map[string]string{}, rules...)
	out[pos] = rule
	return out, fmt.Sprintf("rule at pos %d updated: %s", pos, renderRule(rule)), nil
}

// deleteRule removes the rule at pos after checking the list's digest.
func deleteRule(rules []map[string]string, pos int, r *request) ([]map[string]string, *apiError) {
	if aerr := checkDigest(r, rulesDigest(rules)); aerr != nil {
		return nil, aerr
	}
	return append(append([]map[string]string{}, rules[:pos]...), rules[pos+1:]...), nil
}

func hCTFWRuleDelete(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, pos, aerr := s.ruleLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	rules, aerr := deleteRule(ct.fw.rules, pos, r)
	if aerr != nil {
		return result{}, aerr
	}
	ct.fw.rules = rules
	s.fwSyslog(ct, r, fmt.Sprintf("rule at pos %d deleted", pos))
	return result{data: nil}, nil
}

func hCTFWLog(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	since, _ := strconv.ParseInt(r.params["since"], 10, 64)
	until, _ := strconv.ParseInt(r.params["until"], 10, 64)
	var lines []string
	for _, l := range ct.fwLog {
		if since > 0 && l.t.Unix() < since || until > 0 && l.t.Unix() > until {
			continue
		}
		lines = append(lines, l.text)
	}
	page, total := pageLines(lines, intParam(r, "start", 0), intParam(r, "limit", 50))
	return result{data: page, extra: map[string]any{"total": total}}, nil
}

func ipsetDigest(set *ipset) string {
	var parts []string
	for _, e := range set.entries {
		parts = append(parts, renderRule(e))
	}
	return fwDigest(fwConfig{options: map[string]string{"ipset": strings.Join(parts, ";"), "comment": set.comment}})
}

func hCTIPSetList(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	names := make([]string, 0, len(ct.fw.ipsets))
	for n := range ct.fw.ipsets {
		names = append(names, n)
	}
	sort.Strings(names)
	out := []map[string]any{}
	d := fwDigest(ct.fw)
	for _, n := range names {
		m := map[string]any{"name": n, "digest": d}
		if c := ct.fw.ipsets[n].comment; c != "" {
			m["comment"] = c
		}
		out = append(out, m)
	}
	return result{data: out}, nil
}

func hCTIPSetCreate(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	name := r.params["name"]
	if rename := r.params["rename"]; rename != "" {
		set := ct.fw.ipsets[rename]
		if set == nil {
			return result{}, errf("IPSet '%s' does not exist", rename)
		}
		delete(ct.fw.ipsets, rename)
		ct.fw.ipsets[name] = set
		return result{data: nil}, nil
	}
	if ct.fw.ipsets[name] != nil {
		return result{}, errf("IPSet '%s' already exists", name)
	}
	ct.fw.ipsets[name] = &ipset{comment: r.params["comment"]}
	s.fwSyslog(ct, r, "ipset "+name+" created")
	return result{data: nil}, nil
}

func (s *Server) ipsetLocked(r *request) (*container, *ipset, *apiError) {
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	set := ct.fw.ipsets[r.params["name"]]
	if set == nil {
		return ct, nil, errf("no such IPSet '%s'", r.params["name"])
	}
	return ct, set, nil
}

func hCTIPSetGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, set, aerr := s.ipsetLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	out := []map[string]any{}
	d := ipsetDigest(set)
	for _, e := range set.entries {
		m := map[string]any{"cidr": e["cidr"], "digest": d}
		if c := e["comment"]; c != "" {
			m["comment"] = c
		}
		if e["nomatch"] == "1" {
			m["nomatch"] = 1
		}
		out = append(out, m)
	}
	return result{data: out}, nil
}

func hCTIPSetDelete(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, set, aerr := s.ipsetLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if force, _ := parseBool(r.params["force"]); len(set.entries) > 0 && !force {
		return result{}, errf("IPSet '%s' is not empty", r.params["name"])
	}
	delete(ct.fw.ipsets, r.params["name"])
	s.fwSyslog(ct, r, "ipset "+r.params["name"]+" deleted")
	return result{data: nil}, nil
}

func hCTIPSetAdd(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, set, aerr := s.ipsetLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	cidr := r.params["cidr"]
	for _, e := range set.entries {
		if e["cidr"] == cidr {
			return result{}, errf("address '%s' already exists", cidr)
		}
	}
	e := map[string]string{"cidr": cidr}
	if c := r.params["comment"]; c != "" {
		e["comment"] = c
	}
	if nm, _ := parseBool(r.params["nomatch"]); nm {
		e["nomatch"] = "1"
	}
	set.entries = append(set.entries, e)
	s.fwSyslog(ct, r, "ipset "+r.params["name"]+" entry "+cidr+" added")
	return result{data: nil}, nil
}

func (s *Server) ipsetEntryLocked(r *request) (*container, *ipset, int, *apiError) {
	ct, set, aerr := s.ipsetLocked(r)
	if aerr != nil {
		return nil, nil, 0, aerr
	}
	for i, e := range set.entries {
		if e["cidr"] == r.params["cidr"] {
			return ct, set, i, nil
		}
	}
	return ct, set, 0, errf("no such IP/Network")
}

func hCTIPSetEntryGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, set, i, aerr := s.ipsetEntryLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	e := set.entries[i]
	m := map[string]any{"cidr": e["cidr"], "digest": ipsetDigest(set)}
	if c := e["comment"]; c != "" {
		m["comment"] = c
	}
	if e["nomatch"] == "1" {
		m["nomatch"] = 1
	}
	return result{data: m}, nil
}

func hCTIPSetEntryPut(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, set, i, aerr := s.ipsetEntryLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if c, ok := r.params["comment"]; ok {
		set.entries[i]["comment"] = c
	}
	if v, ok := r.params["nomatch"]; ok {
		b, _ := parseBool(v)
		set.entries[i]["nomatch"] = strconv.Itoa(btoi(b))
	}
	return result{data: nil}, nil
}

func hCTIPSetEntryDelete(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, set, i, aerr := s.ipsetEntryLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	set.entries = append(set.entries[:i], set.entries[i+1:]...)
	s.fwSyslog(ct, r, "ipset "+r.params["name"]+" entry "+r.params["cidr"]+" deleted")
	return result{data: nil}, nil
}
