package pve

import (
	"fmt"
	"sort"
	"strconv"
)

var reservedSnapNames = map[string]bool{"current": true, "vzdump": true}

func hSnapList(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	snaps := make([]*snapshot, 0, len(ct.snapshots))
	for _, sn := range ct.snapshots {
		snaps = append(snaps, sn)
	}
	sort.Slice(snaps, func(i, j int) bool {
		if snaps[i].snaptime != snaps[j].snaptime {
			return snaps[i].snaptime < snaps[j].snaptime
		}
		return snaps[i].name < snaps[j].name
	})
	out := []map[string]any{}
	for _, sn := range snaps {
		m := map[string]any{"name": sn.name, "snaptime": sn.snaptime, "description": sn.description}
		if sn.parent != "" {
			m["parent"] = sn.parent
		}
		out = append(out, m)
	}
	cur := map[string]any{"name": "current", "description": "You are here!", "running": btoi(ct.running), "digest": configDigest(ct)}
	if p := ct.conf["parent"]; p != "" {
		cur["parent"] = p
	}
	out = append(out, cur)
	return result{data: out}, nil
}

func hSnapCreate(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	name := r.params["snapname"]
	if reservedSnapNames[name] {
		return result{}, errf("unable to use snapshot name '%s' (reserved name)", name)
	}
	if t, _ := parseBool(ct.conf["template"]); t {
		return result{}, errf("you can't take a snapshot if it's a template")
	}
	descr := r.params["description"]
	_, dup := ct.snapshots[name]
	heldLock := ct.conf["lock"] // the worker checks the lock as it starts
	ownLock := heldLock == "" && !dup
	if ownLock {
		ct.conf["lock"] = "snapshot"
	}
	t := s.startTaskLocked(r, ct.node, "vzsnapshot", strconv.Itoa(ct.vmid), func(t *task) error {
		if !ownLock {
			if _, exists := ct.snapshots[name]; exists {
				return fmt.Errorf("snapshot name '%s' already used", name)
			}
			return fmt.Errorf("CT is locked (%s)", heldLock)
		}
		conf := cloneMap(ct.conf)
		delete(conf, "lock")
		delete(conf, "parent")
		ct.snapshots[name] = &snapshot{name: name, description: descr, parent: ct.conf["parent"], snaptime: s.now().Unix(), conf: conf}
		ct.conf["parent"] = name
		t.log = append(t.log, fmt.Sprintf("create snapshot '%s'", name))
		return nil
	}, func() {
		if ownLock {
			delete(ct.conf, "lock")
		}
	})
	return result{data: t.upid}, nil
}

func (s *Server) snapLocked(r *request) (*container, *snapshot, *apiError) {
	ct, aerr := s.ctLocked(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	name := r.params["snapname"]
	sn := ct.snapshots[name]
	if sn == nil {
		return ct, nil, errf("snapshot '%s' does not exist", name)
	}
	return ct, sn, nil
}

func hSnapIndex(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, aerr := s.snapLocked(r); aerr != nil {
		return result{}, aerr
	}
	return result{data: []map[string]string{{"cmd": "rollback"}, {"cmd": "config"}}}, nil
}

func hSnapConfigGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, sn, aerr := s.snapLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	out := s.configJSON(sn.conf)
	out["snaptime"] = sn.snaptime
	out["description"] = sn.description
	if sn.parent != "" {
		out["parent"] = sn.parent
	}
	return result{data: out}, nil
}

func hSnapConfigPut(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, sn, aerr := s.snapLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if aerr := checkLock(ct); aerr != nil {
		return result{}, aerr
	}
	if d, ok := r.params["description"]; ok {
		sn.description = d
	}
	return result{data: nil}, nil
}

// snapTask starts a rollback or delete task; a missing snapshot fails inside
// the task, as in PVE.
func snapTask(typ, lock string, apply func(s *Server, ct *container, sn *snapshot, r *request)) handlerFunc {
	return func(s *Server, r *request) (result, *apiError) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ct, aerr := s.ctLocked(r)
		if aerr != nil {
			return result{}, aerr
		}
		name := r.params["snapname"]
		force, _ := parseBool(r.params["force"])
		heldLock := ct.conf["lock"]
		ownLock := heldLock == "" && ct.snapshots[name] != nil
		if ownLock {
			ct.conf["lock"] = lock
		}
		t := s.startTaskLocked(r, ct.node, typ, strconv.Itoa(ct.vmid), func(t *task) error {
			sn := ct.snapshots[name]
			if sn == nil {
				return fmt.Errorf("snapshot '%s' does not exist", name)
			}
			if !ownLock && !force {
				return fmt.Errorf("CT is locked (%s)", heldLock)
			}
			apply(s, ct, sn, r)
			t.log = append(t.log, fmt.Sprintf("%s snapshot '%s'", typ, name))
			return nil
		}, func() {
			if ownLock {
				delete(ct.conf, "lock")
			}
		})
		return result{data: t.upid}, nil
	}
}

var hSnapRollback = snapTask("vzrollback", "rollback", func(s *Server, ct *container, sn *snapshot, r *request) {
	conf := cloneMap(sn.conf)
	conf["parent"] = sn.name
	conf["lock"] = "rollback" // dropped by the task cleanup
	ct.conf = conf
	ct.running = false
	if start, _ := parseBool(r.params["start"]); start {
		ct.running = true
		ct.startedAt = s.now()
	}
})

var hSnapDelete = snapTask("vzdelsnapshot", "snapshot-delete", func(s *Server, ct *container, sn *snapshot, r *request) {
	for _, other := range ct.snapshots {
		if other.parent == sn.name {
			other.parent = sn.parent
		}
	}
	if ct.conf["parent"] == sn.name {
		if sn.parent != "" {
			ct.conf["parent"] = sn.parent
		} else {
			delete(ct.conf, "parent")
		}
	}
	delete(ct.snapshots, sn.name)
})
