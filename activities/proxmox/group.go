package proxmox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// A firewall isolation puts one rule at position 0 of the container's
// firewall rules: type "group", action the name of a PVE security group
// that holds the allow list (ACCEPT in from and out to each network) and
// then a DROP in and a DROP out without conditions. PVE evaluates a group
// rule by jumping to the group's rules of the packet's direction, and the
// first rule that matches decides, so nothing after the group rule (the
// container's own rules) is reached: they need not be touched, nor
// recorded. The group is cluster-wide and shared by every isolation with
// the same allow list: its name is derived from the list, it is created
// once (a concurrent creator is tolerated), and a process remembers that it
// exists; every isolation's read-back reads it again, so a group deleted or
// changed since is noticed and put right.

// groupPrefix starts the name of every quarantine security group.
const groupPrefix = "iru-q-"

// groupComment marks the rules of a quarantine group.
const groupComment = "iru quarantine"

// groupName is the security group of an allow list: iru-q- and 12 hex
// digits of a hash of the sorted list (PVE allows 18 characters).
func groupName(allow []string) string {
	l := slices.Clone(allow)
	slices.Sort(l)
	sum := sha256.Sum256([]byte("iru-quarantine-group/v1\n" + strings.Join(l, "\n")))
	return groupPrefix + hex.EncodeToString(sum[:])[:12]
}

// groupRules are the rules of the group of an allow list, top first.
func groupRules(allow []string) []map[string]string {
	var out []map[string]string
	for _, ar := range allowRules(allow) {
		out = append(out, map[string]string{"type": ar.typ, "action": "ACCEPT", ar.field: ar.cidr, "enable": "1", "comment": groupComment})
	}
	return append(out,
		map[string]string{"type": "in", "action": "DROP", "enable": "1", "comment": groupComment},
		map[string]string{"type": "out", "action": "DROP", "enable": "1", "comment": groupComment})
}

// ruleMatchFields are the fields that narrow what a rule matches.
var ruleMatchFields = []string{"source", "dest", "proto", "dport", "sport", "macro", "iface", "icmp-type"}

// effectiveRules is what a list of rules does to one direction's traffic
// as pve-firewall evaluates it (first match wins): the enabled rules of
// that direction, each once (a repeated rule can never decide), up to and
// including the first DROP or REJECT without conditions (nothing after it
// is reached), each as its action and conditions.
func effectiveRules(rules []map[string]string, dir string) []string {
	var out []string
	for _, r := range rules {
		if r["type"] != dir || r["enable"] != "1" {
			continue
		}
		key := strings.ToUpper(r["action"])
		uncond := true
		for _, f := range ruleMatchFields {
			if v := r[f]; v != "" {
				key += " " + f + "=" + v
				uncond = false
			}
		}
		if slices.Contains(out, key) {
			continue
		}
		out = append(out, key)
		if uncond && (key == "DROP" || key == "REJECT") {
			break
		}
	}
	return out
}

// groupProblems lists how a group's rules differ in effect from want.
func groupProblems(name string, rules, want []map[string]string) []string {
	var p []string
	for _, dir := range []string{"in", "out"} {
		got, exp := effectiveRules(rules, dir), effectiveRules(want, dir)
		if !slices.Equal(got, exp) {
			p = append(p, fmt.Sprintf("security group %s: %s rules [%s], want [%s]", name, dir, strings.Join(got, "; "), strings.Join(exp, "; ")))
		}
	}
	return p
}

// groupCache remembers the quarantine groups this process saw complete,
// and serializes the changes to them: isolations with the same allow list
// that start together must not build its group at the same time (each
// inserts at position 0, so interleaved inserts put one's DROP above the
// other's ACCEPT, and deletes by position then hit the wrong rules).
type groupCache struct {
	mu sync.Mutex
	ok map[string]bool
	// build is held while a group is changed.
	build sync.Mutex
}

func (c *groupCache) has(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok[name]
}

func (c *groupCache) set(name string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok == nil {
		c.ok = map[string]bool{}
	}
	if ok {
		c.ok[name] = true
	} else {
		delete(c.ok, name)
	}
}

// groupState is a security group as read: its rules, or exists false.
type groupState struct {
	exists bool
	rules  []map[string]string
}

func groupPath(name string) string { return "/cluster/firewall/groups/" + name }

// readGroup reads a security group; PVE answers 500 "no such security
// group" for one that does not exist.
func (x *call) readGroup(ctx context.Context, name string) (*groupState, error) {
	var rules []map[string]any
	err := x.c.Get(ctx, groupPath(name), &rules)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusInternalServerError && strings.Contains(ae.Message, "no such security group") {
		return &groupState{}, nil
	}
	if err != nil {
		return nil, classify(x.what(), http.MethodGet, groupPath(name), err)
	}
	return &groupState{exists: true, rules: ruleFields(rules)}, nil
}

// groupChanges lists what makes the group name (as read in gs) hold the
// rules of allow: create it if missing (tolerating a concurrent creator),
// then, unless its rules already have the wanted effect, put the wanted
// rules in front of whatever it holds, bottom-up at position 0 (where PVE
// inserts), so that it never lets through more than before, and delete
// what was there.
func (x *call) groupChanges(name string, allow []string, gs *groupState) []change {
	want := groupRules(allow)
	if gs.exists && len(groupProblems(name, gs.rules, want)) == 0 {
		return nil
	}
	var changes []change
	if !gs.exists {
		changes = append(changes, change{
			desc: fmt.Sprintf("create the security group %s (allow %s, then DROP in and out)", name, orNone(strings.Join(allow, ","))),
			do: func(ctx context.Context) error {
				err := x.c.Post(ctx, "/cluster/firewall/groups", map[string]any{"group": name, "comment": "IRU Responder quarantine: allow " + orNone(strings.Join(allow, ","))}, nil)
				var ae *APIError
				if errors.As(err, &ae) && ae.Status == http.StatusBadRequest && strings.Contains(ae.Params["group"], "already exists") {
					return nil // created concurrently: its rules are checked below
				}
				return classify(x.what(), http.MethodPost, "/cluster/firewall/groups", err)
			},
		})
	}
	for i := len(want) - 1; i >= 0; i-- {
		body := map[string]any{"pos": 0, "enable": 1}
		for k, v := range want[i] {
			if k != "enable" {
				body[k] = v
			}
		}
		changes = append(changes, change{
			desc: fmt.Sprintf("add to the security group %s: %s", name, ruleText(want[i])),
			do:   func(ctx context.Context) error { return x.post(ctx, groupPath(name), body, nil) },
		})
	}
	for pos := len(gs.rules) - 1; pos >= 0; pos-- {
		p := fmt.Sprintf("%s/%d", groupPath(name), pos+len(want))
		changes = append(changes, change{
			desc: fmt.Sprintf("delete the former rule %d of the security group %s (%s)", pos, name, ruleText(gs.rules[pos])),
			do:   func(ctx context.Context) error { return x.del(ctx, p, nil) },
		})
	}
	return changes
}

// ensureGroup makes the group of allow exist with its rules, starting
// from gs (read just before), reads it back and remembers it. A change
// made concurrently by someone else fails the read-back (retryable).
//
// Changes are made by one isolation of the process at a time, from the
// group as read once it holds the lock (another may just have built it).
// Workers in other processes building the same group at the same moment
// can still interleave; the read-back then fails and the retry rebuilds it.
func (x *call) ensureGroup(ctx context.Context, allow []string, gs *groupState) error {
	name := groupName(allow)
	if len(x.groupChanges(name, allow, gs)) == 0 {
		x.a.groups.set(name, true)
		return nil
	}
	// Not as remembered (deleted or changed since, or never built): forget
	// it, so that the check below is on what the lock's holder built.
	x.a.groups.set(name, false)
	x.a.groups.build.Lock()
	defer x.a.groups.build.Unlock()
	if x.a.groups.has(name) {
		// Built by another isolation of this process while this one
		// waited; the caller's read-back checks it.
		return nil
	}
	fresh, err := x.readGroup(ctx, name)
	if err != nil {
		return err
	}
	changes := x.groupChanges(name, allow, fresh)
	if len(changes) == 0 {
		x.a.groups.set(name, true)
		return nil
	}
	if err := apply(ctx, changes); err != nil {
		return err
	}
	after, err := x.readGroup(ctx, name)
	if err != nil {
		return err
	}
	if !after.exists {
		return verifyError(fmt.Sprintf("%s: the security group %s is gone after its creation", x.what(), name))
	}
	if p := groupProblems(name, after.rules, groupRules(allow)); len(p) > 0 {
		return verifyError(fmt.Sprintf("%s: read-back: %s", x.what(), strings.Join(p, "; ")))
	}
	x.a.groups.set(name, true)
	return nil
}
