package pve

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// StateSnapshot is a deep copy of the simulated cluster for assertions. It
// leaves out volatile data (uptimes, task timings) so two snapshots of the
// same logical state compare equal with reflect.DeepEqual and CanonicalJSON.
type StateSnapshot struct {
	Cluster            string              `json:"cluster"`
	Nodes              []string            `json:"nodes"`
	DatacenterFirewall map[string]string   `json:"datacenter_firewall"`
	Containers         []ContainerSnapshot `json:"containers"`
	Backups            []BackupSnapshot    `json:"backups"`
	Users              []UserSnapshot      `json:"users"`
}

// ContainerSnapshot is the state of one CT.
type ContainerSnapshot struct {
	VMID      int                `json:"vmid"`
	Node      string             `json:"node"`
	Status    string             `json:"status"`
	Config    map[string]string  `json:"config"`
	Firewall  FirewallSnapshot   `json:"firewall"`
	Snapshots []SnapshotSnapshot `json:"snapshots"`
}

// FirewallSnapshot is a CT's firewall configuration.
type FirewallSnapshot struct {
	Options map[string]string   `json:"options"`
	Rules   []map[string]string `json:"rules"`
	IPSets  map[string][]string `json:"ipsets"`
}

// SnapshotSnapshot is one CT snapshot.
type SnapshotSnapshot struct {
	Name        string            `json:"name"`
	Parent      string            `json:"parent"`
	Description string            `json:"description"`
	Config      map[string]string `json:"config"`
}

// BackupSnapshot is one vzdump archive.
type BackupSnapshot struct {
	Node      string `json:"node"`
	VolID     string `json:"volid"`
	VMID      int    `json:"vmid"`
	Protected bool   `json:"protected"`
}

// UserSnapshot is one user with its token ids (never secrets).
type UserSnapshot struct {
	UserID string   `json:"userid"`
	Enable bool     `json:"enable"`
	Tokens []string `json:"tokens"`
}

// State returns a deep copy of the cluster state.
func (s *Server) State() StateSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	out := StateSnapshot{Cluster: st.cluster, DatacenterFirewall: cloneMap(st.dcFirewall),
		Containers: []ContainerSnapshot{}, Backups: []BackupSnapshot{}, Users: []UserSnapshot{}}
	for _, n := range st.nodes {
		out.Nodes = append(out.Nodes, n.name)
	}
	for _, ct := range sortedCTs(st) {
		cs := ContainerSnapshot{VMID: ct.vmid, Node: ct.node, Status: "stopped", Config: cloneMap(ct.conf),
			Firewall:  FirewallSnapshot{Options: cloneMap(ct.fw.options), Rules: []map[string]string{}, IPSets: map[string][]string{}},
			Snapshots: []SnapshotSnapshot{}}
		if ct.running {
			cs.Status = "running"
		}
		for _, r := range ct.fw.rules {
			cs.Firewall.Rules = append(cs.Firewall.Rules, cloneMap(r))
		}
		for name, set := range ct.fw.ipsets {
			entries := []string{}
			for _, e := range set.entries {
				entries = append(entries, e["cidr"])
			}
			cs.Firewall.IPSets[name] = entries
		}
		for _, name := range slices.Sorted(maps.Keys(ct.snapshots)) {
			sn := ct.snapshots[name]
			cs.Snapshots = append(cs.Snapshots, SnapshotSnapshot{Name: sn.name, Parent: sn.parent, Description: sn.description, Config: cloneMap(sn.conf)})
		}
		out.Containers = append(out.Containers, cs)
	}
	for _, v := range st.volumes {
		out.Backups = append(out.Backups, BackupSnapshot{Node: v.node, VolID: v.volid, VMID: v.vmid, Protected: v.protected})
	}
	sort.Slice(out.Backups, func(i, j int) bool { return out.Backups[i].VolID < out.Backups[j].VolID })
	for _, id := range slices.Sorted(maps.Keys(st.users)) {
		u := st.users[id]
		out.Users = append(out.Users, UserSnapshot{UserID: id, Enable: u.enable, Tokens: slices.Sorted(maps.Keys(u.tokens))})
	}
	return out
}

// CanonicalJSON renders the snapshot deterministically (sorted keys), for
// byte-for-byte comparisons and golden files.
func (ss StateSnapshot) CanonicalJSON() ([]byte, error) {
	b, err := json.MarshalIndent(ss, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode pve state: %w", err)
	}
	return b, nil
}

// NICIsolation is the isolation-relevant state of one CT network interface.
type NICIsolation struct {
	Key      string `json:"key"`  // "net0"
	Name     string `json:"name"` // "eth0"
	Firewall bool   `json:"firewall"`
	LinkDown bool   `json:"link_down"`
}

// IsolationView tells how isolated a CT is, from the point of view of the
// PVE firewall (which filters only when the datacenter firewall, the CT
// firewall and the NIC's firewall=1 are all on) and of unplugged links.
type IsolationView struct {
	VMID               int    `json:"vmid"`
	Node               string `json:"node"`
	Running            bool   `json:"running"`
	DatacenterFirewall bool   `json:"datacenter_firewall"`
	ContainerFirewall  bool   `json:"container_firewall"`
	PolicyIn           string `json:"policy_in"`
	PolicyOut          string `json:"policy_out"`
	InDrop             bool   `json:"in_drop"`  // policy_in is DROP or REJECT
	OutDrop            bool   `json:"out_drop"` // policy_out is DROP or REJECT
	// InCut and OutCut: an enabled rule without any match condition
	// drops (or rejects) everything of that direction that no earlier
	// rule accepted; no later rule, nor the policy, is reached.
	InCut  bool `json:"in_cut"`
	OutCut bool `json:"out_cut"`
	// SecurityGroups are the groups the CT's enabled group rules apply
	// (a group that does not exist applies no rule, as in PVE).
	SecurityGroups    []string       `json:"security_groups,omitempty"`
	NICs              []NICIsolation `json:"nics"`
	AllNICsFirewalled bool           `json:"all_nics_firewalled"`
	AllLinksDown      bool           `json:"all_links_down"`
	// AcceptRules counts the enabled in/out ACCEPT rules that traffic can
	// reach (rules after an unconditional DROP are not reached).
	AcceptRules int `json:"accept_rules"`
	// OpenRules counts the reachable ACCEPT rules that are not scoped to
	// a network (an "in" rule without source, an "out" rule without
	// dest): they punch through the DROP policies for everyone.
	OpenRules int `json:"open_rules"`
	// AllowedNetworks are the networks scoped ACCEPT rules keep reachable
	// (the management/forensics allow list), as "in:<cidr>" / "out:<cidr>".
	AllowedNetworks []string `json:"allowed_networks,omitempty"`
	// FirewallIsolated: every packet in and out that the allow list does
	// not name is dropped by the firewall.
	FirewallIsolated bool `json:"firewall_isolated"`
	// Isolated: firewall-isolated or every link is down.
	Isolated bool `json:"isolated"`
}

// EffectiveIsolation computes the isolation view of a CT.
func (s *Server) EffectiveIsolation(vmid int) (IsolationView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct := s.st.cts[vmid]
	if ct == nil {
		return IsolationView{}, fmt.Errorf("effective isolation: CT %d does not exist", vmid)
	}
	v := IsolationView{VMID: vmid, Node: ct.node, Running: ct.running}
	v.DatacenterFirewall, _ = parseBool(s.st.dcFirewall["enable"])
	v.ContainerFirewall, _ = parseBool(ct.fw.options["enable"])
	v.PolicyIn = orDefault(ct.fw.options["policy_in"], "DROP")
	v.PolicyOut = orDefault(ct.fw.options["policy_out"], "ACCEPT")
	v.InDrop = v.PolicyIn == "DROP" || v.PolicyIn == "REJECT"
	v.OutDrop = v.PolicyOut == "DROP" || v.PolicyOut == "REJECT"
	nics := nicsOf(s, ct.conf)
	v.AllNICsFirewalled = len(nics) > 0
	v.AllLinksDown = len(nics) > 0
	for _, n := range nics {
		fw, _ := parseBool(n.kv["firewall"])
		ld, _ := parseBool(n.kv["link_down"])
		v.NICs = append(v.NICs, NICIsolation{Key: n.key, Name: n.kv["name"], Firewall: fw, LinkDown: ld})
		v.AllNICsFirewalled = v.AllNICsFirewalled && fw
		v.AllLinksDown = v.AllLinksDown && ld
	}
	for _, dir := range []string{"in", "out"} {
		cut := s.walkRulesLocked(&v, ct.fw.rules, dir)
		if dir == "in" {
			v.InCut = cut
		} else {
			v.OutCut = cut
		}
	}
	v.FirewallIsolated = v.DatacenterFirewall && v.ContainerFirewall && (v.InDrop || v.InCut) && (v.OutDrop || v.OutCut) && v.AllNICsFirewalled && v.OpenRules == 0
	v.Isolated = v.FirewallIsolated || v.AllLinksDown || len(nics) == 0
	return v, nil
}

// matchFields are the rule fields that narrow what a rule matches.
var matchFields = []string{"source", "dest", "proto", "dport", "sport", "macro", "iface", "icmp-type"}

// walkRulesLocked evaluates a CT's rules for one direction ("in" or
// "out") as pve-firewall chains them: enabled rules in order; a rule of
// type "group" jumps to the group's enabled rules of that direction (a
// missing group is an empty chain) and comes back when none decided. It
// counts the ACCEPT rules that traffic can reach into v and reports
// whether an unconditional DROP or REJECT ends the walk.
func (s *Server) walkRulesLocked(v *IsolationView, rules []map[string]string, dir string) bool {
	for _, r := range rules {
		if en, _ := parseBool(r["enable"]); !en {
			continue
		}
		if r["type"] == "group" {
			name := r["action"]
			if dir == "in" && !slices.Contains(v.SecurityGroups, name) {
				v.SecurityGroups = append(v.SecurityGroups, name)
			}
			if g := s.st.groups[name]; g != nil && s.walkRulesLocked(v, g.rules, dir) {
				return true
			}
			continue
		}
		if r["type"] != dir {
			continue
		}
		switch strings.ToUpper(r["action"]) {
		case "ACCEPT":
			v.AcceptRules++
			peer := r["source"]
			if dir == "out" {
				peer = r["dest"]
			}
			if peer == "" || peer == "0.0.0.0/0" || peer == "::/0" {
				v.OpenRules++
			} else {
				v.AllowedNetworks = append(v.AllowedNetworks, dir+":"+peer)
			}
		case "DROP", "REJECT":
			if !slices.ContainsFunc(matchFields, func(f string) bool { return r[f] != "" }) {
				return true
			}
		}
	}
	return false
}
