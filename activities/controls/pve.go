package controls

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/iru-responder/responder/activities"
	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/controls"
)

func (a *Activities) firewall(ctx context.Context) (pveact.FirewallState, error) {
	if a.PVE == nil {
		return pveact.FirewallState{}, fmt.Errorf("proxmox VE client: %w", errNotConfigured)
	}
	return a.PVE.ReadFirewallState(ctx)
}

func ctTarget(ct pveact.ContainerFirewall) string {
	return fmt.Sprintf("pve/%s/lxc/%d", ct.Node, ct.VMID)
}

func restoreFix(ct pveact.ContainerFirewall) (string, map[string]string) {
	return activities.PVEFirewallRestore, map[string]string{"node": ct.Node, "vmid": strconv.Itoa(ct.VMID)}
}

// ruleText renders a rule as a finding names it: "ACCEPT in tcp dport 22 from 0.0.0.0/0".
func ruleText(r pveact.FirewallRule) string {
	parts := []string{r.Action, r.Type}
	if r.Macro != "" {
		parts = append(parts, "macro "+r.Macro)
	}
	if r.Proto != "" {
		parts = append(parts, r.Proto)
	} else {
		parts = append(parts, "any protocol")
	}
	if r.Dport != "" {
		parts = append(parts, "dport "+r.Dport)
	} else if r.Macro == "" {
		parts = append(parts, "any port")
	}
	src := r.Source
	if src == "" {
		src = "0.0.0.0/0"
	}
	parts = append(parts, "from "+src)
	if r.Dest != "" {
		parts = append(parts, "to "+r.Dest)
	}
	if r.Iface != "" {
		parts = append(parts, "on "+r.Iface)
	}
	if r.Comment != "" {
		parts = append(parts, fmt.Sprintf("(%q)", r.Comment))
	}
	return strings.Join(parts, " ")
}

func ruleSetting(r pveact.FirewallRule) string { return fmt.Sprintf("firewall rule pos %d", r.Pos) }

// dropPolicy reports whether a policy drops by default ("" is PVE's default, given as def).
func dropPolicy(p, def string) bool {
	if p == "" {
		p = def
	}
	return p == "DROP" || p == "REJECT"
}

// portSet is a parsed dport: ranges of ports; all is true for "any port".
type portSet struct {
	all    bool
	ranges [][2]int
}

// parsePorts parses PVE's dport syntax (comma-separated ports and a:b
// ranges); service names cannot be verified and are an error.
func parsePorts(s string) (portSet, error) {
	if strings.TrimSpace(s) == "" {
		return portSet{all: true}, nil
	}
	var ps portSet
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, ":")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return portSet{}, fmt.Errorf("port %q is not a number", item)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return portSet{}, fmt.Errorf("port range %q", item)
			}
		}
		ps.ranges = append(ps.ranges, [2]int{a, b})
	}
	return ps, nil
}

// within reports whether every port of ps is in allowed.
func (ps portSet) within(allowed []int) bool {
	if ps.all {
		return false
	}
	for _, r := range ps.ranges {
		for p := r[0]; p <= r[1]; p++ {
			if !slices.Contains(allowed, p) {
				return false
			}
			if p == 65535 {
				break
			}
		}
	}
	return true
}

// ports lists the ports of ps (nil for all ports), bounded.
func (ps portSet) ports() []int {
	if ps.all {
		return nil
	}
	var out []int
	for _, r := range ps.ranges {
		for p := r[0]; p <= r[1] && len(out) < 70000; p++ {
			out = append(out, p)
			if p == 65535 {
				break
			}
		}
	}
	return out
}

// parseAddrs parses a rule's source or dest (comma-separated addresses,
// CIDRs, a-b ranges are refused); "" is any address. ipsets (+name) and
// aliases cannot be verified from the rule and are an error.
func parseAddrs(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, nil
	}
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		return nil, fmt.Errorf("%q is an ipset, alias or range the check cannot resolve", item)
	}
	return out, nil
}

// covered reports whether every prefix of ps lies within one of allowed.
func covered(ps, allowed []netip.Prefix) bool {
	for _, p := range ps {
		if !slices.ContainsFunc(allowed, func(a netip.Prefix) bool {
			return a.Addr().Is4() == p.Addr().Is4() && a.Bits() <= p.Bits() && a.Contains(p.Addr())
		}) {
			return false
		}
	}
	return true
}

// coversAddr reports whether one of ps contains addr.
func coversAddr(ps []netip.Prefix, addr netip.Addr) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(addr) })
}

func checkDatacenterFirewall(ctx context.Context, a *Activities, _ controls.Control) (any, verdict, error) {
	st, err := a.firewall(ctx)
	if err != nil {
		return nil, verdict{}, err
	}
	v := verdict{targets: 1}
	if st.Datacenter["enable"] != "1" {
		v.fail(activities.ControlFinding{Target: "pve/cluster", Setting: "datacenter firewall option enable",
			Observed: "enable=" + orNone(st.Datacenter["enable"]), Expected: "enable=1",
			Fix: activities.PVEFirewallEnable, FixParams: map[string]string{"scope": "datacenter"}})
	}
	return map[string]any{"datacenter": st.Datacenter}, v, nil
}

func orNone(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

func orAny(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func portsText(ps []int) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

func prefixesText(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "any source"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// firewallOn checks a selected container's firewall is enabled.
func firewallOn(v *verdict, ct pveact.ContainerFirewall) bool {
	if ct.Options["enable"] == "1" {
		return true
	}
	v.fail(activities.ControlFinding{Target: ctTarget(ct), Setting: "firewall option enable",
		Observed: fmt.Sprintf("%s: enable=%s", ct.Name, orNone(ct.Options["enable"])), Expected: "enable=1",
		Fix: activities.PVEFirewallEnable, FixParams: map[string]string{"scope": "container", "node": ct.Node, "vmid": strconv.Itoa(ct.VMID)}})
	return false
}

func checkIngress(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	st, err := a.firewall(ctx)
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	var seen []pveact.ContainerFirewall
	expected := fmt.Sprintf("inbound ACCEPT only on tcp/udp dport %s from %s", portsText(c.Params.Ports), prefixesText(c.Params.AllowedSources))
	for _, ct := range st.Containers {
		if !selected(c.Targets, ct.Name, ct.VMID, ct.Tags) {
			continue
		}
		v.targets++
		seen = append(seen, ct)
		fix, params := restoreFix(ct)
		if !firewallOn(&v, ct) {
			continue
		}
		if !dropPolicy(ct.Options["policy_in"], "DROP") {
			v.fail(activities.ControlFinding{Target: ctTarget(ct), Setting: "firewall option policy_in",
				Observed: fmt.Sprintf("%s: policy_in=%s", ct.Name, ct.Options["policy_in"]), Expected: "policy_in=DROP", Fix: fix, FixParams: params})
		}
		for _, r := range ct.Rules {
			if !r.Enable || r.Type == "out" {
				continue
			}
			bad := ""
			switch {
			case r.Type == "group":
				bad = "a security group's rules are not verified by the check"
			case r.Action != "ACCEPT":
				continue
			case r.Macro != "":
				bad = "a macro opens ports the control does not list"
			case r.Proto != "tcp" && r.Proto != "udp":
				bad = "the rule is not limited to tcp or udp ports"
			default:
				ps, err := parsePorts(r.Dport)
				switch {
				case err != nil:
					bad = err.Error()
				case !ps.within(c.Params.Ports):
					bad = "port not in the control's list"
				}
				if bad == "" && len(c.Params.AllowedSources) > 0 {
					src, err := parseAddrs(r.Source)
					switch {
					case err != nil:
						bad = "source " + err.Error()
					case !covered(src, c.Params.AllowedSources):
						bad = "source not in the control's allowed sources"
					}
				}
			}
			if bad != "" {
				v.fail(activities.ControlFinding{Target: ctTarget(ct), Setting: ruleSetting(r),
					Observed: fmt.Sprintf("%s: %s (%s)", ct.Name, ruleText(r), bad), Expected: expected, Fix: fix, FixParams: params})
			}
		}
	}
	return map[string]any{"containers": seen}, v, nil
}

// ctAddrs returns a container's interface addresses.
func ctAddrs(ct pveact.ContainerFirewall) []netip.Addr {
	var out []netip.Addr
	for _, n := range ct.Nets {
		for _, p := range n.Addrs {
			out = append(out, p.Addr())
		}
	}
	return out
}

// rulePorts returns the ports a rule opens (all ports for a macro or a
// dport the check cannot read).
func rulePorts(r pveact.FirewallRule) portSet {
	ps, err := parsePorts(r.Dport)
	if err != nil || r.Macro != "" {
		return portSet{all: true}
	}
	return ps
}

// intersects reports whether two port sets share a port.
func (ps portSet) intersects(o portSet) bool {
	if ps.all || o.all {
		return true
	}
	for _, a := range ps.ranges {
		for _, b := range o.ranges {
			if a[0] <= b[1] && b[0] <= a[1] {
				return true
			}
		}
	}
	return false
}

// admits reports whether one of ct's enabled ACCEPT rules of direction typ
// lets traffic on ports to or from peer (a rule's source for "in", its
// dest for "out"), or ct's firewall does not restrict that direction at all.
func admits(ct pveact.ContainerFirewall, typ string, peer pveact.ContainerFirewall, ports portSet) bool {
	if ct.Options["enable"] != "1" {
		return true
	}
	policy, def := ct.Options["policy_in"], "DROP"
	if typ == "out" {
		policy, def = ct.Options["policy_out"], "ACCEPT"
	}
	if !dropPolicy(policy, def) {
		return true
	}
	for _, r := range ct.Rules {
		if !r.Enable || r.Action != "ACCEPT" || r.Type != typ {
			continue
		}
		field := r.Source
		if typ == "out" {
			field = r.Dest
		}
		addrs, err := parseAddrs(field)
		if err != nil {
			return true // an ipset or alias may hold the peer: count the path
		}
		if slices.ContainsFunc(ctAddrs(peer), func(ad netip.Addr) bool { return coversAddr(addrs, ad) }) && rulePorts(r).intersects(ports) {
			return true
		}
	}
	return false
}

// allowedPath reports whether the allow-list lets from reach to on every port of ps.
func allowedPath(pairs []controls.Pair, from, to string, ps portSet) bool {
	if ps.all {
		return slices.ContainsFunc(pairs, func(pr controls.Pair) bool { return pr.Port == 0 && pr.Allows(from, to, 0) })
	}
	for _, port := range ps.ports() {
		if !slices.ContainsFunc(pairs, func(pr controls.Pair) bool { return pr.Allows(from, to, port) }) {
			return false
		}
	}
	return true
}

// checkLateral finds the container-to-container paths the firewall rules
// open among the selected containers. A path from A to B on a port needs
// both firewalls to let it through: B's inbound side (an ACCEPT rule whose
// source covers A, or no inbound restriction) and A's outbound side (an
// ACCEPT rule whose dest covers B, or no outbound restriction, PVE's
// default). Each path outside the allow-list is reported on the rule that
// opens it: B's inbound rule, or A's outbound rule when B's inbound side
// does not restrict at all.
func checkLateral(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	st, err := a.firewall(ctx)
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	var sel []pveact.ContainerFirewall
	for _, ct := range st.Containers {
		if selected(c.Targets, ct.Name, ct.VMID, ct.Tags) {
			sel = append(sel, ct)
		}
	}
	v.targets = len(sel)
	expected := "container-to-container paths only as the allow-list says: " + pairsText(c.Params.AllowPairs)
	report := func(holder pveact.ContainerFirewall, r pveact.FirewallRule, from, to pveact.ContainerFirewall) {
		port := r.Dport
		if port == "" || r.Macro != "" {
			port = "*"
		}
		fix, params := restoreFix(holder)
		v.fail(activities.ControlFinding{Target: ctTarget(holder), Setting: ruleSetting(r),
			Observed: fmt.Sprintf("%s: %s opens %s -> %s:%s", holder.Name, ruleText(r), from.Name, to.Name, port),
			Expected: expected, Fix: fix, FixParams: params})
	}
	for _, holder := range sel {
		if holder.Options["enable"] != "1" {
			continue // no rule of its own applies (a firewall that is off is the ingress control's finding)
		}
		for _, r := range holder.Rules {
			if !r.Enable || r.Action != "ACCEPT" || (r.Type != "in" && r.Type != "out") {
				continue
			}
			field := r.Source
			if r.Type == "out" {
				field = r.Dest
			}
			peers, err := parseAddrs(field)
			if err != nil {
				v.unsure(activities.ControlFinding{Target: ctTarget(holder), Setting: ruleSetting(r),
					Observed: fmt.Sprintf("%s: %s (%v)", holder.Name, ruleText(r), err), Expected: "addresses the check can compare with the containers'"})
				continue
			}
			ports := rulePorts(r)
			for _, other := range sel {
				if other.VMID == holder.VMID || !slices.ContainsFunc(ctAddrs(other), func(ad netip.Addr) bool { return coversAddr(peers, ad) }) {
					continue
				}
				if r.Type == "in" {
					if admits(other, "out", holder, ports) && !allowedPath(c.Params.AllowPairs, other.Name, holder.Name, ports) {
						report(holder, r, other, holder)
					}
					continue
				}
				inOpen := other.Options["enable"] != "1" || !dropPolicy(other.Options["policy_in"], "DROP")
				if inOpen && !allowedPath(c.Params.AllowPairs, holder.Name, other.Name, ports) {
					report(holder, r, holder, other)
				}
			}
		}
	}
	return map[string]any{"containers": sel}, v, nil
}

func pairsText(ps []controls.Pair) string {
	if len(ps) == 0 {
		return "(none)"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "; ")
}

func checkEgress(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	st, err := a.firewall(ctx)
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	var seen []pveact.ContainerFirewall
	for _, ct := range st.Containers {
		if !selected(c.Targets, ct.Name, ct.VMID, ct.Tags) {
			continue
		}
		v.targets++
		seen = append(seen, ct)
		fix, params := restoreFix(ct)
		if !firewallOn(&v, ct) {
			continue
		}
		if !dropPolicy(ct.Options["policy_out"], "ACCEPT") {
			v.fail(activities.ControlFinding{Target: ctTarget(ct), Setting: "firewall option policy_out",
				Observed: fmt.Sprintf("%s: policy_out=%s", ct.Name, orNone(ct.Options["policy_out"])), Expected: "policy_out=DROP", Fix: fix, FixParams: params})
		}
		for _, r := range ct.Rules {
			if !r.Enable || r.Type != "out" || r.Action != "ACCEPT" {
				continue
			}
			dst, err := parseAddrs(r.Dest)
			if err == nil && len(c.Params.AllowedDestinations) > 0 && covered(dst, c.Params.AllowedDestinations) {
				continue
			}
			if ps, err := parsePorts(r.Dport); err == nil && r.Macro == "" && (r.Proto == "tcp" || r.Proto == "udp") && len(c.Params.AllowedPorts) > 0 && ps.within(c.Params.AllowedPorts) {
				continue
			}
			v.fail(activities.ControlFinding{Target: ctTarget(ct), Setting: ruleSetting(r),
				Observed: fmt.Sprintf("%s: %s", ct.Name, ruleText(r)),
				Expected: fmt.Sprintf("outbound ACCEPT only to %s or on tcp/udp dport %s", prefixesText(c.Params.AllowedDestinations), orAny(portsText(c.Params.AllowedPorts))),
				Fix:      fix, FixParams: params})
		}
	}
	return map[string]any{"containers": seen}, v, nil
}

func checkManagement(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	st, err := a.firewall(ctx)
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	type iface struct {
		Target string
		Nets   []pveact.NetInterface
	}
	var seen []iface
	for _, ct := range st.Containers {
		if !selected(c.Targets, ct.Name, ct.VMID, ct.Tags) {
			continue
		}
		v.targets++
		seen = append(seen, iface{Target: ctTarget(ct), Nets: ct.Nets})
		for _, n := range ct.Nets {
			if slices.Contains(c.Params.ManagementBridges, n.Bridge) {
				v.fail(activities.ControlFinding{Target: ctTarget(ct), Setting: "config " + n.Key + " bridge",
					Observed: fmt.Sprintf("%s: %s on bridge %s", ct.Name, n.Key, n.Bridge), Expected: "no container interface on " + strings.Join(c.Params.ManagementBridges, ", ")})
			}
			for _, p := range n.Addrs {
				if coversAddr(c.Params.ManagementCIDRs, p.Addr()) {
					v.fail(activities.ControlFinding{Target: ctTarget(ct), Setting: "config " + n.Key + " ip",
						Observed: fmt.Sprintf("%s: %s ip=%s", ct.Name, n.Key, p), Expected: "no container address in the management network " + prefixesText(c.Params.ManagementCIDRs)})
				}
			}
		}
	}
	return map[string]any{"interfaces": seen}, v, nil
}
