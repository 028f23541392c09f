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
	VMID               int            `json:"vmid"`
	Node               string         `json:"node"`
	Running            bool           `json:"running"`
	DatacenterFirewall bool           `json:"datacenter_firewall"`
	ContainerFirewall  bool           `json:"container_firewall"`
	PolicyIn           string         `json:"policy_in"`
	PolicyOut          string         `json:"policy_out"`
	InDrop             bool           `json:"in_drop"`  // policy_in is DROP or REJECT
	OutDrop            bool           `json:"out_drop"` // policy_out is DROP or REJECT
	NICs               []NICIsolation `json:"nics"`
	AllNICsFirewalled  bool           `json:"all_nics_firewalled"`
	AllLinksDown       bool           `json:"all_links_down"`
	// AcceptRules counts enabled in/out ACCEPT rules.
	AcceptRules int `json:"accept_rules"`
	// OpenRules counts enabled ACCEPT rules that are not scoped to a network
	// (an "in" rule without source, an "out" rule without dest): they punch
	// through the DROP policies for everyone.
	OpenRules int `json:"open_rules"`
	// AllowedNetworks are the networks scoped ACCEPT rules keep reachable
	// (the management/forensics allow list), as "in:<cidr>" / "out:<cidr>".
	AllowedNetworks []string `json:"allowed_networks,omitempty"`
	// FirewallIsolated: every packet in and out is dropped by the firewall.
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
	for _, r := range ct.fw.rules {
		if en, _ := parseBool(r["enable"]); en && strings.EqualFold(r["action"], "ACCEPT") && (r["type"] == "in" || r["type"] == "out") {
			v.AcceptRules++
			peer := r["source"]
			if r["type"] == "out" {
				peer = r["dest"]
			}
			if peer == "" || peer == "0.0.0.0/0" || peer == "::/0" {
				v.OpenRules++
			} else {
				v.AllowedNetworks = append(v.AllowedNetworks, r["type"]+":"+peer)
			}
		}
	}
	v.FirewallIsolated = v.DatacenterFirewall && v.ContainerFirewall && v.InDrop && v.OutDrop && v.AllNICsFirewalled && v.OpenRules == 0
	v.Isolated = v.FirewallIsolated || v.AllLinksDown || len(nics) == 0
	return v, nil
}
