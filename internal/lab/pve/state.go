package pve

import (
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

//go:embed inventory.yaml
var defaultInventory []byte

// inventory is the YAML seed of the simulated cluster.
type inventory struct {
	Cluster            string            `yaml:"cluster"`
	DatacenterFirewall map[string]string `yaml:"datacenter_firewall"`
	Nodes              []struct {
		Name string `yaml:"name"`
		IP   string `yaml:"ip"`
	} `yaml:"nodes"`
	Storages []struct {
		ID      string `yaml:"id"`
		Type    string `yaml:"type"`
		Content string `yaml:"content"`
		Total   uint64 `yaml:"total"`
	} `yaml:"storages"`
	Users []struct {
		UserID   string `yaml:"userid"`
		Password string `yaml:"password"`
		Role     string `yaml:"role"`
		Comment  string `yaml:"comment"`
		Tokens   []struct {
			ID      string `yaml:"id"`
			Secret  string `yaml:"secret"`
			Role    string `yaml:"role"`
			Comment string `yaml:"comment"`
		} `yaml:"tokens"`
	} `yaml:"users"`
	SeedSnapshot struct {
		Name        string `yaml:"name"`
		Description string `yaml:"description"`
		Snaptime    int64  `yaml:"snaptime"`
	} `yaml:"seed_snapshot"`
	SeedBackup struct {
		Storage string `yaml:"storage"`
		Ctime   int64  `yaml:"ctime"`
		Size    uint64 `yaml:"size"`
	} `yaml:"seed_backup"`
	Containers []struct {
		VMID     int               `yaml:"vmid"`
		Node     string            `yaml:"node"`
		Status   string            `yaml:"status"`
		Config   map[string]string `yaml:"config"`
		Firewall struct {
			Options map[string]string   `yaml:"options"`
			Rules   []map[string]string `yaml:"rules"`
		} `yaml:"firewall"`
		FirewallLog []string `yaml:"firewall_log"`
	} `yaml:"containers"`
	Syslog []string `yaml:"syslog"`
}

// loadInventory reads the inventory at path, or the embedded default.
func loadInventory(path string) (*inventory, error) {
	raw := defaultInventory
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read pve inventory %s: %w", path, err)
		}
		raw = b
	}
	var inv inventory
	if err := yaml.Unmarshal(raw, &inv); err != nil {
		return nil, fmt.Errorf("decode pve inventory: %w", err)
	}
	if len(inv.Nodes) == 0 {
		return nil, fmt.Errorf("decode pve inventory: no nodes")
	}
	return &inv, nil
}

type logLine struct {
	t    time.Time
	text string
}

type nodeState struct {
	name   string
	ip     string
	syslog []logLine
}

type storageDef struct {
	id, typ, content string
	total            uint64
}

type volume struct {
	volid     string
	storage   string
	node      string
	vmid      int
	content   string
	format    string
	size      uint64
	ctime     int64
	notes     string
	protected bool
	conf      map[string]string
	fw        fwConfig
}

type fwConfig struct {
	options map[string]string
	rules   []map[string]string
	ipsets  map[string]*ipset
}

type ipset struct {
	comment string
	entries []map[string]string
}

func (f fwConfig) clone() fwConfig {
	out := fwConfig{options: cloneMap(f.options), ipsets: map[string]*ipset{}}
	for _, r := range f.rules {
		out.rules = append(out.rules, cloneMap(r))
	}
	for n, s := range f.ipsets {
		c := &ipset{comment: s.comment}
		for _, e := range s.entries {
			c.entries = append(c.entries, cloneMap(e))
		}
		out.ipsets[n] = c
	}
	return out
}

type snapshot struct {
	name        string
	description string
	parent      string
	snaptime    int64
	conf        map[string]string
}

type container struct {
	vmid      int
	node      string
	running   bool
	startedAt time.Time
	conf      map[string]string
	snapshots map[string]*snapshot
	fw        fwConfig
	fwLog     []logLine
}

type apiToken struct {
	secret  string
	privsep bool
	comment string
	expire  int64
}

type user struct {
	userid   string
	password string
	enable   bool
	comment  string
	tokens   map[string]*apiToken
}

type aclEntry struct {
	path      string
	ugid      string
	role      string
	propagate bool
}

// state is the whole simulated cluster; guarded by Server.mu.
type state struct {
	cluster    string
	nodes      []*nodeState
	dcFirewall map[string]string
	groups     map[string]*secGroup
	storages   []*storageDef
	volumes    []*volume
	cts        map[int]*container
	users      map[string]*user
	acl        []aclEntry
	tasks      map[string]*task
	taskOrder  []*task
	bootTime   time.Time
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// newState builds the cluster from an inventory.
func newState(inv *inventory, now time.Time) (*state, error) {
	st := &state{
		cluster:    inv.Cluster,
		dcFirewall: cloneMap(inv.DatacenterFirewall),
		groups:     map[string]*secGroup{},
		cts:        map[int]*container{},
		users:      map[string]*user{},
		tasks:      map[string]*task{},
		bootTime:   now.Add(-72 * time.Hour),
	}
	for _, n := range inv.Nodes {
		ns := &nodeState{name: n.Name, ip: n.IP}
		for i, l := range inv.Syslog {
			t, err := time.Parse("Jan 02 15:04:05", l[:15])
			if err != nil {
				t = now
			} else {
				t = time.Date(2026, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
			}
			_ = i
			ns.syslog = append(ns.syslog, logLine{t: t, text: strings.ReplaceAll(l, "{node}", n.Name)})
		}
		st.nodes = append(st.nodes, ns)
	}
	for _, s := range inv.Storages {
		st.storages = append(st.storages, &storageDef{id: s.ID, typ: s.Type, content: s.Content, total: s.Total})
	}
	for _, u := range inv.Users {
		us := &user{userid: u.UserID, password: u.Password, enable: true, comment: u.Comment, tokens: map[string]*apiToken{}}
		if u.Role != "" && u.UserID != "root@pam" {
			st.acl = append(st.acl, aclEntry{path: "/", ugid: u.UserID, role: u.Role, propagate: true})
		}
		for _, t := range u.Tokens {
			us.tokens[t.ID] = &apiToken{secret: t.Secret, privsep: true, comment: t.Comment}
			st.acl = append(st.acl, aclEntry{path: "/", ugid: u.UserID + "!" + t.ID, role: t.Role, propagate: true})
		}
		st.users[u.UserID] = us
	}
	for _, c := range inv.Containers {
		if st.node(c.Node) == nil {
			return nil, fmt.Errorf("decode pve inventory: CT %d on unknown node %q", c.VMID, c.Node)
		}
		ct := &container{
			vmid:      c.VMID,
			node:      c.Node,
			running:   c.Status == "running",
			startedAt: now.Add(-time.Duration(24+c.VMID%7) * time.Hour),
			conf:      cloneMap(c.Config),
			snapshots: map[string]*snapshot{},
			fw:        fwConfig{options: cloneMap(c.Firewall.Options), ipsets: map[string]*ipset{}},
		}
		if t := ct.conf["tags"]; t != "" {
			ct.conf["tags"] = normalizeTags(t)
		}
		for _, r := range c.Firewall.Rules {
			ct.fw.rules = append(ct.fw.rules, cloneMap(r))
		}
		for _, l := range c.FirewallLog {
			ct.fwLog = append(ct.fwLog, logLine{t: now, text: l})
		}
		if inv.SeedSnapshot.Name != "" {
			ct.snapshots[inv.SeedSnapshot.Name] = &snapshot{
				name: inv.SeedSnapshot.Name, description: inv.SeedSnapshot.Description,
				snaptime: inv.SeedSnapshot.Snaptime, conf: cloneMap(ct.conf),
			}
			ct.conf["parent"] = inv.SeedSnapshot.Name
		}
		st.cts[c.VMID] = ct
		if inv.SeedBackup.Storage != "" {
			st.addBackup(ct, inv.SeedBackup.Storage, time.Unix(inv.SeedBackup.Ctime, 0).UTC(), "zstd", inv.SeedBackup.Size)
		}
	}
	return st, nil
}

func (st *state) node(name string) *nodeState {
	for _, n := range st.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (st *state) storage(id string) *storageDef {
	for _, s := range st.storages {
		if s.id == id {
			return s
		}
	}
	return nil
}

// addBackup records a vzdump archive of ct on storage sid of the CT's node.
func (st *state) addBackup(ct *container, sid string, at time.Time, compress string, size uint64) *volume {
	ext := "tar"
	switch compress {
	case "zstd":
		ext = "tar.zst"
	case "gzip", "1":
		ext = "tar.gz"
	case "lzo":
		ext = "tar.lzo"
	}
	for {
		volid := fmt.Sprintf("%s:backup/vzdump-lxc-%d-%s.%s", sid, ct.vmid, at.Format("2006_01_02-15_04_05"), ext)
		if st.volume(ct.node, volid) == nil {
			v := &volume{
				volid: volid, storage: sid, node: ct.node, vmid: ct.vmid, content: "backup", format: ext,
				size: size, ctime: at.Unix(), notes: ct.conf["hostname"], conf: cloneMap(ct.conf), fw: ct.fw.clone(),
			}
			delete(v.conf, "lock")
			st.volumes = append(st.volumes, v)
			return v
		}
		at = at.Add(time.Second)
	}
}

func (st *state) volume(node, volid string) *volume {
	for _, v := range st.volumes {
		if v.node == node && v.volid == volid {
			return v
		}
	}
	return nil
}

// syslog appends a line to a node's syslog in journalctl short format.
func (st *state) syslog(node string, now time.Time, proc, msg string) {
	n := st.node(node)
	if n == nil {
		return
	}
	n.syslog = append(n.syslog, logLine{t: now, text: fmt.Sprintf("%s %s %s: %s", now.UTC().Format("Jan 02 15:04:05"), node, proc, msg)})
}

// normalizeTags implements PVE::GuestHelpers::get_unique_tags with the
// default tag style: split, lower-case, sort, de-duplicate, join with ';'.
func normalizeTags(v string) string {
	seen := map[string]bool{}
	var out []string
	for _, t := range splitList(v) {
		t = strings.ToLower(t)
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ";")
}

// renderConfig renders a container config file as PVE stores it; the digest
// is the sha1 of this text.
func renderConfig(ct *container) string {
	var b strings.Builder
	writeSection := func(conf map[string]string) {
		if d := conf["description"]; d != "" {
			for _, l := range strings.Split(strings.TrimSuffix(d, "\n"), "\n") {
				b.WriteString("#" + l + "\n")
			}
		}
		keys := make([]string, 0, len(conf))
		for k := range conf {
			if k != "description" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteString(k + ": " + conf[k] + "\n")
		}
	}
	writeSection(ct.conf)
	names := make([]string, 0, len(ct.snapshots))
	for n := range ct.snapshots {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := ct.snapshots[n]
		b.WriteString("\n[" + n + "]\n")
		c := cloneMap(s.conf)
		if s.description != "" {
			c["description"] = s.description
		}
		if s.parent != "" {
			c["parent"] = s.parent
		}
		c["snaptime"] = strconv.FormatInt(s.snaptime, 10)
		writeSection(c)
	}
	return b.String()
}

func configDigest(ct *container) string {
	sum := sha1.Sum([]byte(renderConfig(ct)))
	return hex.EncodeToString(sum[:])
}

// fwDigest is the digest of a container's firewall file.
func fwDigest(f fwConfig) string {
	var b strings.Builder
	b.WriteString("[OPTIONS]\n")
	keys := make([]string, 0, len(f.options))
	for k := range f.options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(k + ": " + f.options[k] + "\n")
	}
	b.WriteString("[RULES]\n")
	for _, r := range f.rules {
		b.WriteString(renderRule(r) + "\n")
	}
	sum := sha1.Sum([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

func renderRule(r map[string]string) string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+r[k])
	}
	return strings.Join(parts, " ")
}
