package keycloak

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// adminCall is the context of one authenticated admin request. Handlers run with s.mu held.
type adminCall struct {
	realm     *realm            // target realm
	params    map[string]string // path parameters by pattern name
	authRealm *realm
	authUser  *user
	authCl    *client
	ip        string
	now       time.Time
	relPath   string // path relative to /admin/realms/{realm}/, for admin events
	roles     map[string]bool
	superuser bool // master admin role or realm-admin
}

// can reports whether the caller holds any of the realm-management roles.
func (a *adminCall) can(roles ...string) bool {
	if a.superuser {
		return true
	}
	for _, r := range roles {
		if a.roles[r] {
			return true
		}
	}
	return false
}

// Permission sets, each satisfied by any of its realm-management roles (Keycloak's
// AdminPermissions: manage-X implies view-X, view-X implies query-X).
var (
	permAny          = []string{}
	permQueryUsers   = []string{"query-users", "view-users", "manage-users"}
	permViewUsers    = []string{"view-users", "manage-users"}
	permManageUsers  = []string{"manage-users"}
	permQueryClients = []string{"query-clients", "view-clients", "manage-clients"}
	permViewClients  = []string{"view-clients", "manage-clients"}
	permManageClient = []string{"manage-clients"}
	permViewRealm    = []string{"view-realm", "manage-realm"}
	permManageRealm  = []string{"manage-realm"}
	permViewEvents   = []string{"view-events", "manage-events"}
)

// adminRoute is one served Admin REST API route. Pattern is relative to /admin/realms, in the
// OpenAPI's spelling, so a test can check every route against Keycloak 23.0.6's OpenAPI.
type adminRoute struct {
	Method  string
	Pattern string
	// Query lists the query parameters the handler reads.
	Query []string
	perm  []string // nil: handler checks itself; permAny: any admin role
	h     func(s *Server, w http.ResponseWriter, req *http.Request, a *adminCall)
}

func adminRoutes() []adminRoute {
	return []adminRoute{
		{http.MethodGet, "/", []string{"briefRepresentation"}, nil, (*Server).adminListRealms},
		{http.MethodGet, "/{realm}", nil, permAny, (*Server).adminGetRealm},
		{http.MethodPut, "/{realm}", nil, permManageRealm, (*Server).adminUpdateRealm},
		{http.MethodPost, "/{realm}/push-revocation", nil, permManageRealm, (*Server).adminPushRevocation},
		{http.MethodPost, "/{realm}/logout-all", nil, permManageUsers, (*Server).adminLogoutAll},
		{http.MethodDelete, "/{realm}/sessions/{session}", nil, permManageUsers, (*Server).adminDeleteSession},
		{http.MethodGet, "/{realm}/users", []string{"briefRepresentation", "email", "emailVerified", "enabled", "exact", "first", "firstName", "lastName", "max", "search", "username"}, permQueryUsers, (*Server).adminListUsers},
		{http.MethodGet, "/{realm}/users/count", []string{"email", "emailVerified", "enabled", "firstName", "lastName", "search", "username"}, permQueryUsers, (*Server).adminCountUsers},
		{http.MethodGet, "/{realm}/users/{id}", nil, permViewUsers, (*Server).adminGetUser},
		{http.MethodPut, "/{realm}/users/{id}", nil, permManageUsers, (*Server).adminUpdateUser},
		{http.MethodGet, "/{realm}/users/{id}/sessions", nil, permViewUsers, (*Server).adminUserSessions},
		{http.MethodPost, "/{realm}/users/{id}/logout", nil, permManageUsers, (*Server).adminLogoutUser},
		{http.MethodGet, "/{realm}/users/{id}/role-mappings", nil, permViewUsers, (*Server).adminRoleMappings},
		{http.MethodGet, "/{realm}/users/{id}/role-mappings/realm", nil, permViewUsers, (*Server).adminRealmRoleMappings},
		{http.MethodGet, "/{realm}/users/{id}/role-mappings/realm/composite", nil, permViewUsers, (*Server).adminRealmRoleMappingsComposite},
		{http.MethodGet, "/{realm}/roles", []string{"briefRepresentation", "first", "max", "search"}, permAny, (*Server).adminListRoles},
		{http.MethodGet, "/{realm}/clients", []string{"clientId", "first", "max", "search", "viewableOnly"}, permQueryClients, (*Server).adminListClients},
		{http.MethodGet, "/{realm}/clients/{id}", nil, permViewClients, (*Server).adminGetClient},
		{http.MethodPut, "/{realm}/clients/{id}", nil, permManageClient, (*Server).adminUpdateClient},
		{http.MethodGet, "/{realm}/clients/{id}/client-secret", nil, permViewClients, (*Server).adminGetClientSecret},
		{http.MethodPost, "/{realm}/clients/{id}/client-secret", nil, permManageClient, (*Server).adminRegenerateClientSecret},
		{http.MethodPost, "/{realm}/clients/{id}/push-revocation", nil, permManageClient, (*Server).adminClientPushRevocation},
		{http.MethodGet, "/{realm}/clients/{id}/user-sessions", []string{"first", "max"}, permViewClients, (*Server).adminClientSessions},
		{http.MethodGet, "/{realm}/authentication/flows", nil, permViewRealm, (*Server).adminListFlows},
		{http.MethodGet, "/{realm}/authentication/flows/{flowAlias}/executions", nil, permViewRealm, (*Server).adminFlowExecutions},
		{http.MethodPut, "/{realm}/authentication/flows/{flowAlias}/executions", nil, permManageRealm, (*Server).adminUpdateExecution},
		{http.MethodGet, "/{realm}/authentication/config/{id}", nil, permViewRealm, (*Server).adminAuthConfig},
		{http.MethodGet, "/{realm}/authentication/required-actions", nil, permViewRealm, (*Server).adminRequiredActions},
		{http.MethodGet, "/{realm}/events", []string{"client", "dateFrom", "dateTo", "first", "ipAddress", "max", "type", "user"}, permViewEvents, func(s *Server, w http.ResponseWriter, req *http.Request, a *adminCall) { s.handleEvents(w, req, a) }},
		{http.MethodGet, "/{realm}/admin-events", []string{"authClient", "authIpAddress", "authRealm", "authUser", "dateFrom", "dateTo", "first", "max", "operationTypes", "resourcePath", "resourceTypes"}, permViewEvents, func(s *Server, w http.ResponseWriter, req *http.Request, a *adminCall) {
			s.handleAdminEvents(w, req, a)
		}},
	}
}

// AdminRoutes lists the Admin REST API routes the simulator serves as "METHOD pattern" with
// patterns relative to /admin/realms (the OpenAPI's base).
func AdminRoutes() []string {
	var out []string
	for _, rt := range adminRoutes() {
		out = append(out, rt.Method+" "+rt.Pattern)
	}
	return out
}

// matchPattern matches path segments against a pattern's, binding {name} segments.
func matchPattern(pattern string, seg []string) (map[string]string, bool) {
	pseg := splitPath(pattern)
	if len(pseg) != len(seg) {
		return nil, false
	}
	params := map[string]string{}
	for i, p := range pseg {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if seg[i] == "" {
				return nil, false
			}
			params[p[1:len(p)-1]] = seg[i]
			continue
		}
		if p != seg[i] {
			return nil, false
		}
	}
	return params, true
}

func writeUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeAdminError(w, http.StatusUnauthorized, "HTTP 401 Unauthorized")
}

func writeForbidden(w http.ResponseWriter) {
	writeAdminError(w, http.StatusForbidden, "HTTP 403 Forbidden")
}

// serveAdmin authenticates the bearer token, then routes rest (the path after /admin/realms).
func (s *Server) serveAdmin(w http.ResponseWriter, req *http.Request, rest string) {
	seg := splitPath(rest)
	raw := bearerToken(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	a, ok := s.authenticateAdmin(req, raw, now)
	if !ok {
		writeUnauthorized(w)
		return
	}
	var matched *adminRoute
	pathFound := false
	for _, rt := range adminRoutes() {
		params, ok := matchPattern(rt.Pattern, seg)
		if !ok {
			continue
		}
		pathFound = true
		if rt.Method != req.Method {
			continue
		}
		rt := rt
		matched = &rt
		a.params = params
		break
	}
	if matched == nil {
		if pathFound {
			writeAdminError(w, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
			return
		}
		writeAdminError(w, http.StatusNotFound, "HTTP 404 Not Found")
		return
	}
	if name, ok := a.params["realm"]; ok {
		r, exists := s.realms[name]
		if !exists {
			writeAdminError(w, http.StatusNotFound, "Realm not found.")
			return
		}
		// A realm's own tokens administer only that realm; master tokens administer any realm.
		if a.authRealm != r && a.authRealm.name != MasterRealm {
			writeForbidden(w)
			return
		}
		a.realm = r
		a.roles, a.superuser = s.adminRoles(a, r)
		a.relPath = strings.Join(seg[1:], "/")
		r.expireSessions(now)
	}
	if matched.perm != nil {
		if len(matched.perm) == 0 {
			if !a.superuser && len(a.roles) == 0 {
				writeForbidden(w)
				return
			}
		} else if !a.can(matched.perm...) {
			writeForbidden(w)
			return
		}
	}
	matched.h(s, w, req, a)
}

// authenticateAdmin verifies an admin bearer token like Keycloak's AdminRoot: signature by the
// issuing realm's keys, issuer, expiry, session, user enabled, not-before. Caller holds s.mu.
func (s *Server) authenticateAdmin(req *http.Request, raw string, now time.Time) (*adminCall, bool) {
	if raw == "" {
		return nil, false
	}
	realmName := unverifiedRealm(raw)
	r, ok := s.realms[realmName]
	if !ok {
		return nil, false
	}
	tc, _, err := r.parseToken(raw, s.issuer(req, r.name), now)
	if err != nil || tc.Typ != typBearer {
		return nil, false
	}
	r.expireSessions(now)
	if r.tokenProblem(tc, now) != "" {
		return nil, false
	}
	return &adminCall{
		authRealm: r, authUser: r.users[tc.Sub], authCl: r.clientByClientID(tc.Azp),
		ip: clientIP(req), now: now,
	}, true
}

// unverifiedRealm reads the realm name from the token's iss claim without verifying it; the
// caller then verifies the token with that realm's keys.
func unverifiedRealm(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	i := strings.LastIndex(c.Iss, "/realms/")
	if i < 0 {
		return ""
	}
	return c.Iss[i+len("/realms/"):]
}

// adminRoles returns the caller's realm-management roles on target (from the caller's current
// role mappings, as Keycloak evaluates them) and whether the caller is a superuser there.
func (s *Server) adminRoles(a *adminCall, target *realm) (map[string]bool, bool) {
	realmRoles, clientRoles := a.authRealm.effectiveRoles(a.authUser)
	mgmtClient := "realm-management"
	if a.authRealm.name == MasterRealm {
		if slices.Contains(realmRoles, "admin") {
			return map[string]bool{}, true
		}
		mgmtClient = target.name + "-realm"
	}
	roles := map[string]bool{}
	for _, name := range clientRoles[mgmtClient] {
		roles[name] = true
	}
	return roles, roles["realm-admin"]
}

// adminEvent records an admin event on the target realm. Caller holds s.mu.
func (a *adminCall) event(op, resourceType, representation string) {
	ad := AuthDetails{RealmID: a.authRealm.id, IPAddress: a.ip}
	if a.authCl != nil {
		ad.ClientID = a.authCl.id
	}
	if a.authUser != nil {
		ad.UserID = a.authUser.id
	}
	a.realm.addAdminEvent(a.now, AdminEvent{
		AuthDetails: ad, OperationType: op, ResourceType: resourceType,
		ResourcePath: a.relPath, Representation: representation,
	})
}
