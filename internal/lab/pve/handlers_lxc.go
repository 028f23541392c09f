package pve

import (
	"crypto/rand"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ctLocked resolves {node}/{vmid}; a CT on another node does not exist here,
// exactly as PVE reports it. Caller holds s.mu.
func (s *Server) ctLocked(r *request) (*container, *apiError) {
	node := r.params["node"]
	if aerr := s.checkNodeLocked(node); aerr != nil {
		return nil, aerr
	}
	vmid, _ := strconv.Atoi(r.params["vmid"])
	ct := s.st.cts[vmid]
	if ct == nil || ct.node != node {
		return nil, errf("Configuration file 'nodes/%s/lxc/%d.conf' does not exist", node, vmid)
	}
	return ct, nil
}

func checkLock(ct *container) *apiError {
	if l := ct.conf["lock"]; l != "" {
		return errf("CT is locked (%s)", l)
	}
	return nil
}

func (s *Server) ctStatusLocked(ct *container) map[string]any {
	cores, err := strconv.Atoi(ct.conf["cores"])
	if err != nil || cores <= 0 {
		cores = nodeMaxCPU
	}
	name := ct.conf["hostname"]
	if name == "" {
		name = fmt.Sprintf("CT%d", ct.vmid)
	}
	m := map[string]any{
		"vmid": ct.vmid, "type": "lxc", "name": name, "cpus": cores,
		"maxmem": mib(ct.conf["memory"], 512), "maxswap": mib(ct.conf["swap"], 512),
		"maxdisk": diskSize(ct.conf["rootfs"]), "ha": map[string]any{"managed": 0},
		"status": "stopped", "cpu": 0, "mem": 0, "swap": 0, "disk": 0, "netin": 0, "netout": 0,
		"diskread": 0, "diskwrite": 0, "uptime": 0,
	}
	if ct.running {
		up := uint64(s.now().Sub(ct.startedAt).Seconds())
		m["status"] = "running"
		m["cpu"] = 0.0123
		m["mem"] = ctMem(ct)
		m["disk"] = diskSize(ct.conf["rootfs"]) / 3
		m["netin"] = up * 1200
		m["netout"] = up * 800
		m["diskread"] = up * 4096
		m["diskwrite"] = up * 2048
		m["uptime"] = up
		m["pid"] = 40000 + ct.vmid
		m["pressurecpusome"] = 0
		m["pressurememorysome"] = 0
		m["pressureiosome"] = 0
	}
	if t := ct.conf["tags"]; t != "" {
		m["tags"] = t
	}
	if l := ct.conf["lock"]; l != "" {
		m["lock"] = l
	}
	if t, _ := parseBool(ct.conf["template"]); t {
		m["template"] = 1
	}
	return m
}

func hLXCList(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if aerr := s.checkNodeLocked(r.params["node"]); aerr != nil {
		return result{}, aerr
	}
	out := []map[string]any{}
	for _, ct := range sortedCTs(s.st) {
		if ct.node == r.params["node"] && s.privsLocked(r.auth, fmt.Sprintf("/vms/%d", ct.vmid))["VM.Audit"] {
			out = append(out, s.ctStatusLocked(ct))
		}
	}
	return result{data: out}, nil
}

func hLXCIndex(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, aerr := s.ctLocked(r); aerr != nil {
		return result{}, aerr
	}
	var out []map[string]string
	for _, n := range []string{"config", "pending", "status", "vncproxy", "termproxy", "vncwebsocket", "spiceproxy", "migrate", "clone", "rrd", "rrddata", "firewall", "snapshot", "resize", "interfaces"} {
		out = append(out, map[string]string{"subdir": n})
	}
	return result{data: out}, nil
}

func hLXCStatusIndex(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, aerr := s.ctLocked(r); aerr != nil {
		return result{}, aerr
	}
	var out []map[string]string
	for _, n := range []string{"current", "start", "stop", "shutdown", "reboot", "suspend", "resume"} {
		out = append(out, map[string]string{"subdir": n})
	}
	return result{data: out}, nil
}

func hLXCStatusCurrent(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	return result{data: s.ctStatusLocked(ct)}, nil
}

// configJSON types a config map for output: integers and booleans become
// JSON numbers, everything else stays a string, description gets its "\n".
func (s *Server) configJSON(conf map[string]string) map[string]any {
	props := s.schema.byPath["/nodes/{node}/lxc/{vmid}/config"]["PUT"].Parameters.Properties
	out := map[string]any{}
	for k, v := range conf {
		if k == "description" {
			out[k] = v + "\n"
			continue
		}
		p := lookupProp(props, k)
		if p != nil {
			switch p.Type {
			case "integer":
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					out[k] = n
					continue
				}
			case "boolean":
				b, _ := parseBool(v)
				out[k] = btoi(b)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func hLXCConfigGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if name, ok := r.params["snapshot"]; ok {
		snap := ct.snapshots[name]
		if snap == nil {
			return result{}, errf("snapshot '%s' does not exist", name)
		}
		out := s.configJSON(snap.conf)
		out["snaptime"] = snap.snaptime
		if snap.description != "" {
			out["description"] = snap.description + "\n"
		}
		if snap.parent != "" {
			out["parent"] = snap.parent
		}
		out["digest"] = configDigest(ct)
		return result{data: out}, nil
	}
	out := s.configJSON(ct.conf)
	out["digest"] = configDigest(ct)
	return result{data: out}, nil
}

func hLXCPending(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	conf := s.configJSON(ct.conf)
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []map[string]any{}
	for _, k := range keys {
		out = append(out, map[string]any{"key": k, "value": conf[k]})
	}
	return result{data: out}, nil
}

// randomMAC returns a PVE-style locally administered MAC (BC:24:11 prefix).
func randomMAC() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("BC:24:11:%02X:%02X:%02X", b[0], b[1], b[2])
}

// canonicalPropertyString parses, completes and re-prints a property string
// value of a config key (netN gets a hwaddr when it has none).
func (s *Server) canonicalPropertyString(key, val string) (string, *apiError) {
	props := s.schema.byPath["/nodes/{node}/lxc/{vmid}/config"]["PUT"].Parameters.Properties
	p := lookupProp(props, key)
	if p == nil || p.formatDict == nil {
		return val, nil
	}
	kv, msg := parsePropertyString(p.formatDict, key, val)
	if msg != "" {
		return "", paramErr(map[string]string{key: msg})
	}
	if strings.HasPrefix(key, "net") {
		if kv["hwaddr"] == "" {
			kv["hwaddr"] = randomMAC()
		}
		if kv["type"] == "" {
			kv["type"] = "veth"
		}
	}
	for k, v := range kv {
		if sp := p.formatDict[k]; sp != nil && sp.Type == "boolean" {
			b, _ := parseBool(v)
			kv[k] = strconv.Itoa(btoi(b))
		}
	}
	return printPropertyString(p.formatDict, kv), nil
}

var configMetaParams = map[string]bool{"node": true, "vmid": true, "digest": true, "delete": true, "revert": true}

// applyConfigParams writes config parameters into conf, as update_pct_config does.
func (s *Server) applyConfigParams(conf map[string]string, params map[string]string, skip map[string]bool) *apiError {
	props := s.schema.byPath["/nodes/{node}/lxc/{vmid}/config"]["PUT"].Parameters.Properties
	for _, k := range splitList(params["delete"]) {
		if _, set := params[k]; set {
			return paramErr(map[string]string{k: "unable to delete and set the same option at the same time"})
		}
		if k == "rootfs" {
			return paramErr(map[string]string{k: "unable to delete required option '" + k + "'"})
		}
		delete(conf, k)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := params[k]
		if configMetaParams[k] || skip[k] {
			continue
		}
		switch k {
		case "tags":
			v = normalizeTags(v)
			if v == "" {
				delete(conf, k)
				continue
			}
		case "description":
			v = strings.TrimRight(v, "\n")
			if v == "" {
				delete(conf, k)
				continue
			}
		default:
			p := lookupProp(props, k)
			if p != nil && p.Type == "boolean" {
				b, _ := parseBool(v)
				v = strconv.Itoa(btoi(b))
			}
			if p != nil && p.formatDict != nil {
				cv, aerr := s.canonicalPropertyString(k, v)
				if aerr != nil {
					return aerr
				}
				v = cv
			}
		}
		conf[k] = v
	}
	return nil
}

func hLXCConfigPut(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if aerr := checkLock(ct); aerr != nil {
		return result{}, aerr
	}
	if d := r.params["digest"]; d != "" && d != configDigest(ct) {
		return result{}, errf("detected modified configuration - file changed by other user? Try again.")
	}
	conf := cloneMap(ct.conf)
	if aerr := s.applyConfigParams(conf, r.params, nil); aerr != nil {
		return result{}, aerr
	}
	ct.conf = conf
	var changed []string
	for k := range r.params {
		if !configMetaParams[k] {
			changed = append(changed, k)
		}
	}
	changed = append(changed, splitList(r.params["delete"])...)
	sort.Strings(changed)
	s.st.syslog(ct.node, s.now(), "pvedaemon[1187]", fmt.Sprintf("<%s> update CT %d: -%s", r.auth.full(), ct.vmid, strings.Join(changed, " -")))
	return result{data: nil}, nil
}

func hLXCInterfaces(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if !ct.running {
		return result{}, errf("CT %d not running", ct.vmid)
	}
	out := []map[string]any{{"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"}}
	for _, nic := range nicsOf(s, ct.conf) {
		m := map[string]any{"name": nic.kv["name"], "hwaddr": strings.ToLower(nic.kv["hwaddr"])}
		if ip := nic.kv["ip"]; ip != "" && ip != "dhcp" && ip != "manual" {
			m["inet"] = ip
		}
		if ip6 := nic.kv["ip6"]; ip6 != "" && ip6 != "dhcp" && ip6 != "auto" && ip6 != "manual" {
			m["inet6"] = ip6
		} else {
			m["inet6"] = "fe80::be24:11ff:fe00:" + strconv.FormatInt(int64(ct.vmid), 16) + "/64"
		}
		out = append(out, m)
	}
	return result{data: out}, nil
}

type nic struct {
	key string
	kv  map[string]string
}

// nicsOf parses net0..netN of a config, sorted by index.
func nicsOf(s *Server, conf map[string]string) []nic {
	props := s.schema.byPath["/nodes/{node}/lxc/{vmid}/config"]["PUT"].Parameters.Properties
	var out []nic
	for k, v := range conf {
		if !strings.HasPrefix(k, "net") {
			continue
		}
		if _, err := strconv.Atoi(k[3:]); err != nil {
			continue
		}
		kv, msg := parsePropertyString(props["net[n]"].formatDict, k, v)
		if msg != "" {
			kv = map[string]string{}
		}
		out = append(out, nic{key: k, kv: kv})
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i].key[3:])
		b, _ := strconv.Atoi(out[j].key[3:])
		return a < b
	})
	return out
}

// power is one of the status/<cmd> operations.
type power struct {
	typ          string
	needRunning  bool
	notRunMsg    string
	resultRunnig bool
	restart      bool
}

var powerOps = map[string]power{
	"start":    {typ: "vzstart", needRunning: false, resultRunnig: true},
	"stop":     {typ: "vzstop", needRunning: true, notRunMsg: "CT %d not running"},
	"shutdown": {typ: "vzshutdown", needRunning: true, notRunMsg: "CT %d not running"},
	"reboot":   {typ: "vzreboot", needRunning: true, notRunMsg: "VM %d not running", resultRunnig: true, restart: true},
	"suspend":  {typ: "vzsuspend", needRunning: true, notRunMsg: "CT %d not running"},
	"resume":   {typ: "vzresume", needRunning: false, resultRunnig: true},
}

func hLXCPower(cmd string) handlerFunc {
	op := powerOps[cmd]
	return func(s *Server, r *request) (result, *apiError) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ct, aerr := s.ctLocked(r)
		if aerr != nil {
			return result{}, aerr
		}
		if op.needRunning && !ct.running {
			return result{}, errf(op.notRunMsg, ct.vmid)
		}
		if !op.needRunning && ct.running {
			return result{}, errf("CT %d already running", ct.vmid)
		}
		if t, _ := parseBool(ct.conf["template"]); t && cmd == "start" {
			return result{}, errf("you can't start a CT if it's a template")
		}
		if skip, _ := parseBool(r.params["skiplock"]); !skip {
			if aerr := checkLock(ct); aerr != nil {
				return result{}, aerr
			}
		}
		t := s.startTaskLocked(r, ct.node, op.typ, strconv.Itoa(ct.vmid), func(t *task) error {
			if op.restart || op.resultRunnig && !ct.running {
				ct.startedAt = s.now()
			}
			ct.running = op.resultRunnig
			t.log = append(t.log, fmt.Sprintf("%s CT %d", cmd, ct.vmid))
			return nil
		}, nil)
		return result{data: t.upid}, nil
	}
}

// hLXCCreate handles POST /nodes/{node}/lxc: create from a template or,
// with restore=1, restore a vzdump archive (over an existing, stopped CT with force=1).
func hLXCCreate(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	node := r.params["node"]
	if aerr := s.checkNodeLocked(node); aerr != nil {
		return result{}, aerr
	}
	vmid, _ := strconv.Atoi(r.params["vmid"])
	restore, _ := parseBool(r.params["restore"])
	force, _ := parseBool(r.params["force"])
	volid := r.params["ostemplate"]
	existing := s.st.cts[vmid]
	if existing != nil && existing.node != node {
		return result{}, errf("CT %d already exists on node '%s'", vmid, existing.node)
	}
	if existing != nil && !(restore && force) {
		return result{}, errf("CT %d already exists on node '%s'", vmid, node)
	}
	if existing != nil {
		if existing.running {
			return result{}, errf("can't overwrite running container")
		}
		if p, _ := parseBool(existing.conf["protection"]); p {
			return result{}, errf("unable to restore CT %d - protection mode enabled", vmid)
		}
		if aerr := checkLock(existing); aerr != nil {
			return result{}, aerr
		}
	}
	if volid == "" {
		return result{}, paramErr(map[string]string{"ostemplate": "property is missing and it is not optional"})
	}
	sid, _, _ := strings.Cut(volid, ":")
	if s.st.storage(sid) == nil {
		return result{}, errf("storage '%s' does not exist", sid)
	}
	var vol *volume
	if restore {
		vol = s.st.volume(node, volid)
		if vol == nil || vol.content != "backup" {
			return result{}, errf("volume '%s' does not exist", volid)
		}
	} else if !strings.Contains(volid, ":vztmpl/") {
		return result{}, errf("volume '%s' does not exist", volid)
	}
	ct := existing
	if ct == nil {
		ct = &container{vmid: vmid, node: node, conf: map[string]string{"lock": "create"}, snapshots: map[string]*snapshot{},
			fw: fwConfig{options: map[string]string{}, ipsets: map[string]*ipset{}}}
		s.st.cts[vmid] = ct
	} else {
		ct.conf["lock"] = "create"
	}
	typ := "vzcreate"
	if restore {
		typ = "vzrestore"
	}
	start, _ := parseBool(r.params["start"])
	params := cloneMap(r.params)
	t := s.startTaskLocked(r, node, typ, strconv.Itoa(vmid), func(t *task) error {
		var conf map[string]string
		if restore {
			t.log = append(t.log, fmt.Sprintf("restoring '%s' now..", volid))
			conf = cloneMap(vol.conf)
			ct.fw = vol.fw.clone()
		} else {
			conf = map[string]string{"arch": "amd64", "ostype": "debian", "hostname": fmt.Sprintf("CT%d", vmid), "memory": "512", "swap": "512", "cores": "1"}
		}
		delete(conf, "parent")
		delete(conf, "lock")
		skip := map[string]bool{"ostemplate": true, "restore": true, "force": true, "storage": true, "start": true, "unique": true,
			"password": true, "ssh-public-keys": true, "pool": true, "bwlimit": true, "ignore-unpack-errors": true, "ha-managed": true}
		if aerr := s.applyConfigParams(conf, params, skip); aerr != nil {
			return fmt.Errorf("%s", aerr.msg)
		}
		target := params["storage"]
		if target == "" {
			target = "local-lvm"
		}
		size := "8G"
		if old := conf["rootfs"]; old != "" {
			if i := strings.Index(old, "size="); i >= 0 {
				size = strings.SplitN(old[i+5:], ",", 2)[0]
			}
		}
		conf["rootfs"] = fmt.Sprintf("%s:vm-%d-disk-0,size=%s", target, vmid, size)
		if u, _ := parseBool(params["unique"]); u || !restore {
			for _, n := range nicsOf(s, conf) {
				n.kv["hwaddr"] = randomMAC()
				cv, _ := s.canonicalPropertyString(n.key, printPropertyString(map[string]*propSchema{}, n.kv))
				conf[n.key] = cv
			}
		}
		ct.conf = conf
		ct.snapshots = map[string]*snapshot{}
		if start {
			ct.running = true
			ct.startedAt = s.now()
		}
		return nil
	}, func() {
		delete(ct.conf, "lock")
	})
	if existing == nil {
		// A failed create leaves no CT behind.
		prev := t.cleanup
		t.cleanup = func() {
			prev()
			if t.exit != "" && t.exit != "OK" || t.canceled {
				if s.st.cts[vmid] == ct {
					delete(s.st.cts, vmid)
				}
			}
		}
	}
	return result{data: t.upid}, nil
}

func hLXCDestroy(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if p, _ := parseBool(ct.conf["protection"]); p {
		return result{}, errf("can't remove CT %d - protection mode enabled", ct.vmid)
	}
	if ct.running {
		return result{}, errf("CT %d is running - destroy failed", ct.vmid)
	}
	if aerr := checkLock(ct); aerr != nil {
		return result{}, aerr
	}
	ct.conf["lock"] = "destroyed"
	t := s.startTaskLocked(r, ct.node, "vzdestroy", strconv.Itoa(ct.vmid), func(t *task) error {
		if s.st.cts[ct.vmid] == ct {
			delete(s.st.cts, ct.vmid)
		}
		return nil
	}, func() { delete(ct.conf, "lock") })
	return result{data: t.upid}, nil
}
