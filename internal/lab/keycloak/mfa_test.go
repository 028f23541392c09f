package keycloak

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
)

// mfaClaims are the claims the decisions engine reads to see a second factor.
type mfaClaims struct {
	Amr []string `json:"amr"`
	Acr string   `json:"acr"`
	Sid string   `json:"sid"`
	Jti string   `json:"jti"`
}

// passwordGrant logs username in through the console client with gocloak's GetToken, sending
// totp only when code is not nil (as gocloak Login does not and LoginOtp does).
func (l *lab) passwordGrant(username, password string, code *string) (*gocloak.JWT, error) {
	return l.gc.GetToken(l.ctx, Realm, gocloak.TokenOptions{
		ClientID: gocloak.StringP(ConsoleClientID), GrantType: gocloak.StringP("password"),
		Username: gocloak.StringP(username), Password: gocloak.StringP(password), Totp: code,
		Scopes: &[]string{"openid"},
	})
}

// lastLoginError returns the error of the newest LOGIN_ERROR event of username.
func (l *lab) lastLoginError(username string) string {
	l.t.Helper()
	events, err := l.srv.Events(Realm)
	if err != nil {
		l.t.Fatal(err)
	}
	id := l.userID(username)
	for _, e := range events {
		if e.Type == "LOGIN_ERROR" && e.UserID == id {
			return e.Error
		}
	}
	return ""
}

func TestDirectGrantRequiresOTPForLeads(t *testing.T) {
	l := newLab(t)
	now := l.clock.Now()
	tests := []struct {
		name string
		user string
		code *string
	}{
		{"bob without totp", "bob", nil},
		{"bob with an empty totp", "bob", gocloak.StringP("")},
		{"bob with a wrong code", "bob", gocloak.StringP("000000")},
		{"bob with carol's code", "bob", gocloak.StringP(TOTPCode("carol", now))},
		{"bob with a code two minutes old", "bob", gocloak.StringP(TOTPCode("bob", now.Add(-2*time.Minute)))},
		{"carol (ir-admin) without totp", "carol", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.passwordGrant(tt.user, UserPassword, tt.code)
			apiErr(t, err, http.StatusUnauthorized, "invalid_grant: Invalid user credentials")
			if got := l.lastLoginError(tt.user); got != "invalid_user_credentials" {
				t.Fatalf("LOGIN_ERROR error = %q", got)
			}
			// The failed attempts do not open a session.
			if ss, _ := l.srv.Sessions(Realm, tt.user); len(ss) != 0 {
				t.Fatalf("sessions after a refused login: %+v", ss)
			}
		})
		l.srv.mu.Lock()
		l.srv.realms[Realm].failures = map[string]*loginFailure{} // each case starts unlocked
		l.srv.mu.Unlock()
	}

	t.Run("bob with the right code", func(t *testing.T) {
		tok, err := l.passwordGrant("bob", UserPassword, gocloak.StringP(TOTPCode("bob", now)))
		if err != nil {
			t.Fatalf("login with the right code: %v", err)
		}
		var c mfaClaims
		l.verifiedClaims(tok.AccessToken, &c)
		if !slices.Equal(c.Amr, []string{"pwd", "otp"}) || c.Acr != "1" || c.Sid != tok.SessionState || c.Jti == "" {
			t.Fatalf("access token amr/acr/sid/jti = %+v (session %s)", c, tok.SessionState)
		}
		var ic mfaClaims
		decodeClaims(t, tok.IDToken, &ic)
		if !slices.Equal(ic.Amr, []string{"pwd", "otp"}) {
			t.Fatalf("id token amr = %q", ic.Amr)
		}
		// A refreshed token keeps the login's methods.
		ref, err := l.gc.RefreshToken(l.ctx, tok.RefreshToken, ConsoleClientID, "", Realm)
		if err != nil {
			t.Fatal(err)
		}
		var rc mfaClaims
		l.verifiedClaims(ref.AccessToken, &rc)
		if !slices.Equal(rc.Amr, []string{"pwd", "otp"}) || rc.Sid != c.Sid || rc.Jti == c.Jti {
			t.Fatalf("refreshed amr/sid/jti = %+v", rc)
		}
	})

	t.Run("a code from the previous step is still accepted", func(t *testing.T) {
		if _, err := l.passwordGrant("carol", UserPassword, gocloak.StringP(TOTPCode("carol", now.Add(-30*time.Second)))); err != nil {
			t.Fatalf("look-around window: %v", err)
		}
	})

	t.Run("alice (no OTP set up, not required) logs in with her password", func(t *testing.T) {
		tok, err := l.passwordGrant("alice", UserPassword, nil)
		if err != nil {
			t.Fatal(err)
		}
		var c mfaClaims
		l.verifiedClaims(tok.AccessToken, &c)
		if !slices.Equal(c.Amr, []string{"pwd"}) || c.Acr != "1" {
			t.Fatalf("alice amr/acr = %q/%q", c.Amr, c.Acr)
		}
	})

	t.Run("service accounts carry no amr", func(t *testing.T) {
		var c map[string]any
		l.verifiedClaims(l.workerToken(), &c)
		if _, ok := c["amr"]; ok {
			t.Fatalf("client credentials token has amr %v", c["amr"])
		}
	})

	t.Run("admin API reports the OTP credential", func(t *testing.T) {
		u, err := l.gc.GetUserByID(l.ctx, l.workerToken(), Realm, l.userID("bob"))
		if err != nil || u.Totp == nil || !*u.Totp {
			t.Fatalf("bob totp = %+v, %v", u.Totp, err)
		}
	})
}

// labRealmWith returns the lab's iru realm export changed by edit.
func labRealmWith(t *testing.T, edit func(doc map[string]any)) []byte {
	t.Helper()
	raw, err := seedFS.ReadFile("realms/iru.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setRealmRoles(doc map[string]any, username string, roles ...string) {
	for _, u := range doc["users"].([]any) {
		if u := u.(map[string]any); u["username"] == username {
			u["realmRoles"] = append([]string{"default-roles-iru"}, roles...)
		}
	}
}

// A lead without an OTP credential cannot log in by password alone: making someone ir-lead is
// enough to require the second factor.
func TestNewLeadWithoutOTPIsRefused(t *testing.T) {
	realm := labRealmWith(t, func(doc map[string]any) { setRealmRoles(doc, "jdoe", RoleResponder, RoleLead) })
	l := newLab(t, func(o *Options) { o.Realms = [][]byte{realm} })
	_, err := l.passwordGrant("jdoe", UserPassword, nil)
	apiErr(t, err, http.StatusUnauthorized, "Invalid user credentials")
	_, err = l.passwordGrant("jdoe", UserPassword, gocloak.StringP("123456"))
	apiErr(t, err, http.StatusUnauthorized, "Invalid user credentials")
}

// With the production realm's policy (otpPolicyCodeReusable false) a code works once.
func TestOTPCodeNotReusable(t *testing.T) {
	realm := labRealmWith(t, func(doc map[string]any) { doc["otpPolicyCodeReusable"] = false })
	l := newLab(t, func(o *Options) { o.Realms = [][]byte{realm} })
	code := TOTPCode("bob", l.clock.Now())
	if _, err := l.passwordGrant("bob", UserPassword, &code); err != nil {
		t.Fatalf("first use: %v", err)
	}
	_, err := l.passwordGrant("bob", UserPassword, &code)
	apiErr(t, err, http.StatusUnauthorized, "Invalid user credentials")
	l.clock.Advance(30 * time.Second)
	if _, err := l.passwordGrant("bob", UserPassword, gocloak.StringP(TOTPCode("bob", l.clock.Now()))); err != nil {
		t.Fatalf("next step's code: %v", err)
	}
}

func TestBruteForceLockout(t *testing.T) {
	const failureFactor = 5 // the realm's failureFactor
	right := func(l *lab) error {
		_, err := l.passwordGrant("bob", UserPassword, gocloak.StringP(TOTPCode("bob", l.clock.Now())))
		return err
	}
	t.Run("wrong passwords lock the account, then the right one is refused too", func(t *testing.T) {
		l := newLab(t)
		for i := 0; i < failureFactor; i++ {
			l.clock.Advance(2 * time.Second) // slower than the quick-login check
			_, err := l.passwordGrant("bob", "guess-"+string(rune('a'+i)), nil)
			apiErr(t, err, http.StatusUnauthorized, "Invalid user credentials")
		}
		l.clock.Advance(2 * time.Second)
		err := right(l)
		apiErr(t, err, http.StatusBadRequest, "invalid_grant: Invalid user credentials")
		if got := l.lastLoginError("bob"); got != "user_temporarily_disabled" {
			t.Fatalf("LOGIN_ERROR error = %q, want user_temporarily_disabled", got)
		}
		if enabled, _ := l.srv.UserEnabled(Realm, "bob"); !enabled {
			t.Fatal("temporary lockout disabled the account")
		}
		// waitIncrementSeconds (60) after the failureFactor-th failure, the lockout ends.
		l.clock.Advance(61 * time.Second)
		if err := right(l); err != nil {
			t.Fatalf("after the wait: %v", err)
		}
	})
	t.Run("wrong one-time codes count as failures", func(t *testing.T) {
		l := newLab(t)
		for i := 0; i < failureFactor; i++ {
			l.clock.Advance(2 * time.Second)
			_, err := l.passwordGrant("bob", UserPassword, gocloak.StringP("999999"))
			apiErr(t, err, http.StatusUnauthorized, "Invalid user credentials")
		}
		apiErr(t, right(l), http.StatusBadRequest, "Invalid user credentials")
	})
	t.Run("fewer failures than failureFactor do not lock", func(t *testing.T) {
		l := newLab(t)
		for i := 0; i < failureFactor-1; i++ {
			l.clock.Advance(2 * time.Second)
			_, _ = l.passwordGrant("bob", "wrong", nil)
		}
		l.clock.Advance(2 * time.Second)
		if err := right(l); err != nil {
			t.Fatalf("locked after %d failures: %v", failureFactor-1, err)
		}
	})
	t.Run("two failures within quickLoginCheckMilliSeconds lock for minimumQuickLoginWaitSeconds", func(t *testing.T) {
		l := newLab(t)
		_, _ = l.passwordGrant("bob", "wrong", nil)
		l.clock.Advance(200 * time.Millisecond)
		_, _ = l.passwordGrant("bob", "wrong", nil)
		l.clock.Advance(time.Second)
		apiErr(t, right(l), http.StatusBadRequest, "Invalid user credentials")
		l.clock.Advance(60 * time.Second)
		if err := right(l); err != nil {
			t.Fatalf("after minimumQuickLoginWaitSeconds: %v", err)
		}
	})
	t.Run("enabling the user through the admin API clears the lockout", func(t *testing.T) {
		l := newLab(t)
		for i := 0; i < failureFactor; i++ {
			l.clock.Advance(2 * time.Second)
			_, _ = l.passwordGrant("bob", "wrong", nil)
		}
		admin := l.workerToken()
		u, err := l.gc.GetUserByID(l.ctx, admin, Realm, l.userID("bob"))
		if err != nil {
			t.Fatal(err)
		}
		u.Enabled = gocloak.BoolP(true)
		if err := l.gc.UpdateUser(l.ctx, admin, Realm, *u); err != nil {
			t.Fatal(err)
		}
		if err := right(l); err != nil {
			t.Fatalf("after the admin re-enabled bob: %v", err)
		}
	})
	t.Run("without bruteForceProtected nothing locks", func(t *testing.T) {
		realm := labRealmWith(t, func(doc map[string]any) { doc["bruteForceProtected"] = false })
		l := newLab(t, func(o *Options) { o.Realms = [][]byte{realm} })
		for i := 0; i < 3*failureFactor; i++ {
			_, _ = l.passwordGrant("bob", "wrong", nil)
		}
		if err := right(l); err != nil {
			t.Fatalf("unprotected realm locked: %v", err)
		}
	})
}

// The console client (public; the browser console's) requires PKCE with S256: its setting as the
// admin API shows it (the authorization endpoint's refusals are in browser_test.go).
func TestConsoleClientRequiresPKCES256(t *testing.T) {
	l := newLab(t)
	c, err := l.gc.GetClient(l.ctx, l.workerToken(), Realm, l.clientUUID(ConsoleClientID))
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicClient == nil || !*c.PublicClient || c.Attributes == nil || (*c.Attributes)["pkce.code.challenge.method"] != "S256" {
		t.Fatalf("console client public=%v attributes=%v", c.PublicClient, c.Attributes)
	}
}

func TestBadAuthFlowsRefusedOnLoad(t *testing.T) {
	tests := []struct {
		name string
		edit func(doc map[string]any)
	}{
		{"unknown direct grant flow", func(doc map[string]any) { doc["directGrantFlow"] = "nowhere" }},
		{"authenticator the simulator does not run", func(doc map[string]any) {
			for _, f := range doc["authenticationFlows"].([]any) {
				f := f.(map[string]any)
				if f["alias"] == "iru direct grant - OTP by role" {
					f["authenticationExecutions"].([]any)[1].(map[string]any)["authenticator"] = "direct-grant-auth-x509-username"
				}
			}
		}},
		{"hotp credentials", func(doc map[string]any) { doc["otpPolicyType"] = "hotp" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Options{KeyBits: 1024, Realms: [][]byte{labRealmWith(t, tt.edit)}}); err == nil {
				t.Fatal("realm loaded")
			}
		})
	}
}
