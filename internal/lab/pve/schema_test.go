package pve

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"testing"
)

func TestEmbeddedSchemaDigest(t *testing.T) {
	raw, err := schemaJSON()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != SchemaSHA256 {
		t.Fatalf("embedded schema sha256 = %s, want %s", got, SchemaSHA256)
	}
}

// TestRoutesExistInSchema walks the route table and checks each route
// against an independent parse of the raw schema tree, so a new route whose
// path or method PVE 9.1 does not have cannot slip in.
func TestRoutesExistInSchema(t *testing.T) {
	raw, err := schemaJSON()
	if err != nil {
		t.Fatal(err)
	}
	var roots []map[string]any
	if err := json.Unmarshal(raw, &roots); err != nil {
		t.Fatal(err)
	}
	methods := map[string]map[string]bool{}
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		p, _ := n["path"].(string)
		if info, ok := n["info"].(map[string]any); ok {
			methods[p] = map[string]bool{}
			for m := range info {
				methods[p][m] = true
			}
		}
		children, _ := n["children"].([]any)
		for _, c := range children {
			if cm, ok := c.(map[string]any); ok {
				walk(cm)
			}
		}
	}
	for _, r := range roots {
		walk(r)
	}
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for p := range s.routeTable() {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	count := 0
	for _, p := range paths {
		for m := range s.routeTable()[p] {
			count++
			// "/" (the API root index) is served by PVE but absent from apidata.
			if p == "/" && m == "GET" {
				continue
			}
			if !methods[p][m] {
				t.Errorf("route %s %s is not in the PVE 9.1 schema", m, p)
			}
		}
	}
	if count < 60 {
		t.Fatalf("route table has only %d routes", count)
	}
}

func TestCheckFormat(t *testing.T) {
	cases := []struct {
		format, value string
		ok            bool
	}{
		{"pve-configid", "ir-2026_01", true},
		{"pve-configid", "1abc", false},
		{"pve-configid", "a", false},
		{"pve-vmid", "100", true},
		{"pve-vmid", "099", false},
		{"pve-node", "pve1", true},
		{"pve-node", "-pve", false},
		{"pve-storage-id", "local-lvm", true},
		{"pve-storage-id", "local-", false},
		{"pve-tag-list", "a;b,c d", true},
		{"pve-tag-list", "ok;no!", false},
		{"pve-configid-list", "net0,tags", true},
		{"pve-configid-list", "net0,0x", false},
		{"pve-vmid-list", "100,101", true},
		{"pve-vmid-list", "100,x", false},
		{"pve-userid", "iru@pve", true},
		{"pve-userid", "iru", false},
		{"pve-tokenid", "iru@pve!responder", true},
		{"pve-tokenid", "iru@pve", false},
		{"mac-addr", "BC:24:11:00:00:01", true},
		{"mac-addr", "BD:24:11:00:00:01", false},
		{"pve-ipv4-config", "10.20.10.10/24", true},
		{"pve-ipv4-config", "dhcp", true},
		{"pve-ipv4-config", "10.20.10.10", false},
		{"pve-fw-addr-spec", "10.0.0.0/8,192.168.1.1-192.168.1.9", true},
		{"pve-fw-addr-spec", "+blocked", true},
		{"pve-fw-addr-spec", "10.0.0.300", false},
		{"pve-fw-dport-spec", "22,80:90,https", true},
		{"pve-fw-dport-spec", "22;80", false},
		{"some-unknown-format", "anything", true},
	}
	for _, tc := range cases {
		t.Run(tc.format+"/"+tc.value, func(t *testing.T) {
			msg := checkFormat(tc.format, tc.value)
			if (msg == "") != tc.ok {
				t.Fatalf("checkFormat(%s, %q) = %q, want ok=%v", tc.format, tc.value, msg, tc.ok)
			}
		})
	}
}

func TestPropertyStringRoundTrip(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in, want string
	}{
		{"type=veth,name=eth0,ip=dhcp,hwaddr=BC:24:11:00:00:01,firewall=yes", "firewall=1,hwaddr=BC:24:11:00:00:01,ip=dhcp,name=eth0,type=veth"},
		{"name=eth1,link_down=on,hwaddr=BC:24:11:00:00:02", "hwaddr=BC:24:11:00:00:02,link_down=1,name=eth1,type=veth"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, aerr := s.canonicalPropertyString("net0", tc.in)
			if aerr != nil || got != tc.want {
				t.Fatalf("canonical = %q, %v; want %q", got, aerr, tc.want)
			}
		})
	}
	if _, aerr := s.canonicalPropertyString("net0", "bridge=vmbr0"); aerr == nil || aerr.errors["net0"] == "" {
		t.Fatalf("net0 without name must fail: %v", aerr)
	}
}

func TestInventoryMatchesConstants(t *testing.T) {
	inv, err := loadInventory("")
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	passwords := map[string]string{}
	for _, u := range inv.Users {
		passwords[u.UserID] = u.Password
		for _, tok := range u.Tokens {
			secrets[u.UserID+"!"+tok.ID] = tok.Secret
		}
	}
	checks := map[string][2]string{
		"root password":    {passwords[LabRootUser], LabRootPassword},
		"iru password":     {passwords[LabIRUUser], LabIRUPassword},
		"responder secret": {secrets[LabResponderTokenID], LabResponderTokenSecret},
		"audit secret":     {secrets[LabAuditTokenID], LabAuditTokenSecret},
		"cluster name":     {inv.Cluster, LabClusterName},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: inventory %q != constant %q", name, c[0], c[1])
		}
	}
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := s.State()
	backups := map[int]int{}
	for _, b := range st.Backups {
		backups[b.VMID]++
	}
	for _, ct := range st.Containers {
		if len(ct.Snapshots) != 1 || ct.Snapshots[0].Name != "baseline" || backups[ct.VMID] != 1 {
			t.Errorf("CT %d: snapshots %v backups %d", ct.VMID, ct.Snapshots, backups[ct.VMID])
		}
		if iso, err := s.EffectiveIsolation(ct.VMID); err != nil || iso.Isolated {
			t.Errorf("CT %d starts isolated: %+v %v", ct.VMID, iso, err)
		}
	}
	if st.DatacenterFirewall["enable"] != "1" {
		t.Errorf("datacenter firewall must start enabled")
	}
	if _, err := New(Options{InventoryPath: "/nonexistent/inventory.yaml"}); err == nil {
		t.Errorf("missing inventory path must fail")
	}
}
