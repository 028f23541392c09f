package proxmox

import (
	"context"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
)

// ctState is what isolation reads of a container.
type ctState struct {
	conf    map[string]any
	options map[string]string
	// optionsDigest is the digest of the firewall options as read (PVE
	// keeps one for the options and one for the rule list).
	optionsDigest string
	rules         []map[string]string
	// datacenterOn is the datacenter firewall's enable option (read only
	// when asked: [stateParts.datacenter]).
	datacenterOn bool
	// group is the security group asked for ([stateParts.group]).
	group *groupState
}

// stateParts choose what [call.readStateParts] reads.
type stateParts struct {
	config, options, rules, datacenter bool
	// group names a security group to read with the rest ("": none).
	group string
}

// firewallParts are the container's firewall options and rules.
var firewallParts = stateParts{options: true, rules: true}

// allParts are the container's config, firewall options and rules.
var allParts = stateParts{config: true, options: true, rules: true}

// readState reads config, firewall options and rules.
func (x *call) readState(ctx context.Context) (*ctState, error) {
	return x.readStateParts(ctx, allParts)
}

// readStateParts reads the parts of the container's state asked for, all
// at once (the reads are independent), and completes a deferred check of
// the resolved container against its config ([Activities.beginDeferred]).
func (x *call) readStateParts(ctx context.Context, want stateParts) (*ctState, error) {
	st := &ctState{}
	var opts, dc map[string]any
	var rules []map[string]any
	var g errgroup.Group
	if want.config {
		g.Go(func() error { return x.get(ctx, x.ct.path("/config"), &st.conf) })
	}
	if want.options {
		g.Go(func() error { return x.get(ctx, x.ct.path("/firewall/options"), &opts) })
	}
	if want.rules {
		g.Go(func() error { return x.get(ctx, x.ct.path("/firewall/rules"), &rules) })
	}
	if want.datacenter {
		g.Go(func() error { return x.get(ctx, "/cluster/firewall/options", &dc) })
	}
	if want.group != "" {
		g.Go(func() (err error) {
			st.group, err = x.readGroup(ctx, want.group)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if want.config {
		if err := x.checkResolved(st.conf); err != nil {
			return nil, err
		}
	}
	st.datacenterOn = str(dc["enable"]) == "1"
	st.optionsDigest = str(opts["digest"])
	st.options = map[string]string{}
	for k, v := range opts {
		if k != "digest" {
			st.options[k] = str(v)
		}
	}
	st.rules = ruleFields(rules)
	return st, nil
}

// ruleFields are firewall rules as read (a container's or a security
// group's), each as its fields in text, without the ones that describe the
// list rather than the rule: pos, digest, ipversion.
func ruleFields(rules []map[string]any) []map[string]string {
	var out []map[string]string
	for _, r := range rules {
		m := map[string]string{}
		for k, v := range r {
			switch k {
			case "pos", "digest", "ipversion":
			default:
				m[k] = str(v)
			}
		}
		out = append(out, m)
	}
	return out
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

// applyTogether applies independent changes concurrently and returns the
// first error; every change runs to its end (none is cut off mid-call).
func applyTogether(ctx context.Context, changes []change) error {
	var g errgroup.Group
	for _, c := range changes {
		g.Go(func() error { return c.do(ctx) })
	}
	return g.Wait()
}

func describe(changes []change) []string {
	out := make([]string, 0, len(changes))
	for _, c := range changes {
		out = append(out, c.desc)
	}
	return out
}

// allowRule is one rule kept open during a firewall isolation.
