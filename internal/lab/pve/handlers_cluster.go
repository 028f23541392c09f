package pve

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

func hVersion(s *Server, r *request) (result, *apiError) {
	return result{data: map[string]any{"version": "9.1.1", "release": "9.1", "repoid": "42db4a6cf3fd8b21"}}, nil
}

func hRootIndex(s *Server, r *request) (result, *apiError) {
	var out []map[string]string
	for _, n := range []string{"version", "cluster", "nodes", "storage", "access", "pools"} {
		out = append(out, map[string]string{"subdir": n})
	}
	return result{data: out}, nil
}

// checkNodeLocked fails like pveproxy's proxyto for an unknown node.
func (s *Server) checkNodeLocked(node string) *apiError {
	if s.st.node(node) == nil {
		return errf("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", node, node)
	}
	return nil
}

func hClusterStatus(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{{
		"type": "cluster", "id": "cluster", "name": s.st.cluster, "version": 2, "quorate": 1, "nodes": len(s.st.nodes),
	}}
	for i, n := range s.st.nodes {
		out = append(out, map[string]any{
			"type": "node", "id": "node/" + n.name, "name": n.name, "ip": n.ip, "nodeid": i + 1,
			"online": 1, "local": btoi(i == 0), "level": "",
		})
	}
	return result{data: out}, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

const (
	nodeMaxCPU = 16
	nodeMaxMem = uint64(64) << 30
	nodeDisk   = uint64(100) << 30
)

func (s *Server) nodeUsageLocked(node string) (cpu float64, mem uint64) {
	mem = 3 << 30
	for _, ct := range s.st.cts {
		if ct.node == node && ct.running {
			cpu += 0.01
			mem += ctMem(ct)
		}
	}
	return cpu + 0.02, mem
}

func ctMem(ct *container) uint64 {
	return mib(ct.conf["memory"], 512) / 4
}

func mib(v string, def uint64) uint64 {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		n = def
	}
	return n << 20
}

func (s *Server) ctResourceLocked(ct *container) map[string]any {
	st := s.ctStatusLocked(ct)
	m := map[string]any{
		"id": fmt.Sprintf("lxc/%d", ct.vmid), "type": "lxc", "vmid": ct.vmid, "node": ct.node,
		"name": st["name"], "status": st["status"], "maxcpu": st["cpus"], "cpu": st["cpu"], "mem": st["mem"],
		"maxmem": st["maxmem"], "disk": st["disk"], "maxdisk": st["maxdisk"], "netin": st["netin"], "netout": st["netout"],
		"diskread": st["diskread"], "diskwrite": st["diskwrite"], "uptime": st["uptime"], "template": 0,
	}
	if t := ct.conf["tags"]; t != "" {
		m["tags"] = t
	}
	if l := ct.conf["lock"]; l != "" {
		m["lock"] = l
	}
	return m
}

func (s *Server) storageRowLocked(node string, sd *storageDef) map[string]any {
	used := s.storageUsedLocked(node, sd)
	return map[string]any{
		"id": "storage/" + node + "/" + sd.id, "type": "storage", "storage": sd.id, "node": node,
		"status": "available", "content": sd.content, "plugintype": sd.typ, "shared": 0,
		"disk": used, "maxdisk": sd.total,
	}
}

func (s *Server) storageUsedLocked(node string, sd *storageDef) uint64 {
	used := uint64(8) << 30
	for _, v := range s.st.volumes {
		if v.node == node && v.storage == sd.id {
			used += v.size
		}
	}
	if sd.content == "images,rootdir" {
		for _, ct := range s.st.cts {
			if ct.node == node {
				used += diskSize(ct.conf["rootfs"]) / 3
			}
		}
	}
	if used > sd.total {
		used = sd.total
	}
	return used
}

func diskSize(rootfs string) uint64 {
	for _, part := range strings.Split(rootfs, ",") {
		if v, ok := strings.CutPrefix(part, "size="); ok {
			mult := uint64(1)
			switch {
			case strings.HasSuffix(v, "G"):
				mult, v = 1<<30, strings.TrimSuffix(v, "G")
			case strings.HasSuffix(v, "M"):
				mult, v = 1<<20, strings.TrimSuffix(v, "M")
			case strings.HasSuffix(v, "T"):
				mult, v = 1<<40, strings.TrimSuffix(v, "T")
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			return n * mult
		}
	}
	return 8 << 30
}

func (s *Server) nodeRowLocked(n *nodeState) map[string]any {
	cpu, mem := s.nodeUsageLocked(n.name)
	return map[string]any{
		"id": "node/" + n.name, "type": "node", "node": n.name, "status": "online", "cpu": cpu,
		"maxcpu": nodeMaxCPU, "mem": mem, "maxmem": nodeMaxMem, "disk": uint64(12) << 30, "maxdisk": nodeDisk,
		"uptime": uint64(s.now().Sub(s.st.bootTime).Seconds()), "level": "",
		"ssl_fingerprint": "5A:1B:3C:7D:00:2E:9F:44:61:8A:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90:A1:B2:C3:D4:E5:F6:07",
	}
}

func sortedCTs(st *state) []*container {
	out := make([]*container, 0, len(st.cts))
	for _, ct := range st.cts {
		out = append(out, ct)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].vmid < out[j].vmid })
	return out
}

func hClusterResources(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	typ := r.params["type"]
	out := []map[string]any{}
	if typ == "" || typ == "vm" {
		for _, ct := range sortedCTs(s.st) {
			if s.privsLocked(r.auth, fmt.Sprintf("/vms/%d", ct.vmid))["VM.Audit"] {
				out = append(out, s.ctResourceLocked(ct))
			}
		}
	}
	if typ == "" || typ == "node" {
		for _, n := range s.st.nodes {
			out = append(out, s.nodeRowLocked(n))
		}
	}
	if typ == "" || typ == "storage" {
		for _, n := range s.st.nodes {
			for _, sd := range s.st.storages {
				out = append(out, s.storageRowLocked(n.name, sd))
			}
		}
	}
	if typ == "" || typ == "sdn" {
		for _, n := range s.st.nodes {
			out = append(out, map[string]any{"id": "sdn/" + n.name + "/localnetwork", "type": "sdn", "sdn": "localnetwork", "node": n.name, "status": "ok"})
		}
	}
	return result{data: out}, nil
}

func hNextID(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := r.params["vmid"]; ok {
		id, _ := strconv.Atoi(v)
		if _, used := s.st.cts[id]; used {
			return result{}, paramErr(map[string]string{"vmid": fmt.Sprintf("VM %d already exists", id)})
		}
		return result{data: strconv.Itoa(id)}, nil
	}
	for id := 100; ; id++ {
		if _, used := s.st.cts[id]; !used {
			return result{data: strconv.Itoa(id)}, nil
		}
	}
}

var fwBoolOpts = map[string]bool{"enable": true, "dhcp": true, "ipfilter": true, "macfilter": true, "ndp": true, "radv": true, "ebtables": true}

// optionsJSON types firewall options (booleans as numbers) and adds digest.
func optionsJSON(opts map[string]string, digest string) map[string]any {
	out := map[string]any{"digest": digest}
	for k, v := range opts {
		if fwBoolOpts[k] {
			b, _ := parseBool(v)
			out[k] = btoi(b)
			continue
		}
		out[k] = v
	}
	return out
}

func dcDigest(opts map[string]string) string {
	return fwDigest(fwConfig{options: opts})
}

func hClusterFWGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return result{data: optionsJSON(s.st.dcFirewall, dcDigest(s.st.dcFirewall))}, nil
}

// applyOptions applies "delete" and set parameters to an options map.
func applyOptions(opts map[string]string, params map[string]string, skip map[string]bool) {
	for _, k := range splitList(params["delete"]) {
		delete(opts, k)
	}
	for k, v := range params {
		if skip[k] || k == "delete" || k == "digest" {
			continue
		}
		if fwBoolOpts[k] {
			b, _ := parseBool(v)
			v = strconv.Itoa(btoi(b))
		}
		opts[k] = v
	}
}

func hClusterFWPut(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := r.params["digest"]; d != "" && d != dcDigest(s.st.dcFirewall) {
		return result{}, errf("detected modified configuration - file changed by other user? Try again.")
	}
	applyOptions(s.st.dcFirewall, r.params, nil)
	for _, n := range s.st.nodes {
		s.st.syslog(n.name, s.now(), "pve-firewall[1042]", fmt.Sprintf("cluster firewall options updated by %s (enable=%s)", r.auth.full(), s.st.dcFirewall["enable"]))
	}
	return result{data: nil}, nil
}

func hNodes(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, n := range s.st.nodes {
		row := s.nodeRowLocked(n)
		delete(row, "type")
		row["type"] = "node"
		out = append(out, row)
	}
	return result{data: out}, nil
}

func hNodeIndex(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if aerr := s.checkNodeLocked(r.params["node"]); aerr != nil {
		return result{}, aerr
	}
	var out []map[string]string
	for _, n := range []string{"lxc", "status", "storage", "syslog", "tasks", "vzdump", "firewall", "network", "version"} {
		out = append(out, map[string]string{"name": n})
	}
	return result{data: out}, nil
}

func hNodeStatus(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	node := r.params["node"]
	if aerr := s.checkNodeLocked(node); aerr != nil {
		return result{}, aerr
	}
	cpu, mem := s.nodeUsageLocked(node)
	return result{data: map[string]any{
		"cpu": cpu, "wait": 0.001, "idle": 0,
		"uptime":         uint64(s.now().Sub(s.st.bootTime).Seconds()),
		"loadavg":        []string{"0.21", "0.18", "0.12"},
		"memory":         map[string]any{"used": mem, "free": nodeMaxMem - mem, "total": nodeMaxMem, "available": nodeMaxMem - mem},
		"swap":           map[string]any{"used": 0, "free": uint64(8) << 30, "total": uint64(8) << 30},
		"rootfs":         map[string]any{"used": uint64(12) << 30, "free": nodeDisk - uint64(12)<<30, "total": nodeDisk, "avail": nodeDisk - uint64(12)<<30},
		"ksm":            map[string]any{"shared": 0},
		"cpuinfo":        map[string]any{"cpus": nodeMaxCPU, "cores": 8, "sockets": 1, "model": "AMD EPYC 7302P 16-Core Processor", "mhz": "3000.000", "hvm": "1", "user_hz": 100, "flags": "fpu vme de pse"},
		"kversion":       "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-11-11T09:32Z) x86_64",
		"pveversion":     "pve-manager/9.1.1/42db4a6cf3fd8b21",
		"current-kernel": map[string]any{"machine": "x86_64", "release": "6.17.2-1-pve", "sysname": "Linux", "version": "#1 SMP PREEMPT_DYNAMIC"},
		"boot-info":      map[string]any{"mode": "efi", "secureboot": 0},
	}}, nil
}

// parseSyslogTime parses PVE's "YYYY-MM-DD[ HH:MM[:SS]]".
func parseSyslogTime(v string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func hSyslog(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.st.node(r.params["node"])
	if n == nil {
		return result{}, s.checkNodeLocked(r.params["node"])
	}
	since, hasSince := parseSyslogTime(r.params["since"])
	until, hasUntil := parseSyslogTime(r.params["until"])
	svc := r.params["service"]
	var lines []string
	for _, l := range n.syslog {
		if hasSince && l.t.Before(since) || hasUntil && l.t.After(until) {
			continue
		}
		if svc != "" && !strings.Contains(l.text, " "+svc+"[") && !strings.Contains(l.text, " "+svc+":") {
			continue
		}
		lines = append(lines, l.text)
	}
	page, total := pageLines(lines, intParam(r, "start", 0), intParam(r, "limit", 50))
	return result{data: page, extra: map[string]any{"total": total}}, nil
}
