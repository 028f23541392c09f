package pve

import (
	"crypto/subtle"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

func hAccessIndex(s *Server, r *request) (result, *apiError) {
	var out []map[string]string
	for _, n := range []string{"users", "groups", "roles", "acl", "domains", "openid", "tfa", "ticket", "password", "permissions"} {
		out = append(out, map[string]string{"subdir": n})
	}
	return result{data: out}, nil
}

func hTicketGet(s *Server, r *request) (result, *apiError) { return result{data: nil}, nil }

// hTicketPost creates a ticket from a password, or renews one when the
// password is a valid ticket of the same user.
func hTicketPost(s *Server, r *request) (result, *apiError) {
	username := r.params["username"]
	if realm := r.params["realm"]; realm != "" && !strings.Contains(username, "@") {
		username += "@" + realm
	}
	password := r.params["password"]
	fail := &apiError{status: http.StatusUnauthorized, msg: "authentication failure"}
	ok := false
	if strings.HasPrefix(password, "PVE:") {
		if u, valid := s.verifyTicket(password); valid && u == username {
			ok = true
		}
	}
	s.mu.Lock()
	u := s.st.users[username]
	if !ok && u != nil && u.password != "" && subtle.ConstantTimeCompare([]byte(u.password), []byte(password)) == 1 {
		ok = true
	}
	if u == nil || !u.enable {
		ok = false
	}
	if !ok {
		s.st.syslog(s.st.nodes[0].name, s.now(), "pvedaemon[1187]", "authentication failure; rhost=::ffff:127.0.0.1 user="+username+" msg=no such user or bad password")
		s.mu.Unlock()
		return result{}, fail
	}
	p := &principal{userid: username}
	caps := s.capMapLocked(p)
	cluster := s.st.cluster
	s.st.syslog(s.st.nodes[0].name, s.now(), "pvedaemon[1187]", "<root@pam> successful auth for user '"+username+"'")
	s.mu.Unlock()
	now := s.now()
	return result{data: map[string]any{
		"username": username, "ticket": s.makeTicket(username, now), "CSRFPreventionToken": s.csrfToken(username, now),
		"cap": caps, "clustername": cluster,
	}}, nil
}

func (s *Server) userLocked(r *request) (*user, *apiError) {
	u := s.st.users[r.params["userid"]]
	if u == nil {
		return nil, errf("no such user ('%s')", r.params["userid"])
	}
	return u, nil
}

func tokenInfo(t *apiToken) map[string]any {
	m := map[string]any{"privsep": btoi(t.privsep), "expire": t.expire}
	if t.comment != "" {
		m["comment"] = t.comment
	}
	return m
}

func hUsers(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	full, _ := parseBool(r.params["full"])
	ids := make([]string, 0, len(s.st.users))
	for id := range s.st.users {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	canSee := s.privsLocked(r.auth, "/access/groups")
	out := []map[string]any{}
	for _, id := range ids {
		if !canSee["User.Modify"] && !canSee["Sys.Audit"] && id != r.auth.userid {
			continue
		}
		u := s.st.users[id]
		if v, ok := r.params["enabled"]; ok {
			if want, _ := parseBool(v); want != u.enable {
				continue
			}
		}
		m := map[string]any{"userid": id, "enable": btoi(u.enable), "expire": 0, "realm-type": realmType(id)}
		if u.comment != "" {
			m["comment"] = u.comment
		}
		if full {
			var toks []map[string]any
			for _, tid := range slices.Sorted(maps.Keys(u.tokens)) {
				ti := tokenInfo(u.tokens[tid])
				ti["tokenid"] = tid
				toks = append(toks, ti)
			}
			m["tokens"] = toks
		}
		out = append(out, m)
	}
	return result{data: out}, nil
}

func realmType(userid string) string {
	realm := userid[strings.LastIndex(userid, "@")+1:]
	if realm == "pam" || realm == "pve" {
		return realm
	}
	return "openid"
}

func hUserGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, aerr := s.userLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	toks := map[string]any{}
	for id, t := range u.tokens {
		toks[id] = tokenInfo(t)
	}
	m := map[string]any{"enable": btoi(u.enable), "expire": 0, "groups": []string{}, "tokens": toks}
	if u.comment != "" {
		m["comment"] = u.comment
	}
	return result{data: m}, nil
}

func hUserCreate(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.params["userid"]
	if s.st.users[id] != nil {
		return result{}, errf("create user failed: user '%s' already exists", id)
	}
	enable := true
	if v, ok := r.params["enable"]; ok {
		enable, _ = parseBool(v)
	}
	s.st.users[id] = &user{userid: id, password: r.params["password"], enable: enable, comment: r.params["comment"], tokens: map[string]*apiToken{}}
	return result{data: nil}, nil
}

func hUserUpdate(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, aerr := s.userLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	if v, ok := r.params["enable"]; ok {
		u.enable, _ = parseBool(v)
	}
	if v, ok := r.params["comment"]; ok {
		u.comment = v
	}
	return result{data: nil}, nil
}

func hUserDelete(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, aerr := s.userLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	delete(s.st.users, u.userid)
	s.dropACLLocked(func(e aclEntry) bool { return e.ugid == u.userid || strings.HasPrefix(e.ugid, u.userid+"!") })
	return result{data: nil}, nil
}

func (s *Server) dropACLLocked(match func(aclEntry) bool) {
	kept := s.st.acl[:0]
	for _, e := range s.st.acl {
		if !match(e) {
			kept = append(kept, e)
		}
	}
	s.st.acl = kept
}

func hTokenList(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, aerr := s.userLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	out := []map[string]any{}
	for _, id := range slices.Sorted(maps.Keys(u.tokens)) {
		m := tokenInfo(u.tokens[id])
		m["tokenid"] = id
		out = append(out, m)
	}
	return result{data: out}, nil
}

func (s *Server) tokenLocked(r *request) (*user, *apiToken, *apiError) {
	u, aerr := s.userLocked(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	t := u.tokens[r.params["tokenid"]]
	if t == nil {
		return u, nil, errf("no such token '%s' for user '%s'", r.params["tokenid"], u.userid)
	}
	return u, t, nil
}

func hTokenGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, t, aerr := s.tokenLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	return result{data: tokenInfo(t)}, nil
}

// hTokenCreate issues a fresh UUID secret; it is only ever shown here.
func hTokenCreate(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, aerr := s.userLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	id := r.params["tokenid"]
	if u.tokens[id] != nil {
		return result{}, errf("Token already exists.")
	}
	t := &apiToken{secret: uuid.NewString(), privsep: true, comment: r.params["comment"]}
	if v, ok := r.params["privsep"]; ok {
		t.privsep, _ = parseBool(v)
	}
	if v, ok := r.params["expire"]; ok {
		t.expire, _ = strconv.ParseInt(v, 10, 64)
	}
	u.tokens[id] = t
	s.st.syslog(s.st.nodes[0].name, s.now(), "pvedaemon[1187]", "<"+r.auth.full()+"> created API token '"+u.userid+"!"+id+"'")
	return result{data: map[string]any{"full-tokenid": u.userid + "!" + id, "info": tokenInfo(t), "value": t.secret}}, nil
}

func hTokenUpdate(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, t, aerr := s.tokenLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	for _, k := range splitList(r.params["delete"]) {
		switch k {
		case "comment":
			t.comment = ""
		case "expire":
			t.expire = 0
		}
	}
	if v, ok := r.params["comment"]; ok {
		t.comment = v
	}
	if v, ok := r.params["privsep"]; ok {
		t.privsep, _ = parseBool(v)
	}
	if v, ok := r.params["expire"]; ok {
		t.expire, _ = strconv.ParseInt(v, 10, 64)
	}
	return result{data: tokenInfo(t)}, nil
}

func hTokenDelete(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, _, aerr := s.tokenLocked(r)
	if aerr != nil {
		return result{}, aerr
	}
	full := u.userid + "!" + r.params["tokenid"]
	delete(u.tokens, r.params["tokenid"])
	s.dropACLLocked(func(e aclEntry) bool { return e.ugid == full })
	s.st.syslog(s.st.nodes[0].name, s.now(), "pvedaemon[1187]", "<"+r.auth.full()+"> deleted API token '"+full+"'")
	return result{data: nil}, nil
}

func hACLGet(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, e := range s.st.acl {
		typ := "user"
		if strings.Contains(e.ugid, "!") {
			typ = "token"
		}
		out = append(out, map[string]any{"path": e.path, "roleid": e.role, "type": typ, "ugid": e.ugid, "propagate": btoi(e.propagate)})
	}
	return result{data: out}, nil
}

func hACLPut(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := r.params["path"]
	propagate := true
	if v, ok := r.params["propagate"]; ok {
		propagate, _ = parseBool(v)
	}
	del, _ := parseBool(r.params["delete"])
	var ugids []string
	for _, u := range splitList(r.params["users"]) {
		if s.st.users[u] == nil {
			return result{}, errf("user '%s' does not exist", u)
		}
		ugids = append(ugids, u)
	}
	for _, t := range splitList(r.params["tokens"]) {
		uid, tid, _ := strings.Cut(t, "!")
		if u := s.st.users[uid]; u == nil || u.tokens[tid] == nil {
			return result{}, errf("no such token '%s' for user '%s'", tid, uid)
		}
		ugids = append(ugids, t)
	}
	if len(splitList(r.params["groups"])) > 0 {
		return result{}, errf("group '%s' does not exist", splitList(r.params["groups"])[0])
	}
	for _, role := range splitList(r.params["roles"]) {
		if _, ok := roles[role]; !ok {
			return result{}, errf("role '%s' does not exist", role)
		}
		for _, ug := range ugids {
			s.dropACLLocked(func(e aclEntry) bool { return e.path == path && e.ugid == ug && e.role == role })
			if !del {
				s.st.acl = append(s.st.acl, aclEntry{path: path, ugid: ug, role: role, propagate: propagate})
			}
		}
	}
	return result{data: nil}, nil
}

func hPermissions(s *Server, r *request) (result, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := r.auth
	if uid := r.params["userid"]; uid != "" && uid != p.full() {
		if !s.privsLocked(p, "/access")["Sys.Audit"] {
			return result{}, &apiError{status: http.StatusForbidden, msg: "Permission check failed (/access, Sys.Audit)"}
		}
		u, t, _ := strings.Cut(uid, "!")
		p = &principal{userid: u, tokenid: t}
	}
	paths := []string{"/", "/access", "/nodes", "/storage", "/vms"}
	if v := r.params["path"]; v != "" {
		paths = []string{v}
	}
	out := map[string]map[string]int{}
	for _, path := range paths {
		m := map[string]int{}
		for pr := range s.privsLocked(p, path) {
			m[pr] = 1
		}
		out[path] = m
	}
	return result{data: out}, nil
}
