package keycloak

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// keycloakClaims are the claims the platform reads from responder tokens.
type keycloakClaims struct {
	Iss               string   `json:"iss"`
	Sub               string   `json:"sub"`
	Azp               string   `json:"azp"`
	Typ               string   `json:"typ"`
	Sid               string   `json:"sid"`
	SessionState      string   `json:"session_state"`
	Iat               int64    `json:"iat"`
	Exp               int64    `json:"exp"`
	Scope             string   `json:"scope"`
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email"`
	Aud               []string `json:"-"`
	RealmAccess       struct {
		Roles []string `json:"roles"`
	} `json:"realm_access"`
	ResourceAccess map[string]struct {
		Roles []string `json:"roles"`
	} `json:"resource_access"`
}

func TestSeedCredentialsAndRoles(t *testing.T) {
	l := newLab(t)
	tests := []struct {
		username  string
		wantRoles []string
		notRoles  []string
	}{
		{"alice", []string{RoleResponder}, []string{RoleLead, RoleAdmin}},
		{"bob", []string{RoleResponder, RoleLead}, []string{RoleAdmin}},
		{"carol", []string{RoleAdmin, RoleLead}, []string{RoleResponder}},
		{"jdoe", []string{"default-roles-iru"}, []string{RoleResponder, RoleLead, RoleAdmin}},
		{"asmith", []string{"default-roles-iru"}, []string{RoleResponder, RoleLead, RoleAdmin}},
	}
	for _, tt := range tests {
		t.Run(tt.username, func(t *testing.T) {
			tok := l.login(tt.username)
			var c keycloakClaims
			decodeClaims(t, tok.AccessToken, &c)
			for _, r := range tt.wantRoles {
				if !slices.Contains(c.RealmAccess.Roles, r) {
					t.Errorf("roles %v lack %s", c.RealmAccess.Roles, r)
				}
			}
			for _, r := range tt.notRoles {
				if slices.Contains(c.RealmAccess.Roles, r) {
					t.Errorf("roles %v include %s", c.RealmAccess.Roles, r)
				}
			}
			if c.PreferredUsername != tt.username || c.Email != tt.username+"@iru.example" {
				t.Errorf("preferred_username/email = %q/%q", c.PreferredUsername, c.Email)
			}
		})
	}
	t.Run("confidential clients", func(t *testing.T) {
		for id, secret := range map[string]string{WorkerClientID: WorkerClientSecret, APIClientID: APIClientSecret} {
			if _, err := l.gc.LoginClient(l.ctx, id, secret, Realm); err != nil {
				t.Errorf("LoginClient %s: %v", id, err)
			}
		}
	})
	t.Run("worker has realm-management roles", func(t *testing.T) {
		var c keycloakClaims
		decodeClaims(t, l.workerToken(), &c)
		got := c.ResourceAccess["realm-management"].Roles
		for _, r := range []string{"view-users", "manage-users", "view-clients", "manage-clients", "view-realm", "manage-realm", "view-events"} {
			if !slices.Contains(got, r) {
				t.Errorf("realm-management roles %v lack %s", got, r)
			}
		}
	})
}

func decodeClaims(t *testing.T, raw string, v any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("unmarshal claims: %v", err)
	}
}

func TestTokenResponsesAndClaims(t *testing.T) {
	l := newLab(t)
	tok := l.login("alice")
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 300 || tok.RefreshToken == "" || tok.IDToken == "" || tok.SessionState == "" {
		t.Fatalf("password grant response = %+v", tok)
	}
	var c keycloakClaims
	decodeClaims(t, tok.AccessToken, &c)
	var aud struct {
		Aud []string `json:"aud"`
	}
	decodeClaims(t, tok.AccessToken, &aud)
	if c.Iss != l.hs.URL+"/realms/iru" || c.Azp != ConsoleClientID || c.Typ != "Bearer" ||
		c.Sid != tok.SessionState || c.SessionState != tok.SessionState || c.Exp-c.Iat != 300 ||
		!strings.Contains(c.Scope, "openid") {
		t.Errorf("claims = %+v", c)
	}
	for _, want := range []string{ConsoleClientID, APIClientID, "account"} {
		if !slices.Contains(aud.Aud, want) {
			t.Errorf("aud %v lacks %s", aud.Aud, want)
		}
	}

	admin, err := l.gc.LoginAdmin(l.ctx, AdminUsername, AdminPassword, MasterRealm)
	if err != nil {
		t.Fatalf("LoginAdmin: %v", err)
	}
	if admin.ExpiresIn != 60 {
		t.Errorf("master access token lifespan = %d, want 60", admin.ExpiresIn)
	}
	cc, err := l.gc.LoginClient(l.ctx, WorkerClientID, WorkerClientSecret, Realm)
	if err != nil {
		t.Fatalf("LoginClient: %v", err)
	}
	if cc.RefreshToken != "" || cc.SessionState != "" || cc.RefreshExpiresIn != 0 {
		t.Errorf("client_credentials response has refresh/session: %+v", cc)
	}

	t.Run("lifespan override", func(t *testing.T) {
		l2 := newLab(t, func(o *Options) { o.AccessTokenLifespans = map[string]time.Duration{Realm: 30 * time.Second} })
		if got := l2.login("bob").ExpiresIn; got != 30 {
			t.Errorf("ExpiresIn = %d, want 30", got)
		}
	})
}

func TestTokenEndpointErrors(t *testing.T) {
	l := newLab(t)
	tests := []struct {
		name string
		call func() error
		code int
		want string
	}{
		{"wrong password", func() error {
			_, err := l.gc.Login(l.ctx, ConsoleClientID, "", Realm, "alice", "nope")
			return err
		}, 401, "invalid_grant: Invalid user credentials"},
		{"unknown user", func() error {
			_, err := l.gc.Login(l.ctx, ConsoleClientID, "", Realm, "mallory", "x")
			return err
		}, 401, "Invalid user credentials"},
		{"wrong client secret", func() error {
			_, err := l.gc.LoginClient(l.ctx, WorkerClientID, "wrong", Realm)
			return err
		}, 401, "unauthorized_client"},
		{"unknown client", func() error {
			_, err := l.gc.LoginClient(l.ctx, "nobody", "x", Realm)
			return err
		}, 401, "invalid_client"},
		{"direct grants disabled", func() error {
			_, err := l.gc.Login(l.ctx, WorkerClientID, WorkerClientSecret, Realm, "alice", UserPassword)
			return err
		}, 400, "Client not allowed for direct access grants"},
		{"public client has no service account", func() error {
			_, err := l.gc.LoginClient(l.ctx, ConsoleClientID, "any", Realm)
			return err
		}, 401, "Public client not allowed to retrieve service account"},
		{"service accounts disabled", func() error {
			secret, err := l.gc.GetClientSecret(l.ctx, l.workerToken(), Realm, l.clientUUID("broker"))
			if err != nil {
				return err
			}
			_, err = l.gc.LoginClient(l.ctx, "broker", *secret.Value, Realm)
			return err
		}, 400, "Client not enabled to retrieve service account"},
		{"garbage refresh token", func() error {
			_, err := l.gc.RefreshToken(l.ctx, "garbage", ConsoleClientID, "", Realm)
			return err
		}, 400, "Invalid refresh token"},
		{"unknown realm", func() error {
			_, err := l.gc.LoginAdmin(l.ctx, AdminUsername, AdminPassword, "nowhere")
			return err
		}, 404, "Realm does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { apiErr(t, tt.call(), tt.code, tt.want) })
	}
	t.Run("login error event", func(t *testing.T) {
		events, err := l.srv.Events(Realm)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range events {
			if e.Type == "LOGIN_ERROR" && e.Error == "invalid_user_credentials" && e.UserID != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("no LOGIN_ERROR invalid_user_credentials event in %+v", events)
		}
	})
	t.Run("form client auth and response_type", func(t *testing.T) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {WorkerClientID},
			"client_secret": {WorkerClientSecret}, "response_type": {"token"}}
		resp, body := l.do(http.MethodPost, "/realms/iru/protocol/openid-connect/token", "", strings.NewReader(form.Encode()),
			"Content-Type", "application/x-www-form-urlencoded")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, "access_token") {
			t.Fatalf("form client auth: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})
	t.Run("error content type", func(t *testing.T) {
		resp, body := l.do(http.MethodPost, "/realms/iru/protocol/openid-connect/token", "", strings.NewReader("grant_type=password"),
			"Content-Type", "application/x-www-form-urlencoded")
		if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, `"error":"invalid_client"`) {
			t.Fatalf("missing client: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})
}

func TestRefreshToken(t *testing.T) {
	l := newLab(t)
	tok := l.login("alice")
	l.clock.Advance(10 * time.Second)
	next, err := l.gc.RefreshToken(l.ctx, tok.RefreshToken, ConsoleClientID, "", Realm)
	if err != nil {
		t.Fatalf("RefreshToken: %v", err)
	}
	if next.SessionState != tok.SessionState || next.AccessToken == tok.AccessToken {
		t.Errorf("refresh kept session %q->%q, new token %v", tok.SessionState, next.SessionState, next.AccessToken != tok.AccessToken)
	}
	if _, err := l.gc.RefreshToken(l.ctx, tok.RefreshToken, APIClientID, APIClientSecret, Realm); err == nil {
		t.Error("refresh with another client succeeded")
	}
	t.Run("idle timeout ends the session", func(t *testing.T) {
		l.clock.Advance(31 * time.Minute)
		_, err := l.gc.RefreshToken(l.ctx, next.RefreshToken, ConsoleClientID, "", Realm)
		apiErr(t, err, 400, "invalid_grant")
		if s, _ := l.srv.Sessions(Realm, "alice"); len(s) != 0 {
			t.Errorf("sessions after idle timeout = %+v", s)
		}
	})
}

func TestIntrospection(t *testing.T) {
	l := newLab(t)
	t.Run("active token claims", func(t *testing.T) {
		tok := l.login("bob")
		res, err := l.gc.RetrospectToken(l.ctx, tok.AccessToken, APIClientID, APIClientSecret, Realm)
		if err != nil {
			t.Fatal(err)
		}
		if res.Active == nil || !*res.Active || res.Exp == nil || res.Iat == nil || res.Type == nil || *res.Type != "Bearer" ||
			res.Aud == nil || !slices.Contains(*res.Aud, APIClientID) {
			t.Fatalf("introspection = %+v", res)
		}
	})
	t.Run("refresh token is introspectable", func(t *testing.T) {
		if !l.active(l.login("bob").RefreshToken) {
			t.Error("refresh token inactive")
		}
	})
	tests := []struct {
		name  string
		token func() string
	}{
		{"garbage", func() string { return "foobar" }},
		{"expired", func() string {
			tok := l.login("alice").AccessToken
			l.clock.Advance(301 * time.Second)
			return tok
		}},
		{"revoked", func() string {
			tok := l.login("alice")
			if err := l.gc.RevokeToken(l.ctx, Realm, ConsoleClientID, "", tok.AccessToken); err != nil {
				t.Fatalf("RevokeToken: %v", err)
			}
			return tok.AccessToken
		}},
		{"logged out", func() string {
			tok := l.login("alice")
			if err := l.gc.Logout(l.ctx, ConsoleClientID, "", Realm, tok.RefreshToken); err != nil {
				t.Fatalf("Logout: %v", err)
			}
			return tok.AccessToken
		}},
		{"other realm", func() string { return l.adminToken() }},
		{"foreign key", func() string { return foreignToken(t, l.hs.URL+"/realms/iru") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l.active(tt.token()) {
				t.Error("token introspects active")
			}
		})
	}
	t.Run("protocol errors", func(t *testing.T) {
		cases := []struct {
			name, id, secret, form string
			code                   int
			want                   string
		}{
			{"public client", ConsoleClientID, "", "token=x", 403, "Client not allowed."},
			{"bad secret", APIClientID, "nope", "token=x", 401, "Authentication failed."},
			{"no token", APIClientID, APIClientSecret, "", 400, "Token not provided."},
			{"unknown hint", APIClientID, APIClientSecret, "token=x&token_type_hint=foo", 400, "Unsupported token type [foo]."},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				form := c.form
				hdr := []string{"Content-Type", "application/x-www-form-urlencoded"}
				if c.secret != "" {
					hdr = append(hdr, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.id+":"+c.secret)))
				} else {
					form += "&client_id=" + c.id
				}
				resp, body := l.do(http.MethodPost, "/realms/iru/protocol/openid-connect/token/introspect", "", strings.NewReader(form), hdr...)
				if resp.StatusCode != c.code || !strings.Contains(body, c.want) || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, c.code, c.want)
				}
			})
		}
	})
}

// foreignToken signs a Keycloak-shaped token with a key the realm does not know.
func foreignToken(t *testing.T, iss string) string {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: "intruder"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	raw, err := jwt.Signed(signer).Claims(map[string]any{
		"iss": iss, "aud": []string{APIClientID, ConsoleClientID}, "sub": "x", "typ": "Bearer", "azp": ConsoleClientID,
		"iat": now, "exp": now + 300,
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestGoOIDCVerificationAndKeyRotation(t *testing.T) {
	l := newLab(t, func(o *Options) { o.KeyBits = 2048; o.KeyRotationOverlap = 5 * time.Minute })
	issuer := l.hs.URL + "/realms/iru"
	ctx := oidc.ClientContext(l.ctx, l.hs.Client())
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	verifier := func(clientID string) *oidc.IDTokenVerifier {
		return provider.Verifier(&oidc.Config{ClientID: clientID, Now: l.clock.Now})
	}
	before := l.login("alice")
	for _, aud := range []string{APIClientID, ConsoleClientID, "account"} {
		idt, err := verifier(aud).Verify(ctx, before.AccessToken)
		if err != nil {
			t.Fatalf("verify access token for %s: %v", aud, err)
		}
		var c keycloakClaims
		if err := idt.Claims(&c); err != nil || c.PreferredUsername != "alice" || !slices.Contains(c.RealmAccess.Roles, RoleResponder) {
			t.Fatalf("claims %+v, %v", c, err)
		}
	}
	if _, err := verifier(ConsoleClientID).Verify(ctx, before.IDToken); err != nil {
		t.Fatalf("verify id token: %v", err)
	}
	if _, err := verifier("someone-else").Verify(ctx, before.AccessToken); err == nil {
		t.Fatal("token verified for a foreign audience")
	}
	if _, err := verifier(APIClientID).Verify(ctx, foreignToken(t, issuer)); err == nil {
		t.Fatal("token with unknown key verified")
	}

	oldKid, _ := l.srv.SigningKeyID(Realm)
	resp, body := l.do(http.MethodPost, "/_lab/realms/iru/rotate-key", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"kid"`) {
		t.Fatalf("lab rotate: %d %s", resp.StatusCode, body)
	}
	newKid, _ := l.srv.SigningKeyID(Realm)
	if newKid == oldKid || !strings.Contains(body, newKid) {
		t.Fatalf("kid %s -> %s (body %s)", oldKid, newKid, body)
	}
	after := l.login("alice")
	var hdr struct {
		Kid string `json:"kid"`
	}
	hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(after.AccessToken, ".")[0])
	_ = json.Unmarshal(hb, &hdr)
	if hdr.Kid != newKid {
		t.Fatalf("new token kid %s, want %s", hdr.Kid, newKid)
	}
	for name, tok := range map[string]string{"old key": before.AccessToken, "new key": after.AccessToken} {
		if _, err := verifier(APIClientID).Verify(ctx, tok); err != nil {
			t.Errorf("verify %s token during overlap: %v", name, err)
		}
	}
	certs, err := l.gc.GetCerts(l.ctx, Realm)
	if err != nil || certs.Keys == nil || len(*certs.Keys) != 2 {
		t.Fatalf("JWKS during overlap: %+v %v", certs, err)
	}
	if _, _, err := l.gc.DecodeAccessToken(l.ctx, after.AccessToken, Realm); err != nil {
		t.Errorf("gocloak DecodeAccessToken: %v", err)
	}

	// After the overlap the old key leaves the JWKS and a fresh verifier rejects old tokens.
	l.clock.Advance(6 * time.Minute)
	resp, body = l.do(http.MethodGet, "/realms/iru/protocol/openid-connect/certs", "", nil)
	if resp.StatusCode != 200 || strings.Contains(body, oldKid) || !strings.Contains(body, newKid) {
		t.Fatalf("JWKS after overlap: %s", body)
	}
	fresh, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Verifier(&oidc.Config{ClientID: APIClientID, Now: l.clock.Now}).Verify(ctx, before.AccessToken); err == nil {
		t.Error("old-key token verified after the overlap")
	}
	if _, err := l.srv.RotateSigningKey("nowhere"); err == nil {
		t.Error("rotating an unknown realm succeeded")
	}
}

func TestIssuerEndpointAndDiscovery(t *testing.T) {
	l := newLab(t)
	iss, err := l.gc.GetIssuer(l.ctx, Realm)
	if err != nil {
		t.Fatal(err)
	}
	if iss.Realm == nil || *iss.Realm != Realm || iss.PublicKey == nil || *iss.PublicKey == "" || iss.TokensNotBefore == nil {
		t.Fatalf("issuer = %+v", iss)
	}
	resp, body := l.do(http.MethodGet, "/realms/iru/.well-known/openid-configuration", "", nil)
	var d map[string]any
	if err := json.Unmarshal([]byte(body), &d); err != nil || resp.StatusCode != 200 {
		t.Fatalf("discovery %d %v", resp.StatusCode, err)
	}
	for _, k := range []string{"token_endpoint", "introspection_endpoint", "userinfo_endpoint", "end_session_endpoint", "jwks_uri", "revocation_endpoint"} {
		if v, _ := d[k].(string); !strings.HasPrefix(v, l.hs.URL+"/realms/iru/protocol/openid-connect/") {
			t.Errorf("%s = %v", k, d[k])
		}
	}
	resp, _ = l.do(http.MethodGet, "/realms/nowhere", "", nil)
	if resp.StatusCode != 404 {
		t.Errorf("unknown realm = %d", resp.StatusCode)
	}
}

func TestUserinfo(t *testing.T) {
	l := newLab(t)
	tok := l.login("carol")
	info, err := l.gc.GetUserInfo(l.ctx, tok.AccessToken, Realm)
	if err != nil {
		t.Fatal(err)
	}
	if info.PreferredUsername == nil || *info.PreferredUsername != "carol" || info.Email == nil || *info.Email != "carol@iru.example" {
		t.Fatalf("userinfo = %+v", info)
	}
	_, err = l.gc.GetUserInfo(l.ctx, "garbage", Realm)
	apiErr(t, err, 401, "invalid_token")
	_, err = l.gc.GetUserInfo(l.ctx, l.workerToken(), Realm)
	apiErr(t, err, 403, "Missing openid scope")
}

func TestLogoutEndpointAndRevoke(t *testing.T) {
	l := newLab(t)
	t.Run("logout with refresh token", func(t *testing.T) {
		tok := l.login("alice")
		if err := l.gc.Logout(l.ctx, ConsoleClientID, "", Realm, tok.RefreshToken); err != nil {
			t.Fatal(err)
		}
		_, err := l.gc.RefreshToken(l.ctx, tok.RefreshToken, ConsoleClientID, "", Realm)
		apiErr(t, err, 400, "Session not active")
		err = l.gc.Logout(l.ctx, ConsoleClientID, "", Realm, tok.RefreshToken)
		apiErr(t, err, 400, "Session not active")
	})
	t.Run("public client logout", func(t *testing.T) {
		tok := l.login("bob")
		if err := l.gc.LogoutPublicClient(l.ctx, ConsoleClientID, Realm, tok.AccessToken, tok.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if l.active(tok.AccessToken) {
			t.Error("token active after logout")
		}
	})
	t.Run("revoke refresh token ends the session", func(t *testing.T) {
		tok := l.login("carol")
		if err := l.gc.RevokeToken(l.ctx, Realm, ConsoleClientID, "", tok.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if s, _ := l.srv.Sessions(Realm, "carol"); len(s) != 0 {
			t.Errorf("sessions after revoke = %+v", s)
		}
	})
	t.Run("revoke by another client", func(t *testing.T) {
		tok := l.login("carol")
		err := l.gc.RevokeToken(l.ctx, Realm, APIClientID, APIClientSecret, tok.AccessToken)
		apiErr(t, err, 400, "Unmatching clients")
	})
	t.Run("logout event", func(t *testing.T) {
		events, _ := l.srv.Events(Realm)
		if !slices.ContainsFunc(events, func(e Event) bool { return e.Type == "LOGOUT" }) {
			t.Error("no LOGOUT event")
		}
	})
}
