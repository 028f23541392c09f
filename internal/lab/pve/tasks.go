package pve

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// task is one PVE worker task.
type task struct {
	upid     string
	node     string
	typ      string
	id       string
	user     string // user@realm or user@realm!tokenid
	pid      uint32
	pstart   uint32
	start    time.Time
	end      time.Time
	status   string // running | stopped
	exit     string
	log      []string
	cancel   chan struct{}
	canceled bool
	cleanup  func()
}

var reUPID = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$`)

// taskWork runs when the task's time is up, under s.mu; a non-nil error
// becomes the exit status.
type taskWork func(t *task) error

// startTaskLocked creates a task and schedules its work. Caller holds s.mu.
// cleanup (may be nil) always runs at the end, e.g. to drop a config lock.
func (s *Server) startTaskLocked(r *request, node, typ, id string, work taskWork, cleanup func()) *task {
	now := s.now()
	s.pidSeq++
	pid := s.pidSeq
	t := &task{
		node:    node,
		typ:     typ,
		id:      id,
		user:    r.auth.full(),
		pid:     pid,
		pstart:  uint32(now.Sub(s.st.bootTime) / (10 * time.Millisecond)),
		start:   now,
		status:  "running",
		cancel:  make(chan struct{}),
		cleanup: cleanup,
	}
	t.upid = fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", node, t.pid, t.pstart, now.Unix(), typ, id, t.user)
	s.st.tasks[t.upid] = t
	s.st.taskOrder = append(s.st.taskOrder, t)
	s.st.syslog(node, now, fmt.Sprintf("pvedaemon[%d]", 1100+pid%100), fmt.Sprintf("<%s> starting task %s", t.user, t.upid))
	failure := taskFailure(r.faults)
	run := func() {
		if t.canceled {
			return
		}
		var err error
		if failure != "" {
			err = fmt.Errorf("%s", failure)
		} else if work != nil {
			err = work(t)
		}
		s.finishTaskLocked(t, err)
	}
	d := s.taskDuration(typ)
	if d < 0 {
		run()
		return t
	}
	st := s.st
	s.taskWG.Add(1)
	go func() {
		defer s.taskWG.Done()
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-t.cancel:
			return
		case <-s.closed:
			s.mu.Lock()
			if !t.canceled && s.st == st {
				t.cancelLocked("interrupted by signal")
				s.finishCancelledLocked(t)
			}
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		run()
	}()
	return t
}

// cancelLocked marks a running task as cancelled; its cleanup still runs.
func (t *task) cancelLocked(exit string) {
	if t.canceled || t.status != "running" {
		return
	}
	t.canceled = true
	close(t.cancel)
	t.exit = exit
	t.status = "stopped"
	t.end = time.Now()
	t.log = append(t.log, "TASK ERROR: "+exit)
	if t.cleanup != nil {
		t.cleanup()
	}
}

func (s *Server) finishCancelledLocked(t *task) {
	s.st.syslog(t.node, s.now(), fmt.Sprintf("pvedaemon[%d]", 1100+t.pid%100), fmt.Sprintf("<%s> end task %s %s", t.user, t.upid, t.exit))
}

// finishTaskLocked records the task result. Caller holds s.mu.
func (s *Server) finishTaskLocked(t *task, err error) {
	t.end = s.now()
	if err != nil {
		t.exit = strings.TrimRight(err.Error(), "\n")
		t.log = append(t.log, "TASK ERROR: "+t.exit)
	} else {
		t.exit = "OK"
		t.log = append(t.log, "TASK OK")
	}
	if t.cleanup != nil {
		t.cleanup()
	}
	t.status = "stopped"
	s.st.syslog(t.node, t.end, fmt.Sprintf("pvedaemon[%d]", 1100+t.pid%100), fmt.Sprintf("<%s> end task %s %s", t.user, t.upid, t.exit))
}

func splitUser(full string) (string, string) {
	u, tok, _ := strings.Cut(full, "!")
	return u, tok
}

func (t *task) statusJSON() map[string]any {
	user, tok := splitUser(t.user)
	m := map[string]any{
		"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.start.Unix(),
		"type": t.typ, "id": t.id, "user": user, "status": t.status,
	}
	if tok != "" {
		m["tokenid"] = tok
	}
	if t.status == "stopped" {
		m["exitstatus"] = t.exit
	}
	return m
}

func (t *task) listJSON() map[string]any {
	user, tok := splitUser(t.user)
	m := map[string]any{
		"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.start.Unix(),
		"type": t.typ, "id": t.id, "user": user,
	}
	if tok != "" {
		m["tokenid"] = tok
	}
	if t.status == "stopped" {
		m["endtime"] = t.end.Unix()
		m["status"] = t.exit
	} else {
		m["status"] = "running"
	}
	return m
}

// findTaskLocked resolves the {upid} of a task route. Caller holds s.mu.
func (s *Server) findTaskLocked(r *request) (*task, *apiError) {
	upid := r.params["upid"]
	if !reUPID.MatchString(upid) {
		return nil, paramErr(map[string]string{"upid": "unable to parse worker upid"})
	}
	t := s.st.tasks[upid]
	if t == nil || t.node != r.params["node"] {
		return nil, paramErr(map[string]string{"upid": "no such task"})
	}
	return t, nil
}

func hTaskStatus(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, aerr := s.findTaskLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	return result{data: t.statusJSON()}, nil
}

func hTaskIndex(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, aerr := s.findTaskLocked(r); aerr != nil {
		return result{}, aerr
	}
	return result{data: []map[string]string{{"name": "log"}, {"name": "status"}}}, nil
}

func hTaskStop(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, aerr := s.findTaskLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if t.status == "running" {
		t.cancelLocked("unexpected status")
		s.finishCancelledLocked(t)
	}
	return result{data: nil}, nil
}

func intParam(r *request, name string, def int) int {
	if v, ok := r.params[name]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// pageLines returns [{"n":..,"t":..}] for lines[start:start+limit] and the total.
func pageLines(lines []string, start, limit int) ([]map[string]any, int) {
	out := []map[string]any{}
	if start < 0 {
		start = 0
	}
	for i := start; i < len(lines) && (limit <= 0 || i < start+limit); i++ {
		out = append(out, map[string]any{"n": i + 1, "t": lines[i]})
	}
	return out, len(lines)
}

func hTaskLog(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, aerr := s.findTaskLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	lines, total := pageLines(t.log, intParam(r, "start", 0), intParam(r, "limit", 50))
	return result{data: lines, extra: map[string]any{"total": total}}, nil
}

// taskVisibleLocked tells whether p may see t in a task list.
func (s *Server) taskVisibleLocked(p *principal, t *task) bool {
	if strings.HasPrefix(t.user, p.userid) {
		return true
	}
	return s.privsLocked(p, "/nodes/"+t.node)["Sys.Audit"]
}

func (s *Server) listTasksLocked(r *request, node string) []map[string]any {
	source := r.params["source"]
	if source == "" {
		source = "archive"
	}
	vmid := r.params["vmid"]
	typ := r.params["typefilter"]
	userf := r.params["userfilter"]
	errorsOnly, _ := parseBool(r.params["errors"])
	since, _ := strconv.ParseInt(r.params["since"], 10, 64)
	until, _ := strconv.ParseInt(r.params["until"], 10, 64)
	statusf := map[string]bool{}
	for _, x := range splitList(r.params["statusfilter"]) {
		statusf[strings.ToLower(x)] = true
	}
	var sel []*task
	for _, t := range s.st.taskOrder {
		if node != "" && t.node != node {
			continue
		}
		if source == "archive" && t.status == "running" || source == "active" && t.status != "running" {
			continue
		}
		if vmid != "" && t.id != vmid || typ != "" && t.typ != typ || userf != "" && !strings.Contains(t.user, userf) {
			continue
		}
		if errorsOnly && (t.status == "running" || t.exit == "OK") {
			continue
		}
		if since > 0 && t.start.Unix() < since || until > 0 && t.start.Unix() > until {
			continue
		}
		if len(statusf) > 0 {
			cls := "ok"
			switch {
			case t.status == "running":
				cls = "running"
			case strings.HasPrefix(t.exit, "WARNINGS"):
				cls = "warning"
			case t.exit != "OK":
				cls = "error"
			}
			if !statusf[cls] {
				continue
			}
		}
		if !s.taskVisibleLocked(r.auth, t) {
			continue
		}
		sel = append(sel, t)
	}
	sort.SliceStable(sel, func(i, j int) bool { return sel[i].start.After(sel[j].start) })
	out := []map[string]any{}
	for _, t := range sel {
		out = append(out, t.listJSON())
	}
	return out
}

func hNodeTasks(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if aerr := s.checkNodeLocked(r.params["node"]); aerr != nil {
		return result{}, aerr
	}
	all := s.listTasksLocked(r, r.params["node"])
	start, limit := intParam(r, "start", 0), intParam(r, "limit", 50)
	page := []map[string]any{}
	for i := start; i < len(all) && i < start+limit; i++ {
		page = append(page, all[i])
	}
	return result{data: page, extra: map[string]any{"total": len(all)}}, nil
}

func hClusterTasks(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.params["source"] = "all"
	return result{data: s.listTasksLocked(r, "")}, nil
}
