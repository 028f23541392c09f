package pve

import (
	"fmt"
	"maps"
	"slices"
)

// Security groups (/cluster/firewall/groups), as pve-firewall keeps them in
// cluster.fw: named rule lists that a guest's rule of type "group" (action
// = the group's name) evaluates in its place. See [Server.EffectiveIsolation]
// for how the lab evaluates them.

// secGroup is one security group.
type secGroup struct {
	comment string
	rules   []map[string]string
}

// groupLocked returns the request's group, or PVE's error for a missing one.
func (s *Server) groupLocked(r *request) (*secGroup, *apiError) {
	g := s.st.groups[r.params["group"]]
	if g == nil {
		return nil, errf("no such security group '%s'", r.params["group"])
	}
	return g, nil
}

func (s *Server) groupSyslog(r *request, what string) {
	for _, n := range s.st.nodes {
		s.st.syslog(n.name, s.now(), "pve-firewall[1042]", fmt.Sprintf("security group %s: %s by %s", r.params["group"], what, r.auth.full()))
	}
}

// hGroupList lists the groups (name, comment) with the digest of that list.
func hGroupList(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []map[string]string
	for _, name := range slices.Sorted(maps.Keys(s.st.groups)) {
		e := map[string]string{"group": name}
		if c := s.st.groups[name].comment; c != "" {
			e["comment"] = c
		}
		list = append(list, e)
	}
	d := rulesDigest(list)
	out := []map[string]any{}
	for _, e := range list {
		m := map[string]any{"digest": d}
		for k, v := range e {
			m[k] = v
		}
		out = append(out, m)
	}
	return result{data: out}, nil
}

// hGroupCreate creates a group; with rename, renames one (rename == group
// updates its comment) and re-points the rules that reference it.
func hGroupCreate(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, rename := r.params["group"], r.params["rename"]
	comment, hasComment := r.params["comment"]
	if rename == "" {
		if s.st.groups[name] != nil {
			return result{}, paramErr(map[string]string{"group": fmt.Sprintf("Security group '%s' already exists", name)})
		}
		s.st.groups[name] = &secGroup{comment: comment}
		s.groupSyslog(r, "created")
		return result{data: nil}, nil
	}
	g := s.st.groups[rename]
	if g == nil {
		return result{}, paramErr(map[string]string{"group": fmt.Sprintf("Security group '%s' does not exist", rename)})
	}
	if s.st.groups[name] != nil && name != rename {
		return result{}, paramErr(map[string]string{"group": fmt.Sprintf("Security group '%s' does already exist", name)})
	}
	if hasComment {
		g.comment = comment
	}
	if name != rename {
		delete(s.st.groups, rename)
		s.st.groups[name] = g
		for _, ct := range s.st.cts {
			for _, rule := range ct.fw.rules {
				if rule["type"] == "group" && rule["action"] == rename {
					rule["action"] = name
				}
			}
		}
	}
	s.groupSyslog(r, "renamed from "+rename)
	return result{data: nil}, nil
}

// hGroupDelete deletes an empty group (references to it stay, as in PVE).
func hGroupDelete(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, aerr := s.groupLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if len(g.rules) > 0 {
		return result{}, errf("Security group '%s' is not empty", r.params["group"])
	}
	delete(s.st.groups, r.params["group"])
	s.groupSyslog(r, "deleted")
	return result{data: nil}, nil
}

// hGroupRules lists a group's rules.
func hGroupRules(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, aerr := s.groupLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	d := rulesDigest(g.rules)
	out := []map[string]any{}
	for i, rule := range g.rules {
		out = append(out, ruleJSON(rule, i, d))
	}
	return result{data: out}, nil
}

func hGroupRuleCreate(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, aerr := s.groupLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	rules, pos, rule, aerr := createRule(g.rules, r, true)
	if aerr != nil {
		return result{}, aerr
	}
	g.rules = rules
	s.groupSyslog(r, fmt.Sprintf("rule added at pos %d: %s", pos, renderRule(rule)))
	return result{data: nil}, nil
}

func (s *Server) groupRuleLocked(r *request) (*secGroup, int, *apiError) {
	g, aerr := s.groupLocked(r)
	if aerr != nil {
		return nil, 0, aerr
	}
	pos, aerr := rulePos(g.rules, r)
	return g, pos, aerr
}

func hGroupRuleGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, pos, aerr := s.groupRuleLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	return result{data: ruleJSON(g.rules[pos], pos, rulesDigest(g.rules))}, nil
}

func hGroupRulePut(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, pos, aerr := s.groupRuleLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	rules, what, aerr := updateRule(g.rules, pos, r, true)
	if aerr != nil {
		return result{}, aerr
	}
	g.rules = rules
	s.groupSyslog(r, what)
	return result{data: nil}, nil
}

func hGroupRuleDelete(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, pos, aerr := s.groupRuleLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	rules, aerr := deleteRule(g.rules, pos, r)
	if aerr != nil {
		return result{}, aerr
	}
	g.rules = rules
	s.groupSyslog(r, fmt.Sprintf("rule at pos %d deleted", pos))
	return result{data: nil}, nil
}

// SecurityGroup returns a copy of a security group's rules (nil, false if
// it does not exist). Security groups are cluster-wide and outlive the
// isolations that use them, so they are not part of [StateSnapshot].
func (s *Server) SecurityGroup(name string) ([]map[string]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.st.groups[name]
	if g == nil {
		return nil, false
	}
	out := []map[string]string{}
	for _, r := range g.rules {
		out = append(out, cloneMap(r))
	}
	return out, true
}

// SecurityGroups returns the names of the security groups, sorted.
func (s *Server) SecurityGroups() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.st.groups))
}
