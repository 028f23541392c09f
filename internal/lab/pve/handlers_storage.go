package pve

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

func (s *Server) storageStatusLocked(node string, sd *storageDef) map[string]any {
	used := s.storageUsedLocked(node, sd)
	return map[string]any{
		"type": sd.typ, "content": sd.content, "active": 1, "enabled": 1, "shared": 0,
		"total": sd.total, "used": used, "avail": sd.total - used,
	}
}

func hStorageList(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	node := r.params["node"]
	if aerr := s.checkNodeLocked(node); aerr != nil {
		return result{}, aerr
	}
	out := []map[string]any{}
	for _, sd := range s.st.storages {
		if c := r.params["content"]; c != "" && !hasContent(sd.content, c) {
			continue
		}
		if id := r.params["storage"]; id != "" && id != sd.id {
			continue
		}
		m := s.storageStatusLocked(node, sd)
		m["storage"] = sd.id
		m["used_fraction"] = float64(m["used"].(uint64)) / float64(sd.total)
		out = append(out, m)
	}
	return result{data: out}, nil
}

func hasContent(list, c string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == c {
			return true
		}
	}
	return false
}

func (s *Server) storageLocked(r *request) (*storageDef, *apiError) {
	if aerr := s.checkNodeLocked(r.params["node"]); aerr != nil {
		return nil, aerr
	}
	sd := s.st.storage(r.params["storage"])
	if sd == nil {
		return nil, errf("storage '%s' does not exist", r.params["storage"])
	}
	return sd, nil
}

func hStorageIndex(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, aerr := s.storageLocked(r); aerr != nil {
		return result{}, aerr
	}
	var out []map[string]string
	for _, n := range []string{"content", "download-url", "file-restore", "import-metadata", "prunebackups", "rrd", "rrddata", "status", "upload"} {
		out = append(out, map[string]string{"subdir": n})
	}
	return result{data: out}, nil
}

func hStorageStatus(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sd, aerr := s.storageLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	return result{data: s.storageStatusLocked(r.params["node"], sd)}, nil
}

func volumeJSON(v *volume) map[string]any {
	m := map[string]any{"volid": v.volid, "content": v.content, "format": v.format, "size": v.size, "ctime": v.ctime, "vmid": v.vmid}
	if v.content == "backup" {
		m["subtype"] = "lxc"
		if v.notes != "" {
			m["notes"] = v.notes
		}
		if v.protected {
			m["protected"] = 1
		}
	} else {
		m["used"] = v.size / 3
	}
	return m
}

func hStorageContent(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sd, aerr := s.storageLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	node := r.params["node"]
	var vols []*volume
	for _, v := range s.st.volumes {
		if v.node == node && v.storage == sd.id {
			vols = append(vols, v)
		}
	}
	if sd.content == "images,rootdir" {
		for _, ct := range sortedCTs(s.st) {
			if ct.node == node && strings.HasPrefix(ct.conf["rootfs"], sd.id+":") {
				vol := strings.SplitN(ct.conf["rootfs"], ",", 2)[0]
				vols = append(vols, &volume{volid: vol, storage: sd.id, node: node, vmid: ct.vmid, content: "rootdir", format: "raw", size: diskSize(ct.conf["rootfs"]), ctime: s.st.bootTime.Unix()})
			}
		}
	}
	sort.SliceStable(vols, func(i, j int) bool { return vols[i].volid < vols[j].volid })
	out := []map[string]any{}
	for _, v := range vols {
		if c := r.params["content"]; c != "" && v.content != c {
			continue
		}
		if id := r.params["vmid"]; id != "" && strconv.Itoa(v.vmid) != id {
			continue
		}
		out = append(out, volumeJSON(v))
	}
	return result{data: out}, nil
}

func (s *Server) volumeLocked(r *request) (*volume, *apiError) {
	sd, aerr := s.storageLocked(r)
	if aerr != nil {
		return nil, aerr
	}
	volid := r.params["volume"]
	if !strings.Contains(volid, ":") {
		volid = sd.id + ":" + volid
	}
	v := s.st.volume(r.params["node"], volid)
	if v == nil {
		return nil, errf("volume '%s' does not exist", volid)
	}
	return v, nil
}

func hVolumeGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, aerr := s.volumeLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	_, rel, _ := strings.Cut(v.volid, ":")
	return result{data: map[string]any{
		"path": "/var/lib/vz/dump/" + strings.TrimPrefix(rel, "backup/"), "size": v.size, "used": v.size,
		"format": v.format, "notes": v.notes, "protected": btoi(v.protected),
	}}, nil
}

func hVolumePut(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, aerr := s.volumeLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if n, ok := r.params["notes"]; ok {
		v.notes = n
	}
	if p, ok := r.params["protected"]; ok {
		v.protected, _ = parseBool(p)
	}
	return result{data: nil}, nil
}

func hVolumeDelete(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, aerr := s.volumeLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if v.protected {
		return result{}, errf("backup '%s' is protected", v.volid)
	}
	t := s.startTaskLocked(r, v.node, "imgdel", v.volid, func(t *task) error {
		for i, x := range s.st.volumes {
			if x == v {
				s.st.volumes = append(s.st.volumes[:i], s.st.volumes[i+1:]...)
				break
			}
		}
		return nil
	}, nil)
	return result{data: t.upid}, nil
}

func hClusterStorage(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, sd := range s.st.storages {
		if t := r.params["type"]; t != "" && t != sd.typ {
			continue
		}
		m := map[string]any{"storage": sd.id, "type": sd.typ, "content": sd.content, "digest": dcDigest(map[string]string{"s": sd.id})}
		if sd.typ == "dir" {
			m["path"] = "/var/lib/vz"
			m["prune-backups"] = "keep-all=1"
		} else {
			m["thinpool"] = "data"
			m["vgname"] = "pve"
		}
		out = append(out, m)
	}
	return result{data: out}, nil
}

// hVzdump backs up the listed CTs that live on this node. When none does,
// PVE answers "OK" instead of a UPID.
func hVzdump(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	node := r.params["node"]
	if aerr := s.checkNodeLocked(node); aerr != nil {
		return result{}, aerr
	}
	if _, ok := r.params["stdout"]; ok {
		return result{}, paramErr(map[string]string{"stdout": "option is not allowed via the API"})
	}
	sid := orDefault(r.params["storage"], "local")
	sd := s.st.storage(sid)
	if sd == nil {
		return result{}, errf("storage '%s' does not exist", sid)
	}
	if !hasContent(sd.content, "backup") {
		return result{}, errf("storage '%s' does not support backups", sid)
	}
	all, _ := parseBool(r.params["all"])
	if r.params["vmid"] == "" && !all && r.params["pool"] == "" {
		return result{}, paramErr(map[string]string{"vmid": "property is missing and it is not optional"})
	}
	want := map[int]bool{}
	for _, v := range splitList(r.params["vmid"]) {
		id, _ := strconv.Atoi(v)
		want[id] = true
	}
	for _, v := range splitList(r.params["exclude"]) {
		id, _ := strconv.Atoi(v)
		delete(want, id)
	}
	var local []*container
	for _, ct := range sortedCTs(s.st) {
		if ct.node == node && (all || want[ct.vmid]) {
			local = append(local, ct)
		}
	}
	for id := range want {
		if _, ok := s.st.cts[id]; !ok {
			return result{}, errf("unable to find VM %d", id)
		}
	}
	if len(local) == 0 {
		return result{data: "OK"}, nil
	}
	id := ""
	if len(local) == 1 {
		id = strconv.Itoa(local[0].vmid)
	}
	own := map[int]bool{}
	held := map[int]string{}
	for _, ct := range local {
		held[ct.vmid] = ct.conf["lock"]
		if ct.conf["lock"] == "" {
			ct.conf["lock"] = "backup"
			own[ct.vmid] = true
		}
	}
	compress := orDefault(r.params["compress"], "0")
	protected, _ := parseBool(r.params["protected"])
	notesTmpl := orDefault(r.params["notes-template"], "{{guestname}}")
	t := s.startTaskLocked(r, node, "vzdump", id, func(t *task) error {
		failed := 0
		for _, ct := range local {
			t.log = append(t.log, fmt.Sprintf("INFO: Starting Backup of VM %d (lxc)", ct.vmid))
			if !own[ct.vmid] {
				t.log = append(t.log, fmt.Sprintf("ERROR: Backup of VM %d failed - CT is locked (%s)", ct.vmid, held[ct.vmid]))
				failed++
				continue
			}
			vol := s.st.addBackup(ct, sid, s.now().UTC(), compress, diskSize(ct.conf["rootfs"])/20)
			vol.protected = protected
			vol.notes = strings.NewReplacer("{{guestname}}", ct.conf["hostname"], "{{vmid}}", strconv.Itoa(ct.vmid), "{{node}}", node, "{{cluster}}", s.st.cluster).Replace(notesTmpl)
			_, rel, _ := strings.Cut(vol.volid, ":backup/")
			t.log = append(t.log, fmt.Sprintf("INFO: creating vzdump archive '/var/lib/vz/dump/%s'", rel))
			t.log = append(t.log, fmt.Sprintf("INFO: Finished Backup of VM %d (00:00:01)", ct.vmid))
		}
		if failed > 0 {
			t.log = append(t.log, "INFO: Backup job finished with errors")
			return fmt.Errorf("job errors")
		}
		t.log = append(t.log, "INFO: Backup job finished successfully")
		return nil
	}, func() {
		for _, ct := range local {
			if own[ct.vmid] {
				delete(ct.conf, "lock")
			}
		}
	})
	return result{data: t.upid}, nil
}
