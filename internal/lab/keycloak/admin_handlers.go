package keycloak

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

func decodeSegment(seg string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
}

// readJSON decodes the request body into v, answering 400 on failure.
func readJSON(w http.ResponseWriter, req *http.Request, v any) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		writeErrorMessage(w, http.StatusBadRequest, "unable to read request body")
		return nil, false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeAdminError(w, http.StatusBadRequest, "Unable to process JSON")
		return nil, false
	}
	return body, true
}

// ---- realm ----

type realmRepresentation struct {
	ID                        string   `json:"id"`
	Realm                     string   `json:"realm"`
	DisplayName               string   `json:"displayName,omitempty"`
	NotBefore                 int64    `json:"notBefore"`
	DefaultSignatureAlgorithm string   `json:"defaultSignatureAlgorithm"`
	RevokeRefreshToken        bool     `json:"revokeRefreshToken"`
	AccessTokenLifespan       int      `json:"accessTokenLifespan"`
	SSOSessionIdleTimeout     int      `json:"ssoSessionIdleTimeout"`
	SSOSessionMaxLifespan     int      `json:"ssoSessionMaxLifespan"`
	Enabled                   bool     `json:"enabled"`
	SSLRequired               string   `json:"sslRequired"`
	EditUsernameAllowed       bool     `json:"editUsernameAllowed"`
	EventsEnabled             bool     `json:"eventsEnabled"`
	EnabledEventTypes         []string `json:"enabledEventTypes"`
	AdminEventsEnabled        bool     `json:"adminEventsEnabled"`
	AdminEventsDetailsEnabled bool     `json:"adminEventsDetailsEnabled"`

	BruteForceProtected          bool   `json:"bruteForceProtected"`
	PermanentLockout             bool   `json:"permanentLockout"`
	FailureFactor                int    `json:"failureFactor"`
	WaitIncrementSeconds         int    `json:"waitIncrementSeconds"`
	MaxFailureWaitSeconds        int    `json:"maxFailureWaitSeconds"`
	MinimumQuickLoginWaitSeconds int    `json:"minimumQuickLoginWaitSeconds"`
	QuickLoginCheckMilliSeconds  int64  `json:"quickLoginCheckMilliSeconds"`
	MaxDeltaTimeSeconds          int    `json:"maxDeltaTimeSeconds"`
	PasswordPolicy               string `json:"passwordPolicy,omitempty"`
	OTPPolicyType                string `json:"otpPolicyType"`
	OTPPolicyAlgorithm           string `json:"otpPolicyAlgorithm"`
	OTPPolicyDigits              int    `json:"otpPolicyDigits"`
	OTPPolicyPeriod              int    `json:"otpPolicyPeriod"`
	OTPPolicyLookAheadWindow     int    `json:"otpPolicyLookAheadWindow"`
	OTPPolicyCodeReusable        bool   `json:"otpPolicyCodeReusable"`
	BrowserFlow                  string `json:"browserFlow"`
	DirectGrantFlow              string `json:"directGrantFlow"`
}

func realmRep(r *realm) realmRepresentation {
	return realmRepresentation{
		ID: r.id, Realm: r.name, DisplayName: r.displayName, NotBefore: r.notBefore,
		DefaultSignatureAlgorithm: "RS256", AccessTokenLifespan: r.accessTokenLifespan,
		SSOSessionIdleTimeout: r.ssoIdle, SSOSessionMaxLifespan: r.ssoMax, Enabled: r.enabled,
		SSLRequired: r.sslRequired, EditUsernameAllowed: r.editUsernameAllowed,
		EventsEnabled: r.eventsEnabled, EnabledEventTypes: nonNil(r.enabledEventTypes),
		AdminEventsEnabled: r.adminEventsEnabled, AdminEventsDetailsEnabled: r.adminEventsDetails,
		BruteForceProtected: r.bruteForce.enabled, PermanentLockout: r.bruteForce.permanentLockout,
		FailureFactor: r.bruteForce.failureFactor, WaitIncrementSeconds: int(r.bruteForce.waitIncrement.Seconds()),
		MaxFailureWaitSeconds: int(r.bruteForce.maxWait.Seconds()), MinimumQuickLoginWaitSeconds: int(r.bruteForce.minQuickWait.Seconds()),
		QuickLoginCheckMilliSeconds: r.bruteForce.quickCheck.Milliseconds(), MaxDeltaTimeSeconds: int(r.bruteForce.maxDelta.Seconds()),
		PasswordPolicy: r.passwordPolicy,
		OTPPolicyType:  r.otp.typ, OTPPolicyAlgorithm: r.otp.algorithm, OTPPolicyDigits: r.otp.digits,
		OTPPolicyPeriod: r.otp.period, OTPPolicyLookAheadWindow: r.otp.lookAhead, OTPPolicyCodeReusable: r.otp.codeReusable,
		BrowserFlow: r.browserFlow, DirectGrantFlow: r.directGrantFlow,
	}
}

// adminListRealms serves GET /admin/realms: the realms the caller may see.
func (s *Server) adminListRealms(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	out := []any{}
	for _, name := range slices.Sorted(maps.Keys(s.realms)) {
		r := s.realms[name]
		if a.authRealm != r && a.authRealm.name != MasterRealm {
			continue
		}
		roles, super := s.adminRoles(a, r)
		if !super && len(roles) == 0 {
			continue
		}
		out = append(out, realmRep(r))
	}
	writeJSON(w, http.StatusOK, out)
}

// adminGetRealm serves GET /admin/realms/{realm}. Callers without view-realm get the reduced
// representation Keycloak gives other realm admins.
func (s *Server) adminGetRealm(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	if !a.can(permViewRealm...) {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": a.realm.id, "realm": a.realm.name, "displayName": a.realm.displayName, "enabled": a.realm.enabled,
		})
		return
	}
	writeJSON(w, http.StatusOK, realmRep(a.realm))
}

// adminUpdateRealm serves PUT /admin/realms/{realm}: a partial update (only non-null fields).
func (s *Server) adminUpdateRealm(w http.ResponseWriter, req *http.Request, a *adminCall) {
	var rep struct {
		Realm                     *string   `json:"realm"`
		DisplayName               *string   `json:"displayName"`
		Enabled                   *bool     `json:"enabled"`
		NotBefore                 *int64    `json:"notBefore"`
		AccessTokenLifespan       *int      `json:"accessTokenLifespan"`
		SSOSessionIdleTimeout     *int      `json:"ssoSessionIdleTimeout"`
		SSOSessionMaxLifespan     *int      `json:"ssoSessionMaxLifespan"`
		EditUsernameAllowed       *bool     `json:"editUsernameAllowed"`
		EventsEnabled             *bool     `json:"eventsEnabled"`
		EnabledEventTypes         *[]string `json:"enabledEventTypes"`
		AdminEventsEnabled        *bool     `json:"adminEventsEnabled"`
		AdminEventsDetailsEnabled *bool     `json:"adminEventsDetailsEnabled"`

		BruteForceProtected   *bool   `json:"bruteForceProtected"`
		PermanentLockout      *bool   `json:"permanentLockout"`
		FailureFactor         *int    `json:"failureFactor"`
		PasswordPolicy        *string `json:"passwordPolicy"`
		OTPPolicyDigits       *int    `json:"otpPolicyDigits"`
		OTPPolicyPeriod       *int    `json:"otpPolicyPeriod"`
		OTPPolicyCodeReusable *bool   `json:"otpPolicyCodeReusable"`
		BrowserFlow           *string `json:"browserFlow"`
		DirectGrantFlow       *string `json:"directGrantFlow"`
	}
	body, ok := readJSON(w, req, &rep)
	if !ok {
		return
	}
	r := a.realm
	if rep.Realm != nil && *rep.Realm != r.name {
		writeErrorMessage(w, http.StatusBadRequest, "the lab simulator cannot rename realms")
		return
	}
	for _, f := range []*string{rep.BrowserFlow, rep.DirectGrantFlow} {
		if f != nil && (r.flows[*f] == nil || !r.flows[*f].topLevel) && *f != builtinBrowser && *f != builtinDirectGrant {
			writeErrorMessage(w, http.StatusBadRequest, "the lab simulator has no top-level flow "+*f)
			return
		}
	}
	if rep.OTPPolicyDigits != nil && *rep.OTPPolicyDigits != 6 && *rep.OTPPolicyDigits != 8 {
		writeErrorMessage(w, http.StatusBadRequest, "otpPolicyDigits must be 6 or 8")
		return
	}
	setIf(&r.displayName, rep.DisplayName)
	setIf(&r.enabled, rep.Enabled)
	setIf(&r.bruteForce.enabled, rep.BruteForceProtected)
	setIf(&r.bruteForce.permanentLockout, rep.PermanentLockout)
	if rep.FailureFactor != nil && *rep.FailureFactor > 0 {
		r.bruteForce.failureFactor = *rep.FailureFactor
	}
	setIf(&r.passwordPolicy, rep.PasswordPolicy)
	setIf(&r.otp.digits, rep.OTPPolicyDigits)
	if rep.OTPPolicyPeriod != nil && *rep.OTPPolicyPeriod > 0 {
		r.otp.period = *rep.OTPPolicyPeriod
	}
	setIf(&r.otp.codeReusable, rep.OTPPolicyCodeReusable)
	setIf(&r.browserFlow, rep.BrowserFlow)
	setIf(&r.directGrantFlow, rep.DirectGrantFlow)
	setIf(&r.notBefore, rep.NotBefore)
	if rep.AccessTokenLifespan != nil && *rep.AccessTokenLifespan > 0 {
		r.accessTokenLifespan = *rep.AccessTokenLifespan
	}
	if rep.SSOSessionIdleTimeout != nil && *rep.SSOSessionIdleTimeout > 0 {
		r.ssoIdle = *rep.SSOSessionIdleTimeout
	}
	if rep.SSOSessionMaxLifespan != nil && *rep.SSOSessionMaxLifespan > 0 {
		r.ssoMax = *rep.SSOSessionMaxLifespan
	}
	setIf(&r.editUsernameAllowed, rep.EditUsernameAllowed)
	setIf(&r.eventsEnabled, rep.EventsEnabled)
	setIf(&r.enabledEventTypes, rep.EnabledEventTypes)
	setIf(&r.adminEventsEnabled, rep.AdminEventsEnabled)
	setIf(&r.adminEventsDetails, rep.AdminEventsDetailsEnabled)
	a.event("UPDATE", "REALM", string(body))
	writeNoContent(w)
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// globalRequestResult is Keycloak's GlobalRequestResult; empty lists are omitted as Keycloak does.
type globalRequestResult struct {
	SuccessRequests []string `json:"successRequests,omitempty"`
	FailedRequests  []string `json:"failedRequests,omitempty"`
}

// pushResult reports the clients that would get a push: the simulator cannot reach admin URLs,
// so each one is a failed request, as with a Keycloak whose clients are down.
func pushResult(clients ...*client) globalRequestResult {
	var res globalRequestResult
	for _, c := range clients {
		if c.adminURL != "" {
			res.FailedRequests = append(res.FailedRequests, c.adminURL)
		}
	}
	sort.Strings(res.FailedRequests)
	return res
}

func realmClients(r *realm) []*client {
	out := make([]*client, 0, len(r.clients))
	for _, id := range slices.Sorted(maps.Keys(r.clients)) {
		out = append(out, r.clients[id])
	}
	return out
}

// adminPushRevocation serves POST /admin/realms/{realm}/push-revocation.
func (s *Server) adminPushRevocation(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	res := pushResult(realmClients(a.realm)...)
	b, _ := json.Marshal(res)
	a.event("ACTION", "REALM", string(b))
	writeJSON(w, http.StatusOK, res)
}

// adminLogoutAll serves POST /admin/realms/{realm}/logout-all: removes every user session and
// sets the realm not-before to now (ResourceAdminManager.logoutAll).
func (s *Server) adminLogoutAll(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	for id := range a.realm.sessions {
		delete(a.realm.sessions, id)
	}
	a.realm.notBefore = a.now.Unix()
	res := pushResult(realmClients(a.realm)...)
	b, _ := json.Marshal(res)
	a.event("ACTION", "REALM", string(b))
	writeJSON(w, http.StatusOK, res)
}

// adminDeleteSession serves DELETE /admin/realms/{realm}/sessions/{session}.
func (s *Server) adminDeleteSession(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	id := a.params["session"]
	if _, ok := a.realm.sessions[id]; !ok {
		writeAdminError(w, http.StatusNotFound, "Sesssion not found")
		return
	}
	delete(a.realm.sessions, id)
	a.event("DELETE", "USER_SESSION", "")
	writeNoContent(w)
}

// ---- users ----

type userRepresentation struct {
	ID                         string              `json:"id"`
	CreatedTimestamp           int64               `json:"createdTimestamp"`
	Username                   string              `json:"username"`
	Enabled                    bool                `json:"enabled"`
	Totp                       bool                `json:"totp"`
	EmailVerified              bool                `json:"emailVerified"`
	FirstName                  string              `json:"firstName,omitempty"`
	LastName                   string              `json:"lastName,omitempty"`
	Email                      string              `json:"email,omitempty"`
	Attributes                 map[string][]string `json:"attributes,omitempty"`
	DisableableCredentialTypes []string            `json:"disableableCredentialTypes"`
	RequiredActions            []string            `json:"requiredActions"`
	NotBefore                  int64               `json:"notBefore"`
	Access                     map[string]bool     `json:"access,omitempty"`
}

func userRep(u *user, brief bool, a *adminCall) userRepresentation {
	rep := userRepresentation{
		ID: u.id, CreatedTimestamp: u.created, Username: u.username, Enabled: u.enabled,
		EmailVerified: u.emailVerified, FirstName: u.firstName, LastName: u.lastName, Email: u.email, Totp: len(u.otp) > 0,
		DisableableCredentialTypes: []string{}, RequiredActions: nonNil(u.requiredActions), NotBefore: u.notBefore,
	}
	if !brief {
		rep.Attributes = u.attributes
		manage := a.can(permManageUsers...)
		rep.Access = map[string]bool{
			"manageGroupMembership": manage, "view": true, "mapRoles": manage,
			"impersonate": a.superuser, "manage": manage,
		}
	}
	return rep
}

// userMatches implements Keycloak's attribute search: case-insensitive infix match, or exact
// match when exact is set.
func fieldMatches(value, want string, exact bool) bool {
	value, want = strings.ToLower(value), strings.ToLower(want)
	if exact {
		return value == want
	}
	return strings.Contains(value, want)
}

// searchMatches implements the "search" parameter: infix on username, email, first and last
// name; a quoted value is an exact match, and '*' is a wildcard.
func searchMatches(u *user, search string) bool {
	search = strings.TrimSpace(search)
	exact := len(search) >= 2 && strings.HasPrefix(search, `"`) && strings.HasSuffix(search, `"`)
	if exact {
		search = search[1 : len(search)-1]
	}
	search = strings.ReplaceAll(search, "*", "")
	for _, v := range []string{u.username, u.email, u.firstName, u.lastName} {
		if fieldMatches(v, search, exact) {
			return true
		}
	}
	return false
}

func (s *Server) filterUsers(req *http.Request, a *adminCall) []*user {
	q := req.URL.Query()
	exact := firstValue(q, "exact") == "true"
	var out []*user
	for _, u := range a.realm.users {
		if u.serviceAccountClientID != "" {
			continue // Keycloak leaves service-account users out of searches.
		}
		if v := firstValue(q, "search"); v != "" {
			if strings.HasPrefix(v, "id:") {
				if u.id != strings.TrimSpace(strings.TrimPrefix(v, "id:")) {
					continue
				}
			} else if !searchMatches(u, v) {
				continue
			}
		}
		ok := true
		for param, value := range map[string]string{"username": u.username, "email": u.email, "firstName": u.firstName, "lastName": u.lastName} {
			if want := firstValue(q, param); want != "" && !fieldMatches(value, want, exact) {
				ok = false
			}
		}
		if v := firstValue(q, "enabled"); v != "" && strconv.FormatBool(u.enabled) != v {
			ok = false
		}
		if v := firstValue(q, "emailVerified"); v != "" && strconv.FormatBool(u.emailVerified) != v {
			ok = false
		}
		if ok {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].username < out[j].username })
	return out
}

// adminListUsers serves GET /admin/realms/{realm}/users. A caller with only query-users sees
// no users (Keycloak filters results by view permission).
func (s *Server) adminListUsers(w http.ResponseWriter, req *http.Request, a *adminCall) {
	users := s.filterUsers(req, a)
	if !a.can(permViewUsers...) {
		users = nil
	}
	first, max := pageBounds(req.URL.Query(), 100)
	brief := firstValue(req.URL.Query(), "briefRepresentation") == "true"
	out := []userRepresentation{}
	for _, u := range page(nonNil(users), first, max) {
		out = append(out, userRep(u, brief, a))
	}
	writeJSON(w, http.StatusOK, out)
}

// adminCountUsers serves GET /admin/realms/{realm}/users/count.
func (s *Server) adminCountUsers(w http.ResponseWriter, req *http.Request, a *adminCall) {
	n := 0
	if a.can(permViewUsers...) {
		n = len(s.filterUsers(req, a))
	}
	writeJSON(w, http.StatusOK, n)
}

func (a *adminCall) user(w http.ResponseWriter) *user {
	u := a.realm.users[a.params["id"]]
	if u == nil {
		writeAdminError(w, http.StatusNotFound, "User not found")
	}
	return u
}

// adminGetUser serves GET /admin/realms/{realm}/users/{id}.
func (s *Server) adminGetUser(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	if u := a.user(w); u != nil {
		writeJSON(w, http.StatusOK, userRep(u, false, a))
	}
}

// adminUpdateUser serves PUT /admin/realms/{realm}/users/{id}: non-null fields are applied
// (enabled=false is how the platform disables an account; sessions are left alone).
func (s *Server) adminUpdateUser(w http.ResponseWriter, req *http.Request, a *adminCall) {
	u := a.user(w)
	if u == nil {
		return
	}
	var rep struct {
		Username        *string              `json:"username"`
		Email           *string              `json:"email"`
		FirstName       *string              `json:"firstName"`
		LastName        *string              `json:"lastName"`
		Enabled         *bool                `json:"enabled"`
		EmailVerified   *bool                `json:"emailVerified"`
		RequiredActions *[]string            `json:"requiredActions"`
		Attributes      *map[string][]string `json:"attributes"`
	}
	body, ok := readJSON(w, req, &rep)
	if !ok {
		return
	}
	if rep.Username != nil && a.realm.editUsernameAllowed {
		name := strings.ToLower(*rep.Username)
		if other := a.realm.userByUsername(name); other != nil && other != u {
			writeErrorMessage(w, http.StatusConflict, "User exists with same username")
			return
		}
		u.username = name
	}
	if rep.Email != nil {
		email := strings.ToLower(*rep.Email)
		for _, other := range a.realm.users {
			if other != u && email != "" && other.email == email {
				writeErrorMessage(w, http.StatusConflict, "User exists with same email")
				return
			}
		}
		u.email = email
	}
	setIf(&u.firstName, rep.FirstName)
	setIf(&u.lastName, rep.LastName)
	setIf(&u.enabled, rep.Enabled)
	if rep.Enabled != nil && *rep.Enabled {
		// Enabling a user also clears its brute-force lockout, as Keycloak's UserResource does.
		delete(a.realm.failures, u.id)
	}
	setIf(&u.emailVerified, rep.EmailVerified)
	setIf(&u.requiredActions, rep.RequiredActions)
	setIf(&u.attributes, rep.Attributes)
	a.event("UPDATE", "USER", string(body))
	writeNoContent(w)
}

// adminUserSessions serves GET /admin/realms/{realm}/users/{id}/sessions.
func (s *Server) adminUserSessions(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	u := a.user(w)
	if u == nil {
		return
	}
	out := []sessionRepresentation{}
	for _, sess := range a.realm.sessions {
		if sess.userID == u.id {
			out = append(out, sessionRep(sess, u))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Start < out[j].Start || out[i].Start == out[j].Start && out[i].ID < out[j].ID
	})
	writeJSON(w, http.StatusOK, out)
}

// adminLogoutUser serves POST /admin/realms/{realm}/users/{id}/logout: user not-before = now and
// every online session removed.
func (s *Server) adminLogoutUser(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	u := a.user(w)
	if u == nil {
		return
	}
	u.notBefore = a.now.Unix()
	for id, sess := range a.realm.sessions {
		if sess.userID == u.id {
			delete(a.realm.sessions, id)
		}
	}
	a.event("ACTION", "USER", "")
	writeNoContent(w)
}

// ---- roles ----

type roleRepresentation struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Composite   bool   `json:"composite"`
	ClientRole  bool   `json:"clientRole"`
	ContainerID string `json:"containerId"`
}

func roleRep(ro *role) roleRepresentation {
	return roleRepresentation{
		ID: ro.id, Name: ro.name, Description: ro.description, ClientRole: ro.clientRole, ContainerID: ro.containerID,
		Composite: len(ro.realmComposites) > 0 || len(ro.clientComposites) > 0,
	}
}

func realmRoleReps(r *realm, names []string) []roleRepresentation {
	out := []roleRepresentation{}
	for _, n := range names {
		if ro, ok := r.roles[n]; ok {
			out = append(out, roleRep(ro))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// adminListRoles serves GET /admin/realms/{realm}/roles.
func (s *Server) adminListRoles(w http.ResponseWriter, req *http.Request, a *adminCall) {
	q := req.URL.Query()
	search := strings.ToLower(firstValue(q, "search"))
	var names []string
	for name := range a.realm.roles {
		if search == "" || strings.Contains(strings.ToLower(name), search) {
			names = append(names, name)
		}
	}
	first, max := pageBounds(q, -1)
	writeJSON(w, http.StatusOK, page(realmRoleReps(a.realm, names), first, max))
}

// adminRealmRoleMappings serves GET .../users/{id}/role-mappings/realm (direct mappings).
func (s *Server) adminRealmRoleMappings(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	if u := a.user(w); u != nil {
		writeJSON(w, http.StatusOK, realmRoleReps(a.realm, u.realmRoles))
	}
}

// adminRealmRoleMappingsComposite serves GET .../role-mappings/realm/composite (effective roles).
func (s *Server) adminRealmRoleMappingsComposite(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	if u := a.user(w); u != nil {
		realmRoles, _ := a.realm.effectiveRoles(u)
		writeJSON(w, http.StatusOK, realmRoleReps(a.realm, realmRoles))
	}
}

// adminRoleMappings serves GET .../users/{id}/role-mappings (direct realm and client mappings).
func (s *Server) adminRoleMappings(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	u := a.user(w)
	if u == nil {
		return
	}
	type clientMappings struct {
		ID       string               `json:"id"`
		Client   string               `json:"client"`
		Mappings []roleRepresentation `json:"mappings"`
	}
	body := map[string]any{}
	if len(u.realmRoles) > 0 {
		body["realmMappings"] = realmRoleReps(a.realm, u.realmRoles)
	}
	cm := map[string]clientMappings{}
	for clientID, names := range u.clientRoles {
		c := a.realm.clientByClientID(clientID)
		if c == nil || len(names) == 0 {
			continue
		}
		var reps []roleRepresentation
		for _, n := range names {
			if ro, ok := c.roles[n]; ok {
				reps = append(reps, roleRep(ro))
			}
		}
		sort.Slice(reps, func(i, j int) bool { return reps[i].Name < reps[j].Name })
		cm[clientID] = clientMappings{ID: c.id, Client: clientID, Mappings: reps}
	}
	if len(cm) > 0 {
		body["clientMappings"] = cm
	}
	writeJSON(w, http.StatusOK, body)
}
