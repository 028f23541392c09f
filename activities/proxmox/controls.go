package proxmox

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	goprox "github.com/luthermonson/go-proxmox"
)

// FirewallState is what the control checks (activities/controls) read of
// the cluster's firewall: the datacenter options and, for every LXC
// container, its firewall options, rules and interfaces. It is read only.
type FirewallState struct {
	// Datacenter are the options of /cluster/firewall/options.
	Datacenter map[string]string
	Containers []ContainerFirewall
}

// ContainerFirewall is one container's firewall as PVE shows it.
type ContainerFirewall struct {
	Name string
	Node string
	VMID int
	Tags []string `json:",omitempty"`
	// Options are the container's firewall options (enable, policy_in, policy_out, ...).
	Options map[string]string
	// Rules are its firewall rules in order (Pos as PVE numbers them).
	Rules []FirewallRule `json:"-"`
	// Raw are the same rules as the API lists them (values as text,
	// without pos, digest and ipversion), in order: the check's evidence
	// records them so, in the shape [activities.PVEFirewallObserved] that
	// pve.firewall_restore puts back.
	Raw []map[string]string `json:"rules,omitempty"`
	// Nets are its network interfaces.
	Nets []NetInterface `json:",omitempty"`
}

// FirewallRule is one firewall rule of a container.
type FirewallRule struct {
	Pos     int
	Type    string // in, out, group
	Action  string // ACCEPT, DROP, REJECT or a security group
	Enable  bool
	Proto   string `json:",omitempty"`
	Source  string `json:",omitempty"`
	Dest    string `json:",omitempty"`
	Dport   string `json:",omitempty"`
	Sport   string `json:",omitempty"`
	Macro   string `json:",omitempty"`
	Iface   string `json:",omitempty"`
	Comment string `json:",omitempty"`
}

// NetInterface is one netN of a container's config.
type NetInterface struct {
	Key      string // net0, net1, ...
	Bridge   string `json:",omitempty"`
	Firewall bool
	// Addrs are its static addresses with their prefix (ip=, ip6=).
	Addrs []netip.Prefix `json:",omitempty"`
}

// ReadFirewallState reads the datacenter firewall options and every LXC
// container's firewall options, rules and interfaces, containers in vmid
// order.
func (a *Activities) ReadFirewallState(ctx context.Context) (FirewallState, error) {
	x := a.call("read firewall state")
	var out FirewallState
	var dc map[string]any
	if err := x.get(ctx, "/cluster/firewall/options", &dc); err != nil {
		return FirewallState{}, err
	}
	out.Datacenter = strMap(dc)
	var res []goprox.ClusterResource
	if err := x.get(ctx, "/cluster/resources?type=vm", &res); err != nil {
		return FirewallState{}, err
	}
	for _, r := range res {
		if r.Type != "lxc" {
			continue
		}
		ct := ContainerFirewall{Name: r.Name, Node: r.Node, VMID: int(r.VMID), Tags: splitTags(r.Tags)}
		x.ct = &ctRef{Node: r.Node, VMID: int(r.VMID), Name: r.Name}
		var conf, opts map[string]any
		var rules []map[string]any
		if err := x.get(ctx, x.ct.path("/config"), &conf); err != nil {
			return FirewallState{}, err
		}
		if err := x.get(ctx, x.ct.path("/firewall/options"), &opts); err != nil {
			return FirewallState{}, err
		}
		if err := x.get(ctx, x.ct.path("/firewall/rules"), &rules); err != nil {
			return FirewallState{}, err
		}
		ct.Options = strMap(opts)
		type listed struct {
			rule FirewallRule
			raw  map[string]string
		}
		all := make([]listed, 0, len(rules))
		for i, rm := range rules {
			m := strMap(rm)
			pos, err := strconv.Atoi(m["pos"])
			if err != nil {
				pos = i
			}
			raw := maps.Clone(m)
			delete(raw, "pos")
			delete(raw, "ipversion")
			all = append(all, listed{rule: FirewallRule{Pos: pos, Type: m["type"], Action: m["action"], Enable: m["enable"] == "1",
				Proto: m["proto"], Source: m["source"], Dest: m["dest"], Dport: m["dport"], Sport: m["sport"],
				Macro: m["macro"], Iface: m["iface"], Comment: m["comment"]}, raw: raw})
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].rule.Pos < all[j].rule.Pos })
		for _, l := range all {
			ct.Rules = append(ct.Rules, l.rule)
			ct.Raw = append(ct.Raw, l.raw)
		}
		for _, k := range netKeys(conf) {
			kv := parseProps(str(conf[k]))
			n := NetInterface{Key: k, Bridge: kv["bridge"], Firewall: kv["firewall"] == "1"}
			for _, f := range []string{"ip", "ip6"} {
				if p, err := netip.ParsePrefix(kv[f]); err == nil {
					n.Addrs = append(n.Addrs, p)
				}
			}
			ct.Nets = append(ct.Nets, n)
		}
		out.Containers = append(out.Containers, ct)
	}
	slices.SortFunc(out.Containers, func(p, q ContainerFirewall) int { return p.VMID - q.VMID })
	return out, nil
}

// strMap renders a decoded JSON object's scalars as PVE's strings, without the digest.
func strMap(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != "digest" {
			out[k] = str(v)
		}
	}
	return out
}

// BaseTokenID returns a token id (USER@REALM!TOKENID) without the suffix
// pve.rotate_token adds ([RotatedTokenID]): the name that stays the same
// across rotations, under which key-change records name the token.
func BaseTokenID(full string) string {
	user, tok, ok := strings.Cut(full, "!")
	if !ok {
		return full
	}
	return user + "!" + reRotatedSuffix.ReplaceAllString(tok, "")
}
