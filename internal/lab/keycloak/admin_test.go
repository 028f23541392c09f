package keycloak

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
)

// TestAdminRoutesExistInOpenAPI proves every served admin route, and every query parameter it
// reads, is in Keycloak 23.0.6's Admin REST API OpenAPI (copied to testdata).
func TestAdminRoutesExistInOpenAPI(t *testing.T) {
	b, err := os.ReadFile("testdata/keycloak-23.0.6-admin-routes.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string][]string `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	norm := func(p string) string {
		seg := strings.Split(p, "/")
		for i, s := range seg {
			if strings.HasPrefix(s, "{") {
				seg[i] = "{}"
			}
		}
		return strings.Join(seg, "/")
	}
	spec := map[string]map[string][]string{}
	for p, m := range doc.Paths {
		spec[norm(p)] = m
	}
	if len(spec) < 100 {
		t.Fatalf("OpenAPI testdata has only %d paths", len(spec))
	}
	for _, rt := range adminRoutes() {
		t.Run(rt.Method+" "+rt.Pattern, func(t *testing.T) {
			methods, ok := spec[norm(rt.Pattern)]
			if !ok {
				t.Fatalf("path %s not in the OpenAPI", rt.Pattern)
			}
			documented, ok := methods[rt.Method]
			if !ok {
				t.Fatalf("method %s not documented for %s", rt.Method, rt.Pattern)
			}
			for _, q := range rt.Query {
				if !slices.Contains(documented, q) {
					t.Errorf("query parameter %q not documented for %s %s (has %v)", q, rt.Method, rt.Pattern, documented)
				}
			}
		})
	}
}

func TestAdminAuthentication(t *testing.T) {
	l := newLab(t)
	expired := l.workerToken()
	l.clock.Advance(301 * time.Second)
	alice := l.login("alice").AccessToken
	api, err := l.gc.LoginClient(l.ctx, APIClientID, APIClientSecret, Realm)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, token string
		code                      int
		body                      string
	}{
		{"no token", http.MethodGet, "/admin/realms/iru/users", "", 401, `{"error":"HTTP 401 Unauthorized"}`},
		{"garbage token", http.MethodGet, "/admin/realms/iru/users", "garbage", 401, `{"error":"HTTP 401 Unauthorized"}`},
		{"expired token", http.MethodGet, "/admin/realms/iru/users", expired, 401, `{"error":"HTTP 401 Unauthorized"}`},
		{"foreign key", http.MethodGet, "/admin/realms/iru/users", foreignToken(t, l.hs.URL+"/realms/iru"), 401, `{"error":"HTTP 401 Unauthorized"}`},
		{"responder without roles", http.MethodGet, "/admin/realms/iru/users", alice, 403, `{"error":"HTTP 403 Forbidden"}`},
		{"service account without roles", http.MethodPost, "/admin/realms/iru/users/x/logout", api.AccessToken, 403, `{"error":"HTTP 403 Forbidden"}`},
		{"realm token on another realm", http.MethodGet, "/admin/realms/master/users", l.workerToken(), 403, `{"error":"HTTP 403 Forbidden"}`},
		{"unknown realm", http.MethodGet, "/admin/realms/nowhere/users", l.adminToken(), 404, `{"error":"Realm not found."}`},
		{"unknown user", http.MethodGet, "/admin/realms/iru/users/nope", l.workerToken(), 404, `{"error":"User not found"}`},
		{"unknown client", http.MethodGet, "/admin/realms/iru/clients/nope", l.workerToken(), 404, `{"error":"Could not find client"}`},
		{"unknown session", http.MethodDelete, "/admin/realms/iru/sessions/nope", l.workerToken(), 404, `{"error":"Sesssion not found"}`},
		{"unknown route", http.MethodGet, "/admin/realms/iru/nothing-here", l.workerToken(), 404, `{"error":"HTTP 404 Not Found"}`},
		{"wrong method", http.MethodPatch, "/admin/realms/iru/users", l.workerToken(), 405, `{"error":"HTTP 405 Method Not Allowed"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := l.do(tt.method, tt.path, tt.token, nil)
			if resp.StatusCode != tt.code || body != tt.body || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %s %q, want %d %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tt.code, tt.body)
			}
			if tt.code == 401 && resp.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("gocloak sees 401 and 403", func(t *testing.T) {
		_, err := l.gc.GetUsers(l.ctx, "garbage", Realm, gocloak.GetUsersParams{})
		apiErr(t, err, 401, "HTTP 401 Unauthorized")
		_, err = l.gc.GetUsers(l.ctx, alice, Realm, gocloak.GetUsersParams{})
		apiErr(t, err, 403, "HTTP 403 Forbidden")
	})
	t.Run("void endpoints answer 204 without body or content type", func(t *testing.T) {
		resp, body := l.do(http.MethodPut, "/admin/realms/iru/users/"+l.userID("asmith"), l.workerToken(),
			strings.NewReader(`{"firstName":"Anna"}`), "Content-Type", "application/json")
		if resp.StatusCode != 204 || body != "" || resp.Header.Get("Content-Type") != "" {
			t.Fatalf("got %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})
	t.Run("trailing slash lists realms", func(t *testing.T) {
		realms, err := l.gc.GetRealms(l.ctx, l.adminToken())
		if err != nil || len(realms) != 2 {
			t.Fatalf("GetRealms = %d, %v", len(realms), err)
		}
	})
}

func TestGetUsersQuerySemantics(t *testing.T) {
	l := newLab(t)
	tok := l.workerToken()
	tests := []struct {
		name   string
		params gocloak.GetUsersParams
		want   []string
	}{
		{"all, service accounts excluded", gocloak.GetUsersParams{}, []string{"alice", "asmith", "bob", "carol", "jdoe"}},
		{"username substring", gocloak.GetUsersParams{Username: gocloak.StringP("A")}, []string{"alice", "asmith", "carol"}},
		{"username exact", gocloak.GetUsersParams{Username: gocloak.StringP("al"), Exact: gocloak.BoolP(true)}, nil},
		{"username exact hit", gocloak.GetUsersParams{Username: gocloak.StringP("ALICE"), Exact: gocloak.BoolP(true)}, []string{"alice"}},
		{"email", gocloak.GetUsersParams{Email: gocloak.StringP("jdoe@")}, []string{"jdoe"}},
		{"search", gocloak.GetUsersParams{Search: gocloak.StringP("smith")}, []string{"asmith"}},
		{"first/max", gocloak.GetUsersParams{First: gocloak.IntP(1), Max: gocloak.IntP(2)}, []string{"asmith", "bob"}},
		{"enabled filter", gocloak.GetUsersParams{Enabled: gocloak.BoolP(false)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users, err := l.gc.GetUsers(l.ctx, tok, Realm, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range users {
				got = append(got, *u.Username)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("count", func(t *testing.T) {
		n, err := l.gc.GetUserCount(l.ctx, tok, Realm, gocloak.GetUsersParams{})
		if err != nil || n != 5 {
			t.Fatalf("count = %d, %v", n, err)
		}
	})
}

func TestDisableUser(t *testing.T) {
	l := newLab(t)
	tok := l.login("jdoe")
	admin := l.workerToken()
	u, err := l.gc.GetUserByID(l.ctx, admin, Realm, l.userID("jdoe"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Enabled == nil || !*u.Enabled || u.Email == nil || *u.Email != "jdoe@iru.example" {
		t.Fatalf("user = %+v", u)
	}
	u.Enabled = gocloak.BoolP(false)
	if err := l.gc.UpdateUser(l.ctx, admin, Realm, *u); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if en, err := l.srv.UserEnabled(Realm, "jdoe"); err != nil || en {
		t.Fatalf("UserEnabled = %v, %v", en, err)
	}
	// Partial update: fields left out stay as they were.
	again, _ := l.gc.GetUserByID(l.ctx, admin, Realm, *u.ID)
	if *again.Email != "jdoe@iru.example" || *again.Enabled {
		t.Fatalf("after update: %+v", again)
	}
	_, err = l.gc.Login(l.ctx, ConsoleClientID, "", Realm, "jdoe", UserPassword)
	apiErr(t, err, 400, "invalid_grant: Account disabled")
	if l.active(tok.AccessToken) {
		t.Error("disabled user's token introspects active")
	}
	_, err = l.gc.RefreshToken(l.ctx, tok.RefreshToken, ConsoleClientID, "", Realm)
	apiErr(t, err, 400, "User disabled")
	if s, _ := l.srv.Sessions(Realm, "jdoe"); len(s) != 1 {
		t.Errorf("disabling removed sessions: %+v", s)
	}
	// Re-enable with a minimal body, as the notes describe Keycloak's partial update.
	if err := l.gc.UpdateUser(l.ctx, admin, Realm, gocloak.User{ID: u.ID, Enabled: gocloak.BoolP(true)}); err != nil {
		t.Fatal(err)
	}
	l.login("jdoe")
	err = l.gc.UpdateUser(l.ctx, admin, Realm, gocloak.User{ID: gocloak.StringP("nope"), Enabled: gocloak.BoolP(false)})
	apiErr(t, err, 404, "User not found")

	events, err := l.gc.GetRequestWithBearerAuth(l.ctx, admin).Get(l.hs.URL + "/admin/realms/iru/admin-events?resourceTypes=USER&operationTypes=UPDATE")
	if err != nil {
		t.Fatal(err)
	}
	var ae []AdminEvent
	if err := json.Unmarshal(events.Body(), &ae); err != nil || len(ae) != 2 {
		t.Fatalf("admin events = %s (%v)", events.Body(), err)
	}
	if ae[1].ResourcePath != "users/"+*u.ID || !strings.Contains(ae[1].Representation, `"enabled":false`) || ae[1].AuthDetails.UserID == "" {
		t.Errorf("admin event = %+v", ae[1])
	}
}

func TestLogoutAllSessionsOfUser(t *testing.T) {
	l := newLab(t)
	first, second := l.login("jdoe"), l.login("jdoe")
	other := l.login("alice")
	admin := l.workerToken()
	id := l.userID("jdoe")
	sessions, err := l.gc.GetUserSessions(l.ctx, admin, Realm, id)
	if err != nil || len(sessions) != 2 {
		t.Fatalf("GetUserSessions = %d, %v", len(sessions), err)
	}
	if !slices.ContainsFunc(sessions, func(s *gocloak.UserSessionRepresentation) bool {
		return *s.ID == first.SessionState && (*s.Clients)[l.clientUUID(ConsoleClientID)] == ConsoleClientID
	}) {
		t.Fatalf("sessions %+v lack %s", sessions, first.SessionState)
	}
	if err := l.gc.LogoutAllSessions(l.ctx, admin, Realm, id); err != nil {
		t.Fatalf("LogoutAllSessions: %v", err)
	}
	for _, tok := range []string{first.AccessToken, second.AccessToken} {
		if l.active(tok) {
			t.Error("token active after logout")
		}
	}
	_, err = l.gc.RefreshToken(l.ctx, second.RefreshToken, ConsoleClientID, "", Realm)
	apiErr(t, err, 400, "invalid_grant: Session not active")
	if s, _ := l.srv.Sessions(Realm, "jdoe"); len(s) != 0 {
		t.Errorf("sessions left: %+v", s)
	}
	if !l.active(other.AccessToken) {
		t.Error("another user's token was revoked")
	}
	err = l.gc.LogoutAllSessions(l.ctx, admin, Realm, "nope")
	apiErr(t, err, 404, "User not found")
}

func TestLogoutUserSession(t *testing.T) {
	l := newLab(t)
	keep, drop := l.login("bob"), l.login("bob")
	admin := l.adminToken() // master admin administers any realm
	if err := l.gc.LogoutUserSession(l.ctx, admin, Realm, drop.SessionState); err != nil {
		t.Fatalf("LogoutUserSession: %v", err)
	}
	if l.active(drop.AccessToken) || !l.active(keep.AccessToken) {
		t.Error("wrong session ended")
	}
	_, err := l.gc.RefreshToken(l.ctx, drop.RefreshToken, ConsoleClientID, "", Realm)
	apiErr(t, err, 400, "Session not active")
	err = l.gc.LogoutUserSession(l.ctx, admin, Realm, drop.SessionState)
	apiErr(t, err, 404, "Sesssion not found")
	s, _ := l.srv.Sessions(Realm, "bob")
	if len(s) != 1 || s[0].ID != keep.SessionState {
		t.Errorf("sessions = %+v", s)
	}
}

func TestRealmNotBeforeAndRevocation(t *testing.T) {
	l := newLab(t)
	old := l.login("alice")
	admin := l.workerToken()
	l.clock.Advance(2 * time.Second)
	realm, err := l.gc.GetRealm(l.ctx, admin, Realm)
	if err != nil {
		t.Fatal(err)
	}
	if realm.NotBefore == nil || *realm.NotBefore != 0 || realm.AccessTokenLifespan == nil || *realm.AccessTokenLifespan != 300 {
		t.Fatalf("realm = notBefore %v lifespan %v", realm.NotBefore, realm.AccessTokenLifespan)
	}
	nb := int(l.clock.Now().Unix())
	if err := l.gc.UpdateRealm(l.ctx, admin, gocloak.RealmRepresentation{Realm: gocloak.StringP(Realm), NotBefore: &nb}); err != nil {
		t.Fatalf("UpdateRealm: %v", err)
	}
	iss, err := l.gc.GetIssuer(l.ctx, Realm)
	if err != nil || *iss.TokensNotBefore != nb {
		t.Fatalf("tokens-not-before = %v, %v", iss.TokensNotBefore, err)
	}
	if l.active(old.AccessToken) {
		t.Error("token older than not-before is active")
	}
	_, err = l.gc.RefreshToken(l.ctx, old.RefreshToken, ConsoleClientID, "", Realm)
	apiErr(t, err, 400, "Stale token")
	_, err = l.gc.GetUsers(l.ctx, admin, Realm, gocloak.GetUsersParams{})
	apiErr(t, err, 401, "HTTP 401 Unauthorized")
	admin = l.workerToken()
	if fresh := l.login("alice"); !l.active(fresh.AccessToken) {
		t.Error("token issued after not-before is inactive")
	}

	var res map[string]any
	resp, err := l.gc.GetRequestWithBearerAuth(l.ctx, admin).SetResult(&res).Post(l.hs.URL + "/admin/realms/iru/push-revocation")
	if err != nil || resp.StatusCode() != 200 || resp.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("push-revocation: %v %v", resp, err)
	}
	resp, err = l.gc.GetRequestWithBearerAuth(l.ctx, admin).SetResult(&res).Post(l.hs.URL + "/admin/realms/iru/clients/" + l.clientUUID(APIClientID) + "/push-revocation")
	if err != nil || resp.StatusCode() != 200 {
		t.Fatalf("client push-revocation: %v %v", resp, err)
	}
	var ae []AdminEvent
	resp, err = l.gc.GetRequestWithBearerAuth(l.ctx, admin).SetResult(&ae).Get(l.hs.URL + "/admin/realms/iru/admin-events")
	if err != nil || resp.StatusCode() != 200 {
		t.Fatalf("admin-events: %v %v", resp, err)
	}
	var got []string
	for _, e := range ae {
		got = append(got, e.OperationType+" "+e.ResourceType+" "+e.ResourcePath)
	}
	want := []string{"ACTION CLIENT clients/" + l.clientUUID(APIClientID) + "/push-revocation", "ACTION REALM push-revocation", "UPDATE REALM "}
	if !slices.Equal(got, want) {
		t.Errorf("admin events = %q, want %q", got, want)
	}
}

func TestLogoutAll(t *testing.T) {
	l := newLab(t)
	a, b := l.login("alice"), l.login("bob")
	l.clock.Advance(time.Second)
	var res map[string]any
	resp, err := l.gc.GetRequestWithBearerAuth(l.ctx, l.adminToken()).SetResult(&res).Post(l.hs.URL + "/admin/realms/iru/logout-all")
	if err != nil || resp.StatusCode() != 200 {
		t.Fatalf("logout-all: %v %v", resp, err)
	}
	for _, tok := range []string{a.AccessToken, b.AccessToken} {
		if l.active(tok) {
			t.Error("token active after logout-all")
		}
	}
	for _, u := range []string{"alice", "bob"} {
		if s, _ := l.srv.Sessions(Realm, u); len(s) != 0 {
			t.Errorf("%s sessions = %+v", u, s)
		}
	}
}

func TestClientsAndSecretRotation(t *testing.T) {
	l := newLab(t)
	admin := l.workerToken()
	tests := []struct {
		name   string
		params gocloak.GetClientsParams
		want   []string
	}{
		{"exact", gocloak.GetClientsParams{ClientID: gocloak.StringP(APIClientID)}, []string{APIClientID}},
		{"exact miss on prefix", gocloak.GetClientsParams{ClientID: gocloak.StringP("iru")}, nil},
		{"search", gocloak.GetClientsParams{ClientID: gocloak.StringP("IRU-"), Search: gocloak.BoolP(true)}, []string{APIClientID, ConsoleClientID, OperatorClientID, WorkerClientID}},
		{"first/max", gocloak.GetClientsParams{ClientID: gocloak.StringP("iru-"), Search: gocloak.BoolP(true), First: gocloak.IntP(1), Max: gocloak.IntP(1)}, []string{ConsoleClientID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clients, err := l.gc.GetClients(l.ctx, admin, Realm, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range clients {
				got = append(got, *c.ClientID)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	id := l.clientUUID(WorkerClientID)
	cons := l.clientUUID(ConsoleClientID)
	c, err := l.gc.GetClient(l.ctx, admin, Realm, id)
	if err != nil || *c.ClientID != WorkerClientID || !*c.ServiceAccountsEnabled || *c.PublicClient {
		t.Fatalf("GetClient = %+v, %v", c, err)
	}
	cur, err := l.gc.GetClientSecret(l.ctx, admin, Realm, id)
	if err != nil || *cur.Type != "secret" || *cur.Value != WorkerClientSecret {
		t.Fatalf("GetClientSecret = %+v, %v", cur, err)
	}
	fresh, err := l.gc.RegenerateClientSecret(l.ctx, admin, Realm, id)
	if err != nil || *fresh.Value == WorkerClientSecret || *fresh.Value == "" {
		t.Fatalf("RegenerateClientSecret = %+v, %v", fresh, err)
	}
	_, err = l.gc.LoginClient(l.ctx, WorkerClientID, WorkerClientSecret, Realm)
	apiErr(t, err, 401, "unauthorized_client")
	if _, err := l.gc.LoginClient(l.ctx, WorkerClientID, *fresh.Value, Realm); err != nil {
		t.Fatalf("login with new secret: %v", err)
	}
	if got, _ := l.gc.GetClientSecret(l.ctx, admin, Realm, id); *got.Value != *fresh.Value {
		t.Errorf("secret read back = %s", *got.Value)
	}
	_, err = l.gc.RegenerateClientSecret(l.ctx, admin, Realm, "nope")
	apiErr(t, err, 404, "Could not find client")
	t.Run("client not-before", func(t *testing.T) {
		tok := l.login("carol")
		l.clock.Advance(time.Second)
		nb := int32(l.clock.Now().Unix())
		if err := l.gc.UpdateClient(l.ctx, admin, Realm, gocloak.Client{ID: &cons, ClientID: gocloak.StringP(ConsoleClientID), NotBefore: &nb}); err != nil {
			t.Fatal(err)
		}
		if l.active(tok.AccessToken) {
			t.Error("token older than client not-before is active")
		}
	})
}

func TestRoleMappingsAndRoles(t *testing.T) {
	l := newLab(t)
	admin := l.workerToken()
	id := l.userID("bob")
	m, err := l.gc.GetRoleMappingByUserID(l.ctx, admin, Realm, id)
	if err != nil || m.RealmMappings == nil {
		t.Fatalf("GetRoleMappingByUserID = %+v, %v", m, err)
	}
	var names []string
	for _, r := range *m.RealmMappings {
		names = append(names, *r.Name)
	}
	if !slices.Equal(names, []string{"default-roles-iru", RoleLead, RoleResponder}) {
		t.Errorf("realm mappings = %v", names)
	}
	roles, err := l.gc.GetRealmRolesByUserID(l.ctx, admin, Realm, id)
	if err != nil || len(roles) != 3 {
		t.Fatalf("GetRealmRolesByUserID = %d, %v", len(roles), err)
	}
	all, err := l.gc.GetRealmRoles(l.ctx, admin, Realm, gocloak.GetRoleParams{})
	if err != nil {
		t.Fatal(err)
	}
	var allNames []string
	for _, r := range all {
		allNames = append(allNames, *r.Name)
	}
	for _, want := range []string{RoleAdmin, RoleLead, RoleResponder, "offline_access"} {
		if !slices.Contains(allNames, want) {
			t.Errorf("roles %v lack %s", allNames, want)
		}
	}
	sa, err := l.gc.GetRequestWithBearerAuth(l.ctx, admin).Get(l.hs.URL + "/admin/realms/iru/users/3d6f7a10-5b2c-4e8d-9a01-0000000005a1/role-mappings")
	if err != nil || !strings.Contains(string(sa.Body()), `"realm-management"`) {
		t.Fatalf("service account mappings: %s %v", sa.Body(), err)
	}
}

func TestUserEvents(t *testing.T) {
	l := newLab(t)
	tok := l.login("alice")
	_, _ = l.gc.Login(l.ctx, ConsoleClientID, "", Realm, "alice", "bad")
	if _, err := l.gc.RefreshToken(l.ctx, tok.RefreshToken, ConsoleClientID, "", Realm); err != nil {
		t.Fatal(err)
	}
	l.active(tok.AccessToken)
	admin := l.workerToken()
	aliceID := l.userID("alice")
	events, err := l.gc.GetEvents(l.ctx, admin, Realm, gocloak.GetEventsParams{UserID: &aliceID})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, *e.Type)
	}
	want := []string{"INTROSPECT_TOKEN", "REFRESH_TOKEN", "LOGIN_ERROR", "LOGIN"}
	if !slices.Equal(types, want) {
		t.Fatalf("alice events = %v, want %v (newest first)", types, want)
	}
	max := int32(1)
	one, err := l.gc.GetEvents(l.ctx, admin, Realm, gocloak.GetEventsParams{Client: gocloak.StringP(WorkerClientID), Max: &max})
	if err != nil || len(one) != 1 || *one[0].Type != "CLIENT_LOGIN" {
		t.Fatalf("client events = %+v, %v", one, err)
	}
	// gocloak cannot encode GetEventsParams.Type ([]string), so type filtering goes raw.
	var typed []Event
	resp, err := l.gc.GetRequestWithBearerAuth(l.ctx, admin).SetResult(&typed).
		Get(l.hs.URL + "/admin/realms/iru/events?type=LOGIN_ERROR&dateFrom=" + l.clock.Now().UTC().Format("2006-01-02"))
	if err != nil || resp.StatusCode() != 200 || len(typed) != 1 || typed[0].Error != "invalid_user_credentials" || typed[0].Details["username"] != "alice" {
		t.Fatalf("typed events = %+v, %v", typed, err)
	}
	resp, _ = l.gc.GetRequestWithBearerAuth(l.ctx, admin).SetResult(&typed).Get(l.hs.URL + "/admin/realms/iru/events?dateTo=2000-01-01")
	if resp.StatusCode() != 200 || len(typed) != 0 {
		t.Fatalf("events before 2000 = %+v", typed)
	}
	t.Run("master does not store events", func(t *testing.T) {
		ev, err := l.gc.GetEvents(l.ctx, l.adminToken(), MasterRealm, gocloak.GetEventsParams{})
		if err != nil || len(ev) != 0 {
			t.Fatalf("master events = %d, %v", len(ev), err)
		}
	})
}

func TestMasterServiceAccountAdmin(t *testing.T) {
	master := []byte(`{"realm":"master","accessTokenLifespan":60,
	  "clients":[{"clientId":"lab-ops","secret":"ops-secret","serviceAccountsEnabled":true}],
	  "users":[{"username":"service-account-lab-ops","enabled":true,"serviceAccountClientId":"lab-ops","realmRoles":["admin"]}]}`)
	iru, err := seedFS.ReadFile("realms/iru.json")
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, func(o *Options) { o.Realms = [][]byte{master, iru} })
	tok, err := l.gc.LoginClient(l.ctx, "lab-ops", "ops-secret", MasterRealm)
	if err != nil {
		t.Fatal(err)
	}
	users, err := l.gc.GetUsers(l.ctx, tok.AccessToken, Realm, gocloak.GetUsersParams{})
	if err != nil || len(users) != 5 {
		t.Fatalf("GetUsers with master service account = %d, %v", len(users), err)
	}
	if _, err := New(Options{Realms: [][]byte{[]byte(`{"realm":"x","users":[{"username":"u","realmRoles":["missing"]}]}`)}, KeyBits: 1024}); err == nil {
		t.Error("realm with an unknown role mapping loaded")
	}
}
