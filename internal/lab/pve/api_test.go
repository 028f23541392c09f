package pve

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

func TestClusterAndNodes(t *testing.T) {
	s := startSim(t, Options{})
	c := responder(s)
	ctx := testCtx(t)

	v, err := c.Version(ctx)
	if err != nil || v.Release != "9.1" {
		t.Fatalf("version = %+v, %v", v, err)
	}
	cl, err := c.Cluster(ctx)
	if err != nil {
		t.Fatalf("cluster status: %v", err)
	}
	if cl.Name != LabClusterName || cl.Quorate != 1 || len(cl.Nodes) != 2 {
		t.Fatalf("cluster = %+v", cl)
	}
	rs, err := cl.Resources(ctx, "vm")
	if err != nil {
		t.Fatalf("resources: %v", err)
	}
	byName := map[string]*proxmox.ClusterResource{}
	for _, r := range rs {
		if r.Type != "lxc" {
			t.Fatalf("type=vm filter returned %q", r.Type)
		}
		byName[r.Name] = r
	}
	for _, name := range []string{"api-gateway", "keycloak", "iru-services", "database", "drill-canary"} {
		if byName[name] == nil {
			t.Fatalf("resource %s missing from %v", name, byName)
		}
	}
	if r := byName["drill-canary"]; r.Tags != "drill" || r.Node != "pve1" || r.Status != "running" || r.MaxCPU != 1 {
		t.Fatalf("drill-canary resource = %+v", r)
	}
	all, err := cl.Resources(ctx)
	if err != nil {
		t.Fatalf("all resources: %v", err)
	}
	kinds := map[string]int{}
	for _, r := range all {
		kinds[r.Type]++
	}
	if kinds["node"] != 2 || kinds["storage"] != 4 || kinds["lxc"] != 5 {
		t.Fatalf("resource kinds = %v", kinds)
	}
	id, err := cl.NextID(ctx)
	if err != nil || id != 104 {
		t.Fatalf("nextid = %d, %v", id, err)
	}
	free, err := cl.CheckID(ctx, 100)
	if err != nil || free {
		t.Fatalf("CheckID(100) = %v, %v; want taken", free, err)
	}

	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].Node != "pve1" || nodes[0].Status != "online" {
		t.Fatalf("nodes = %+v, %v", nodes, err)
	}
	n, err := c.Node(ctx, "pve2")
	if err != nil {
		t.Fatalf("node status: %v", err)
	}
	if len(n.LoadAvg) != 3 || n.CPUInfo.CPUs != nodeMaxCPU || n.Memory.Total == 0 || !strings.HasPrefix(n.PVEVersion, "pve-manager/9.1") {
		t.Fatalf("node = %+v", n)
	}
	if _, err := c.Node(ctx, "pve9"); err == nil || !strings.Contains(err.Error(), "500 hostname lookup 'pve9' failed") {
		t.Fatalf("unknown node error = %v", err)
	}
}

func TestContainerReadAndConfig(t *testing.T) {
	s := startSim(t, Options{})
	c := responder(s)
	ctx := testCtx(t)
	node := (&proxmox.Node{}).New(c, "pve1")

	cts, err := node.Containers(ctx)
	if err != nil || len(cts) != 3 {
		t.Fatalf("containers on pve1 = %d, %v", len(cts), err)
	}
	ct, err := node.Container(ctx, 100)
	if err != nil {
		t.Fatalf("container: %v", err)
	}
	if ct.Name != "api-gateway" || ct.Status != "running" || ct.CPUs != 2 || uint64(ct.VMID) != 100 || ct.MaxMem != 2048<<20 {
		t.Fatalf("container = %+v", ct)
	}
	cfg := ct.ContainerConfig
	if cfg.Hostname != "api-gateway" || cfg.Description != "IRU API gateway (TLS 443, JSON-RPC 8545, REST 5000)\n" ||
		!bool(cfg.Unprivileged) || *cfg.Memory != 2048 || len(cfg.Digest) != 40 {
		t.Fatalf("config = %+v", cfg)
	}
	if cfg.Tags != "dmz;gateway;iru" {
		t.Fatalf("seed tags not normalised: %q", cfg.Tags)
	}
	net0 := cfg.Nets["net0"]
	if !strings.Contains(net0, "firewall=1") || !strings.Contains(net0, "ip=10.20.10.10/24") {
		t.Fatalf("net0 = %q", net0)
	}
	ifs, err := ct.Interfaces(ctx)
	if err != nil || len(ifs) != 2 || ifs[1].Name != "eth0" || ifs[1].Inet != "10.20.10.10/24" || ifs[1].HWAddr != "bc:24:11:2a:10:64" {
		t.Fatalf("interfaces = %+v, %v", ifs, err)
	}

	// Missing CT and CT on the other node: 500 with PVE's message as reason.
	if _, err := node.Container(ctx, 555); err == nil || err.Error() != "500 Configuration file 'nodes/pve1/lxc/555.conf' does not exist" {
		t.Fatalf("missing CT error = %v", err)
	}
	if _, err := node.Container(ctx, 102); err == nil || !strings.Contains(err.Error(), "nodes/pve1/lxc/102.conf") {
		t.Fatalf("CT on other node error = %v", err)
	}

	t.Run("link_down hot-plug", func(t *testing.T) {
		down := net0 + ",link_down=1"
		task, err := ct.Config(ctx, proxmox.ContainerOption{Name: "net0", Value: down})
		if err != nil || task != nil {
			t.Fatalf("config put = %v, %v (want nil task: PUT config returns null)", task, err)
		}
		iso, err := s.EffectiveIsolation(100)
		if err != nil || !iso.AllLinksDown || !iso.Isolated || iso.NICs[0].LinkDown != true {
			t.Fatalf("isolation after link_down = %+v, %v", iso, err)
		}
		again, err := node.Container(ctx, 100)
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
		if !strings.Contains(again.ContainerConfig.Nets["net0"], "link_down=1") || again.ContainerConfig.Digest == cfg.Digest {
			t.Fatalf("net0 after = %q digest %s", again.ContainerConfig.Nets["net0"], again.ContainerConfig.Digest)
		}
		// Stale digest → 500 "detected modified configuration".
		err = c.Put(ctx, "/nodes/pve1/lxc/100/config", map[string]any{"net0": net0, "digest": cfg.Digest}, nil)
		if err == nil || !strings.Contains(err.Error(), "detected modified configuration") {
			t.Fatalf("stale digest error = %v", err)
		}
		err = c.Put(ctx, "/nodes/pve1/lxc/100/config", map[string]any{"net0": net0, "digest": again.ContainerConfig.Digest}, nil)
		if err != nil {
			t.Fatalf("restore net0: %v", err)
		}
		if iso, _ := s.EffectiveIsolation(100); iso.AllLinksDown {
			t.Fatalf("link still down after restore: %+v", iso)
		}
	})

	t.Run("tags and description", func(t *testing.T) {
		ct, err := node.Container(ctx, 100)
		if err != nil {
			t.Fatalf("container: %v", err)
		}
		if _, err := ct.AddTag(ctx, "Quarantine"); err != nil {
			t.Fatalf("add tag: %v", err)
		}
		if _, err := ct.Config(ctx, proxmox.ContainerOption{Name: "description", Value: "QUARANTINED by IR-123"}); err != nil {
			t.Fatalf("description: %v", err)
		}
		ct, _ = node.Container(ctx, 100)
		if ct.ContainerConfig.Tags != "dmz;gateway;iru;quarantine" || !ct.HasTag("quarantine") {
			t.Fatalf("tags = %q", ct.ContainerConfig.Tags)
		}
		if ct.ContainerConfig.Description != "QUARANTINED by IR-123\n" {
			t.Fatalf("description = %q", ct.ContainerConfig.Description)
		}
		if _, err := ct.RemoveTag(ctx, "quarantine"); err != nil {
			t.Fatalf("remove tag: %v", err)
		}
		if _, err := ct.AddTag(ctx, "dmz"); !proxmox.IsErrNoop(err) {
			t.Fatalf("duplicate tag err = %v", err)
		}
		if err := c.Put(ctx, "/nodes/pve1/lxc/100/config", map[string]any{"tags": "b,A;a c"}, nil); err != nil {
			t.Fatalf("odd tags: %v", err)
		}
		if got := s.State().Containers[0].Config["tags"]; got != "a;b;c" {
			t.Fatalf("normalised tags = %q", got)
		}
		err = c.Put(ctx, "/nodes/pve1/lxc/100/config", map[string]any{"tags": "bad!tag"}, nil)
		if err == nil || !strings.Contains(err.Error(), `"tags":"invalid characters in tag 'bad!tag'"`) {
			t.Fatalf("bad tag err = %v", err)
		}
	})

	t.Run("snapshot config and current", func(t *testing.T) {
		var m map[string]any
		if err := c.Get(ctx, "/nodes/pve1/lxc/101/config?snapshot=baseline", &m); err != nil {
			t.Fatalf("config at snapshot: %v", err)
		}
		if m["hostname"] != "keycloak" || m["snaptime"] == nil {
			t.Fatalf("snapshot config = %v", m)
		}
		if _, ok := m["cores"].(float64); !ok {
			t.Fatalf("cores must be a JSON number, got %T", m["cores"])
		}
	})
}

func TestFirewall(t *testing.T) {
	s := startSim(t, Options{})
	c := responder(s)
	ctx := testCtx(t)
	ct, err := (&proxmox.Node{}).New(c, "pve1").Container(ctx, 900)
	if err != nil {
		t.Fatalf("container: %v", err)
	}
	cl, _ := c.Cluster(ctx)
	dc, err := cl.FirewallOptions(ctx)
	if err != nil || dc.Enable != 1 {
		t.Fatalf("datacenter firewall = %+v, %v", dc, err)
	}
	iso, _ := s.EffectiveIsolation(900)
	if iso.Isolated || iso.ContainerFirewall {
		t.Fatalf("canary starts isolated: %+v", iso)
	}

	if err := ct.UpdateFirewallOptions(ctx, &proxmox.FirewallVirtualMachineOption{Enable: true, PolicyIn: "DROP", PolicyOut: "DROP"}); err != nil {
		t.Fatalf("update options: %v", err)
	}
	opts, err := ct.GetFirewallOptions(ctx)
	if err != nil || !bool(opts.Enable) || opts.PolicyIn != "DROP" || opts.PolicyOut != "DROP" {
		t.Fatalf("options = %+v, %v", opts, err)
	}
	iso, _ = s.EffectiveIsolation(900)
	if !iso.FirewallIsolated || !iso.Isolated || !iso.AllNICsFirewalled {
		t.Fatalf("isolation = %+v", iso)
	}

	// Rules are unshifted: the newest is at position 0; omitted enable stores 0.
	for i, cm := range []string{"first", "second"} {
		r := &proxmox.FirewallRule{Type: "out", Action: "DROP", Comment: cm}
		if i == 1 {
			r.Enable = 1
		}
		if err := ct.NewFirewallRule(ctx, r); err != nil {
			t.Fatalf("new rule: %v", err)
		}
	}
	rules, err := ct.FirewallRules(ctx)
	if err != nil || len(rules) != 2 || rules[0].Comment != "second" || rules[0].Enable != 1 || rules[1].Enable != 0 || rules[1].Pos != 1 {
		t.Fatalf("rules = %+v, %v", rules, err)
	}
	one := ct.FirewallRule(1)
	if err := one.Get(ctx); err != nil || one.Comment != "first" {
		t.Fatalf("rule 1 = %+v, %v", one, err)
	}
	if err := ct.FirewallRule(7).Get(ctx); err == nil || err.Error() != "500 no rule at position 7" {
		t.Fatalf("missing rule err = %v", err)
	}
	err = ct.NewFirewallRule(ctx, &proxmox.FirewallRule{Type: "in", Action: "ACCEPT", Dport: "22"})
	if err == nil || !strings.Contains(err.Error(), "'dport' requires this property") {
		t.Fatalf("dport without proto err = %v", err)
	}
	for i := len(rules) - 1; i >= 0; i-- {
		if err := rules[i].Delete(ctx); err != nil {
			t.Fatalf("delete rule %d: %v", i, err)
		}
	}

	// go-proxmox cannot send enable=0 through the struct: use the generic Put.
	if err := c.Put(ctx, "/nodes/pve1/lxc/900/firewall/options", map[string]any{"enable": 0, "policy_in": "ACCEPT", "policy_out": "ACCEPT"}, nil); err != nil {
		t.Fatalf("disable firewall: %v", err)
	}
	iso, _ = s.EffectiveIsolation(900)
	if iso.ContainerFirewall || iso.Isolated {
		t.Fatalf("isolation after disable = %+v", iso)
	}
	if err := cl.FirewallOptionsUpdate(ctx, &proxmox.FirewallClusterOptionUpdateOption{Enable: 1, PolicyIn: "DROP"}); err != nil {
		t.Fatalf("datacenter update: %v", err)
	}

	entries, err := ct.FirewallLog(ctx)
	if err != nil || len(entries) < 3 || entries[0].LineNum != 1 || !strings.Contains(entries[0].Text, "firewall options updated") {
		t.Fatalf("firewall log = %+v, %v", entries, err)
	}
	syslog, err := (&proxmox.Node{}).New(c, "pve1").Syslog(ctx, &proxmox.NodeSyslogOptions{Limit: 500})
	if err != nil {
		t.Fatalf("syslog: %v", err)
	}
	found := false
	for _, l := range syslog {
		found = found || strings.Contains(l.T, "CT 900 firewall options updated") && strings.Contains(l.T, "iru@pve!responder")
	}
	if !found {
		t.Fatalf("firewall change missing from syslog: %+v", syslog)
	}

	// ipsets (minimal)
	if err := ct.NewFirewallIPSet(ctx, proxmox.FirewallIPSetCreationOption{Name: "blocked", Comment: "ir"}); err != nil {
		t.Fatalf("new ipset: %v", err)
	}
	if err := ct.NewFirewallIPSetEntry(ctx, "blocked", proxmox.FirewallIPSetEntryCreationOption{CIDR: "10.20.99.5"}); err != nil {
		t.Fatalf("ipset entry: %v", err)
	}
	sets, err := ct.GetFirewallIPSet(ctx)
	if err != nil || len(sets) != 1 || sets[0].Name != "blocked" {
		t.Fatalf("ipsets = %+v, %v", sets, err)
	}
	es, err := ct.GetFirewallIPSetEntries(ctx, "blocked")
	if err != nil || len(es) != 1 || es[0].CIDR != "10.20.99.5" {
		t.Fatalf("ipset entries = %+v, %v", es, err)
	}
}

func TestSnapshots(t *testing.T) {
	s := startSim(t, Options{TaskDuration: 30 * time.Millisecond})
	c := responder(s)
	ctx := testCtx(t)
	ct, err := (&proxmox.Node{}).New(c, "pve2").Container(ctx, 102)
	if err != nil {
		t.Fatalf("container: %v", err)
	}
	snaps, err := ct.Snapshots(ctx)
	if err != nil || len(snaps) != 2 || snaps[0].Name != "baseline" || snaps[1].Name != "current" || snaps[1].Parent != "baseline" {
		t.Fatalf("initial snapshots = %+v, %v", snaps, err)
	}

	task, err := ct.NewSnapshot(ctx, "ir-1")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if !regexp.MustCompile(`^UPID:pve2:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzsnapshot:102:iru@pve!responder:$`).MatchString(string(task.UPID)) {
		t.Fatalf("upid = %s", task.UPID)
	}
	if task.Node != "pve2" || task.User != "iru@pve!responder" {
		t.Fatalf("task = %+v", task)
	}
	// While the task runs the CT is locked and config changes fail.
	var cfg map[string]any
	if err := c.Get(ctx, "/nodes/pve2/lxc/102/config", &cfg); err != nil || cfg["lock"] != "snapshot" {
		t.Fatalf("lock during snapshot = %v, %v", cfg["lock"], err)
	}
	if _, err := ct.Config(ctx, proxmox.ContainerOption{Name: "description", Value: "x"}); err == nil || err.Error() != "500 CT is locked (snapshot)" {
		t.Fatalf("config during snapshot err = %v", err)
	}
	waitTask(t, ctx, task)
	if !task.IsSuccessful || task.ExitStatus != "OK" {
		t.Fatalf("snapshot task = %+v", task)
	}
	log, err := task.Log(ctx, 0, 50)
	if err != nil || log[len(log)-1] != "TASK OK" {
		t.Fatalf("task log = %v, %v", log, err)
	}

	dup, err := ct.NewSnapshot(ctx, "ir-1")
	if err != nil {
		t.Fatalf("duplicate request must succeed, task fails: %v", err)
	}
	waitTask(t, ctx, dup)
	if dup.IsSuccessful || dup.ExitStatus != "snapshot name 'ir-1' already used" {
		t.Fatalf("duplicate task = %+v", dup)
	}
	if _, err := ct.NewSnapshot(ctx, "current"); err == nil || err.Error() != "500 unable to use snapshot name 'current' (reserved name)" {
		t.Fatalf("reserved name err = %v", err)
	}
	if _, err := ct.NewSnapshot(ctx, "1bad"); err == nil || !strings.Contains(err.Error(), "invalid configuration ID '1bad'") {
		t.Fatalf("bad name err = %v", err)
	}
	var upid proxmox.UPID
	if err := c.Post(ctx, "/nodes/pve2/lxc/102/snapshot", map[string]any{"snapname": "ir-2", "description": "pre-containment"}, &upid); err != nil {
		t.Fatalf("snapshot with description: %v", err)
	}
	waitTask(t, ctx, proxmox.NewTask(upid, c))
	snaps, _ = ct.Snapshots(ctx)
	got := map[string]*proxmox.ContainerSnapshot{}
	for _, sn := range snaps {
		got[sn.Name] = sn
	}
	if got["ir-2"].Parent != "ir-1" || got["ir-2"].Description != "pre-containment" || got["current"].Parent != "ir-2" || got["ir-1"].SnapshotCreationTime == 0 {
		t.Fatalf("snapshot tree = %+v %+v %+v", got["ir-1"], got["ir-2"], got["current"])
	}

	// Change config, roll back to ir-1 with start: config restored, CT running.
	if _, err := ct.Config(ctx, proxmox.ContainerOption{Name: "description", Value: "changed"}); err != nil {
		t.Fatalf("config: %v", err)
	}
	rb, err := ct.Snapshot("ir-1").Rollback(ctx, true)
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	waitTask(t, ctx, rb)
	if !rb.IsSuccessful {
		t.Fatalf("rollback task = %+v", rb)
	}
	st := s.State().Containers[2]
	if st.Config["description"] != "IRU core services" || st.Status != "running" || st.Config["parent"] != "ir-1" || st.Config["lock"] != "" {
		t.Fatalf("after rollback = %+v", st)
	}
	missing, err := ct.Snapshot("nope").Rollback(ctx, false)
	if err != nil {
		t.Fatalf("rollback of missing snapshot must start a task: %v", err)
	}
	waitTask(t, ctx, missing)
	if missing.ExitStatus != "snapshot 'nope' does not exist" {
		t.Fatalf("missing rollback = %+v", missing)
	}
	if _, err := ct.Snapshot("nope").Config(ctx); err == nil || err.Error() != "500 snapshot 'nope' does not exist" {
		t.Fatalf("missing snapshot config err = %v", err)
	}

	del, err := ct.Snapshot("ir-1").Delete(ctx)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	waitTask(t, ctx, del)
	snaps, _ = ct.Snapshots(ctx)
	got = map[string]*proxmox.ContainerSnapshot{}
	for _, sn := range snaps {
		got[sn.Name] = sn
	}
	if got["ir-1"] != nil || got["ir-2"].Parent != "baseline" || got["current"].Parent != "baseline" {
		t.Fatalf("after delete = %+v / %+v", got["ir-2"], got["current"])
	}

	tasks, err := (&proxmox.Node{}).New(c, "pve2").Tasks(ctx, &proxmox.NodeTasksOptions{TypeFilter: "vzsnapshot", VMID: 102})
	if err != nil || len(tasks) != 3 {
		t.Fatalf("task list = %d, %v", len(tasks), err)
	}
	if tasks[0].StartTime.IsZero() || tasks[0].Node != "pve2" {
		t.Fatalf("task entry = %+v", tasks[0])
	}
}

func TestPowerOps(t *testing.T) {
	s := startSim(t, Options{TaskDuration: 10 * time.Millisecond})
	c := responder(s)
	ctx := testCtx(t)
	ct, err := (&proxmox.Node{}).New(c, "pve1").Container(ctx, 900)
	if err != nil {
		t.Fatalf("container: %v", err)
	}
	if _, err := ct.Start(ctx); err == nil || err.Error() != "500 CT 900 already running" {
		t.Fatalf("start running err = %v", err)
	}
	steps := []struct {
		name  string
		op    func() (*proxmox.Task, error)
		typ   string
		after string
	}{
		{"shutdown", func() (*proxmox.Task, error) { return ct.Shutdown(ctx, true, 30) }, "vzshutdown", "stopped"},
		{"start", func() (*proxmox.Task, error) { return ct.Start(ctx) }, "vzstart", "running"},
		{"reboot", func() (*proxmox.Task, error) { return ct.Reboot(ctx) }, "vzreboot", "running"},
		{"stop", func() (*proxmox.Task, error) { return ct.Stop(ctx) }, "vzstop", "stopped"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			task, err := st.op()
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if task.Type != st.typ {
				t.Fatalf("task type = %s", task.Type)
			}
			waitTask(t, ctx, task)
			if err := ct.Ping(ctx); err != nil || ct.Status != st.after {
				t.Fatalf("status after %s = %s, %v", st.name, ct.Status, err)
			}
		})
	}
	if _, err := ct.Stop(ctx); err == nil || err.Error() != "500 CT 900 not running" {
		t.Fatalf("stop stopped err = %v", err)
	}
	if _, err := ct.Reboot(ctx); err == nil || err.Error() != "500 VM 900 not running" {
		t.Fatalf("reboot stopped err = %v", err)
	}
	if _, err := ct.Interfaces(ctx); err == nil {
		t.Fatalf("interfaces of a stopped CT must fail")
	}
}

func TestBackupAndRestore(t *testing.T) {
	s := startSim(t, Options{TaskDuration: 20 * time.Millisecond})
	c := responder(s)
	ctx := testCtx(t)
	pve1 := (&proxmox.Node{}).New(c, "pve1")
	pve2 := (&proxmox.Node{}).New(c, "pve2")

	var seed []proxmox.StorageContent
	if err := c.Get(ctx, "/nodes/pve1/storage/local/content?content=backup&vmid=101", &seed); err != nil || len(seed) != 1 {
		t.Fatalf("seed backups = %+v, %v", seed, err)
	}
	if !strings.HasPrefix(seed[0].Volid, "local:backup/vzdump-lxc-101-") || seed[0].Format != "tar.zst" || seed[0].VMID != 101 {
		t.Fatalf("seed backup = %+v", seed[0])
	}
	st, err := pve1.Storage(ctx, "local")
	if err != nil || st.Type != "dir" || st.Active != 1 || st.Total == 0 || !strings.Contains(st.Content, "backup") {
		t.Fatalf("storage = %+v, %v", st, err)
	}

	// vzdump on the wrong node: "OK", not a UPID.
	wrong, err := pve2.Vzdump(ctx, &proxmox.VirtualMachineBackupOptions{VMID: 101, Mode: "snapshot", Storage: "local", Compress: "zstd"})
	if err != nil || wrong.UPID != "OK" {
		t.Fatalf("vzdump on wrong node = %+v, %v", wrong, err)
	}
	task, err := pve1.Vzdump(ctx, &proxmox.VirtualMachineBackupOptions{VMID: 101, Mode: "snapshot", Storage: "local", Compress: "zstd"})
	if err != nil || task.Type != "vzdump" || task.ID != "101" {
		t.Fatalf("vzdump = %+v, %v", task, err)
	}
	if lock := s.State().Containers[1].Config["lock"]; lock != "backup" {
		t.Fatalf("lock during backup = %q", lock)
	}
	waitTask(t, ctx, task)
	if !task.IsSuccessful {
		t.Fatalf("vzdump task = %+v", task)
	}
	var after []proxmox.StorageContent
	if err := c.Get(ctx, "/nodes/pve1/storage/local/content?content=backup&vmid=101", &after); err != nil || len(after) != 2 {
		t.Fatalf("backups after = %+v, %v", after, err)
	}

	// Quarantine, then restore from the seed backup: needs force and a stopped CT.
	ct, _ := pve1.Container(ctx, 101)
	if _, err := ct.Config(ctx, proxmox.ContainerOption{Name: "description", Value: "compromised"}); err != nil {
		t.Fatalf("config: %v", err)
	}
	restoreOpts := []proxmox.ContainerOption{{Name: "ostemplate", Value: seed[0].Volid}, {Name: "restore", Value: 1}, {Name: "force", Value: 1}, {Name: "storage", Value: "local-lvm"}}
	if _, err := pve1.NewContainer(ctx, 101, restoreOpts...); err == nil || err.Error() != "500 can't overwrite running container" {
		t.Fatalf("restore over running CT err = %v", err)
	}
	if _, err := pve1.NewContainer(ctx, 101, restoreOpts[:2]...); err == nil || !strings.Contains(err.Error(), "CT 101 already exists on node 'pve1'") {
		t.Fatalf("restore without force err = %v", err)
	}
	stop, err := ct.Stop(ctx)
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	waitTask(t, ctx, stop)
	rt, err := pve1.NewContainer(ctx, 101, restoreOpts...)
	if err != nil || rt.Type != "vzrestore" {
		t.Fatalf("restore = %+v, %v", rt, err)
	}
	waitTask(t, ctx, rt)
	if !rt.IsSuccessful {
		t.Fatalf("restore task = %+v", rt)
	}
	got := s.State().Containers[1]
	if got.Config["description"] != "Keycloak identity provider (realm iru)" || len(got.Snapshots) != 0 || got.Status != "stopped" || got.Config["lock"] != "" {
		t.Fatalf("restored CT = %+v", got)
	}
	if _, err := pve1.NewContainer(ctx, 101, proxmox.ContainerOption{Name: "ostemplate", Value: "local:backup/none.tar.zst"},
		proxmox.ContainerOption{Name: "restore", Value: 1}, proxmox.ContainerOption{Name: "force", Value: 1}); err == nil ||
		err.Error() != "500 volume 'local:backup/none.tar.zst' does not exist" {
		t.Fatalf("restore of missing volume err = %v", err)
	}

	// vmid <= 0: go-proxmox asks /cluster/nextid (a string) and creates a CT.
	nt, err := pve2.NewContainer(ctx, 0, proxmox.ContainerOption{Name: "ostemplate", Value: "local:vztmpl/debian-13-standard_13.1-1_amd64.tar.zst"},
		proxmox.ContainerOption{Name: "hostname", Value: "forensics"}, proxmox.ContainerOption{Name: "net0", Value: "name=eth0,bridge=vmbr0,ip=dhcp"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	waitTask(t, ctx, nt)
	if nt.ID != "104" || !nt.IsSuccessful {
		t.Fatalf("create task = %+v", nt)
	}
	made, err := pve2.Container(ctx, 104)
	if err != nil || made.ContainerConfig.Hostname != "forensics" || !strings.Contains(made.ContainerConfig.Nets["net0"], "hwaddr=BC:24:11:") {
		t.Fatalf("created CT = %+v, %v", made, err)
	}
}

func TestTokensAndAuth(t *testing.T) {
	s := startSim(t, Options{})
	c := responder(s)
	ctx := testCtx(t)

	u, err := c.User(ctx, LabIRUUser)
	if err != nil || len(u.Tokens) != 2 {
		t.Fatalf("user = %+v, %v", u, err)
	}
	nt, err := u.NewAPIToken(ctx, proxmox.Token{TokenID: "rotated", Comment: "rotation", Privsep: false})
	if err != nil {
		t.Fatalf("new token: %v", err)
	}
	if nt.FullTokenID != "iru@pve!rotated" || !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(nt.Value) {
		t.Fatalf("new token = %+v", nt)
	}
	rotated := proxmox.NewClient(s.URL(), proxmox.WithAPIToken(nt.FullTokenID, nt.Value), proxmox.WithHTTPClient(s.HTTPClient()))
	if _, err := rotated.Cluster(ctx); err != nil {
		t.Fatalf("rotated token (privsep=0 inherits user privileges): %v", err)
	}
	if _, err := u.NewAPIToken(ctx, proxmox.Token{TokenID: "rotated"}); err == nil {
		t.Fatalf("duplicate token must fail")
	}
	if err := u.DeleteAPIToken(ctx, "rotated"); err != nil {
		t.Fatalf("delete token: %v", err)
	}
	if _, err := rotated.Nodes(ctx); !proxmox.IsNotAuthorized(err) {
		t.Fatalf("deleted token still works: %v", err)
	}

	// A privsep token has no privileges until an ACL grants them.
	sep, err := u.NewAPIToken(ctx, proxmox.Token{TokenID: "sep", Privsep: true})
	if err != nil {
		t.Fatalf("privsep token: %v", err)
	}
	sc := proxmox.NewClient(s.URL(), proxmox.WithAPIToken(sep.FullTokenID, sep.Value), proxmox.WithHTTPClient(s.HTTPClient()))
	if err := sc.Get(ctx, "/cluster/status", nil); !proxmox.IsNotAuthorized(err) {
		t.Fatalf("privsep token without ACL: %v", err)
	}
	if err := c.UpdateACL(ctx, proxmox.ACLOptions{Path: "/", Roles: "PVEAuditor", Tokens: sep.FullTokenID, Propagate: true}); err != nil {
		t.Fatalf("acl: %v", err)
	}
	if err := sc.Get(ctx, "/cluster/status", nil); err != nil {
		t.Fatalf("privsep token with ACL: %v", err)
	}

	// Read-only token: GETs with audit privileges work, writes and syslog are 403.
	a := auditor(s)
	if _, err := a.Cluster(ctx); err != nil {
		t.Fatalf("audit cluster: %v", err)
	}
	ct, err := (&proxmox.Node{}).New(a, "pve1").Container(ctx, 100)
	if err != nil {
		t.Fatalf("audit container: %v", err)
	}
	if _, err := ct.Config(ctx, proxmox.ContainerOption{Name: "description", Value: "x"}); !proxmox.IsNotAuthorized(err) {
		t.Fatalf("audit write err = %v", err)
	}
	if _, err := ct.NewSnapshot(ctx, "nope"); !proxmox.IsNotAuthorized(err) {
		t.Fatalf("audit snapshot err = %v", err)
	}
	if _, err := (&proxmox.Node{}).New(a, "pve1").Syslog(ctx, nil); !proxmox.IsNotAuthorized(err) {
		t.Fatalf("audit syslog err = %v", err)
	}

	// Ticket auth with credentials: first call 401, session, CSRF on writes.
	tc := proxmox.NewClient(s.URL(), proxmox.WithCredentials(&proxmox.Credentials{Username: LabRootUser, Password: LabRootPassword}), proxmox.WithHTTPClient(s.HTTPClient()))
	if _, err := tc.Nodes(ctx); err != nil {
		t.Fatalf("ticket nodes: %v", err)
	}
	sess := tc.Session()
	if sess == nil || !strings.HasPrefix(sess.Ticket, "PVE:root@pam:") || sess.Cap["vms"]["VM.Audit"] != 1 || sess.ClusterName != LabClusterName {
		t.Fatalf("session = %+v", sess)
	}
	if err := tc.Put(ctx, "/nodes/pve1/lxc/900/config", map[string]any{"description": "via ticket"}, nil); err != nil {
		t.Fatalf("ticket write: %v", err)
	}
	old := sess.Ticket
	time.Sleep(1100 * time.Millisecond) // tickets carry a second-resolution timestamp
	if err := tc.RefreshTicket(ctx); err != nil {
		t.Fatalf("renew ticket: %v", err)
	}
	if tc.Session().Ticket == old {
		t.Fatalf("ticket not renewed")
	}
	bad := proxmox.NewClient(s.URL(), proxmox.WithCredentials(&proxmox.Credentials{Username: LabRootUser, Password: "wrong"}), proxmox.WithHTTPClient(s.HTTPClient()))
	if _, err := bad.Nodes(ctx); !proxmox.IsNotAuthorized(err) {
		t.Fatalf("bad password err = %v", err)
	}
}

func TestTaskEndpoints(t *testing.T) {
	s := startSim(t, Options{TaskDuration: 200 * time.Millisecond, TaskDurations: map[string]time.Duration{"vzstop": InstantTasks}})
	c := responder(s)
	ctx := testCtx(t)
	ct, _ := (&proxmox.Node{}).New(c, "pve1").Container(ctx, 900)
	task, err := ct.NewSnapshot(ctx, "slow")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := task.Ping(ctx); err != nil || task.Status != "running" || task.IsCompleted {
		t.Fatalf("running task = %+v, %v", task, err)
	}
	var st map[string]any
	if err := c.Get(ctx, fmt.Sprintf("/nodes/pve1/tasks/%s/status", task.UPID), &st); err != nil || st["user"] != "iru@pve" || st["tokenid"] != "responder" {
		t.Fatalf("status split = %v, %v", st, err)
	}
	if err := task.Stop(ctx); err != nil {
		t.Fatalf("stop task: %v", err)
	}
	if err := task.Ping(ctx); err != nil || task.Status != "stopped" || task.IsSuccessful {
		t.Fatalf("stopped task = %+v, %v", task, err)
	}
	if s.State().Containers[4].Config["lock"] != "" {
		t.Fatalf("lock left after task stop")
	}
	stop, err := ct.Stop(ctx)
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := stop.Ping(ctx); err != nil || !stop.IsSuccessful {
		t.Fatalf("instant task = %+v, %v", stop, err)
	}
	unknown := proxmox.NewTask("UPID:pve1:00000001:00000001:00000001:vzstop:900:root@pam:", c)
	if err := unknown.Ping(ctx); err == nil || !strings.Contains(err.Error(), `{"upid":"no such task"}`) {
		t.Fatalf("unknown task err = %v", err)
	}
}
