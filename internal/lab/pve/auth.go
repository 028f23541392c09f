package pve

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// principal is an authenticated caller.
type principal struct {
	userid  string // user@realm
	tokenid string // "" for users
	ticket  bool   // authenticated by ticket cookie (CSRF applies)
}

// full is "user@realm" or "user@realm!tokenid", as in UPIDs.
func (p *principal) full() string {
	if p.tokenid != "" {
		return p.userid + "!" + p.tokenid
	}
	return p.userid
}

// ticketLifetime is how long a PVE ticket is valid.
const ticketLifetime = 2 * time.Hour

var allPrivs = []string{
	"Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
	"Group.Allocate", "Mapping.Audit", "Mapping.Modify", "Mapping.Use", "Permissions.Modify",
	"Pool.Allocate", "Pool.Audit", "Realm.Allocate", "Realm.AllocateUser", "SDN.Allocate", "SDN.Audit", "SDN.Use",
	"Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog",
	"User.Modify", "VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM", "VM.Config.CPU",
	"VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network",
	"VM.Config.Options", "VM.Console", "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt",
	"VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.PowerMgmt", "VM.Replicate",
	"VM.Snapshot", "VM.Snapshot.Rollback",
}

// roles are the built-in PVE roles the lab uses.
var roles = map[string][]string{
	"Administrator": allPrivs,
	"PVEAuditor":    {"Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit", "VM.GuestAgent.Audit"},
	"PVEVMAdmin": {"VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM", "VM.Config.CPU",
		"VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network",
		"VM.Config.Options", "VM.Console", "VM.Migrate", "VM.PowerMgmt", "VM.Snapshot", "VM.Snapshot.Rollback",
		"Datastore.AllocateSpace", "Datastore.Audit"},
	"NoAccess": {},
}

// authenticate reads an API token or a ticket cookie. Caller holds no lock.
func (s *Server) authenticate(hr *http.Request) (*principal, *apiError) {
	fail := &apiError{status: http.StatusUnauthorized, msg: "authentication failure"}
	if h := hr.Header.Get("Authorization"); h != "" {
		var v string
		switch {
		case strings.HasPrefix(h, "PVEAPIToken="):
			v = strings.TrimPrefix(h, "PVEAPIToken=")
		case strings.HasPrefix(h, "PVEAPIToken "):
			v = strings.TrimPrefix(h, "PVEAPIToken ")
		default:
			return nil, fail
		}
		if i := strings.IndexByte(v, ';'); i >= 0 {
			v = v[:i]
		}
		full, secret, ok := strings.Cut(strings.TrimSpace(v), "=")
		if !ok {
			return nil, fail
		}
		userid, tokenid, ok := strings.Cut(full, "!")
		if !ok {
			return nil, fail
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		u := s.st.users[userid]
		if u == nil || !u.enable {
			return nil, fail
		}
		t := u.tokens[tokenid]
		if t == nil || subtle.ConstantTimeCompare([]byte(t.secret), []byte(secret)) != 1 {
			return nil, fail
		}
		if t.expire != 0 && s.now().Unix() > t.expire {
			return nil, fail
		}
		return &principal{userid: userid, tokenid: tokenid}, nil
	}
	c, err := hr.Cookie("PVEAuthCookie")
	if err != nil || c.Value == "" {
		return nil, &apiError{status: http.StatusUnauthorized, msg: "No ticket"}
	}
	ticket, err := urlUnescape(c.Value)
	if err != nil {
		return nil, fail
	}
	userid, ok := s.verifyTicket(ticket)
	if !ok {
		return nil, fail
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.st.users[userid]; u == nil || !u.enable {
		return nil, fail
	}
	return &principal{userid: userid, ticket: true}, nil
}

func urlUnescape(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	r := strings.NewReplacer("%3A", ":", "%3a", ":", "%2B", "+", "%2b", "+", "%2F", "/", "%2f", "/", "%3D", "=", "%3d", "=", "%40", "@")
	return r.Replace(v), nil
}

func (s *Server) sign(data string) string {
	m := hmac.New(sha256.New, s.ticketKey)
	m.Write([]byte(data))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}

// makeTicket returns "PVE:<user>:<HEXTIME>::<signature>".
func (s *Server) makeTicket(userid string, at time.Time) string {
	plain := fmt.Sprintf("PVE:%s:%08X", userid, at.Unix())
	return plain + "::" + s.sign(plain)
}

var reTicket = regexp.MustCompile(`^(PVE:(\S+?):([0-9A-F]{8}))::(\S+)$`)

func (s *Server) verifyTicket(t string) (string, bool) {
	m := reTicket.FindStringSubmatch(t)
	if m == nil {
		return "", false
	}
	if !hmac.Equal([]byte(s.sign(m[1])), []byte(m[4])) {
		return "", false
	}
	ts, err := strconv.ParseInt(m[3], 16, 64)
	if err != nil {
		return "", false
	}
	age := s.now().Sub(time.Unix(ts, 0))
	if age > ticketLifetime || age < -5*time.Minute {
		return "", false
	}
	return m[2], true
}

// csrfToken returns "<HEXTIME>:<signature>" bound to the user.
func (s *Server) csrfToken(userid string, at time.Time) string {
	ts := fmt.Sprintf("%08X", at.Unix())
	return ts + ":" + s.sign("CSRF:"+ts+":"+userid)
}

func (s *Server) checkCSRF(hr *http.Request, p *principal) bool {
	tok := hr.Header.Get("CSRFPreventionToken")
	ts, sig, ok := strings.Cut(tok, ":")
	if !ok {
		return false
	}
	if !hmac.Equal([]byte(sig), []byte(s.sign("CSRF:"+ts+":"+p.userid))) {
		return false
	}
	n, err := strconv.ParseInt(ts, 16, 64)
	return err == nil && s.now().Sub(time.Unix(n, 0)) <= ticketLifetime
}

// privsLocked returns the privileges of p on path. Caller holds s.mu.
func (s *Server) privsLocked(p *principal, path string) map[string]bool {
	out := map[string]bool{}
	if p.userid == "root@pam" && p.tokenid == "" {
		for _, pr := range allPrivs {
			out[pr] = true
		}
		return out
	}
	collect := func(ugid string) map[string]bool {
		m := map[string]bool{}
		if ugid == "root@pam" {
			for _, pr := range allPrivs {
				m[pr] = true
			}
			return m
		}
		for _, e := range s.st.acl {
			if e.ugid != ugid {
				continue
			}
			applies := e.path == path || (e.propagate && (e.path == "/" || strings.HasPrefix(path, e.path+"/")))
			if !applies {
				continue
			}
			for _, pr := range roles[e.role] {
				m[pr] = true
			}
		}
		return m
	}
	userPrivs := collect(p.userid)
	if p.tokenid == "" {
		return userPrivs
	}
	u := s.st.users[p.userid]
	if u == nil || u.tokens[p.tokenid] == nil {
		return out
	}
	if !u.tokens[p.tokenid].privsep {
		return userPrivs
	}
	for pr := range collect(p.full()) {
		if userPrivs[pr] {
			out[pr] = true
		}
	}
	return out
}

// readOnly reports whether the principal holds only audit privileges.
func (s *Server) readOnlyLocked(p *principal) bool {
	for pr := range s.privsLocked(p, "/") {
		if !strings.HasSuffix(pr, ".Audit") {
			return false
		}
	}
	return true
}

// checkPermissions evaluates the schema's permission check, as
// PVE::RPCEnvironment::check_api2_permissions does.
func (s *Server) checkPermissions(p *principal, method string, mi *methodInfo, params map[string]string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if method != http.MethodGet && s.readOnlyLocked(p) {
		return &apiError{status: http.StatusForbidden, msg: "Permission check failed (read-only token)"}
	}
	if mi.Permissions == nil {
		if p.userid == "root@pam" {
			return nil
		}
		return &apiError{status: http.StatusForbidden, msg: "Permission check failed (user != root@pam)"}
	}
	if len(mi.Permissions.Check) == 0 {
		return nil // "user": "all"
	}
	ok, what := s.evalCheck(p, mi.Permissions.Check, params)
	if !ok {
		return &apiError{status: http.StatusForbidden, msg: "Permission check failed (" + what + ")"}
	}
	return nil
}

// evalCheck evaluates one check expression. Caller holds s.mu.
func (s *Server) evalCheck(p *principal, check []any, params map[string]string) (bool, string) {
	if len(check) == 0 {
		return true, ""
	}
	kind, _ := check[0].(string)
	switch kind {
	case "and", "or":
		var last string
		for _, c := range check[1:] {
			sub, ok := c.([]any)
			if !ok {
				continue
			}
			res, what := s.evalCheck(p, sub, params)
			if kind == "and" && !res {
				return false, what
			}
			if kind == "or" && res {
				return true, ""
			}
			last = what
		}
		return kind == "and", last
	case "perm":
		if len(check) < 3 {
			return false, "invalid check"
		}
		tmpl, _ := check[1].(string)
		path := substitute(tmpl, params)
		privList, _ := check[2].([]any)
		anyOf := len(check) >= 5 && fmt.Sprint(check[3]) == "any"
		have := s.privsLocked(p, path)
		var names []string
		for _, x := range privList {
			names = append(names, fmt.Sprint(x))
		}
		for _, n := range names {
			if have[n] && anyOf {
				return true, ""
			}
			if !have[n] && !anyOf {
				return false, path + ", " + n
			}
		}
		if anyOf {
			return false, path + ", " + strings.Join(names, " | ")
		}
		return true, ""
	case "userid-param":
		target := params["userid"]
		if len(check) > 1 && check[1] == "self" {
			return p.tokenid == "" && target == p.userid, "userid-param self"
		}
		realm := target[strings.LastIndex(target, "@")+1:]
		priv := fmt.Sprint(check[1])
		return s.privsLocked(p, "/access/realm/"+realm)[priv], "/access/realm/" + realm + ", " + priv
	case "userid-group":
		privList, _ := check[1].([]any)
		have := s.privsLocked(p, "/access/groups")
		for _, x := range privList {
			if have[fmt.Sprint(x)] {
				return true, ""
			}
		}
		return false, "/access/groups, User.Modify"
	case "perm-modify":
		have := s.privsLocked(p, "/")
		return have["Permissions.Modify"], "/, Permissions.Modify"
	}
	return p.userid == "root@pam" && p.tokenid == "", "unsupported check " + kind
}

func substitute(tmpl string, params map[string]string) string {
	out := tmpl
	for k, v := range params {
		out = strings.ReplaceAll(out, "{"+k+"}", v)
	}
	return out
}

// capMap is the "cap" of a ticket answer: privileges per area.
func (s *Server) capMapLocked(p *principal) map[string]map[string]int {
	areas := map[string]string{"vms": "VM.", "storage": "Datastore.", "access": "User.", "nodes": "Sys.", "dc": "SDN.", "sdn": "SDN.", "mapping": "Mapping."}
	have := s.privsLocked(p, "/")
	out := map[string]map[string]int{}
	keys := make([]string, 0, len(have))
	for k := range have {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for area, prefix := range areas {
		m := map[string]int{}
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) || (area == "access" && (k == "Group.Allocate" || k == "Permissions.Modify")) ||
				(area == "dc" && strings.HasPrefix(k, "Sys.")) {
				m[k] = 1
			}
		}
		out[area] = m
	}
	return out
}
