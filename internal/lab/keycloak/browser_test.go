package keycloak

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const consoleRedirect = "http://127.0.0.1/callback"

// browser is a user agent that does not follow redirects (the test reads them).
type browser struct {
	t  *testing.T
	l  *lab
	hc *http.Client
}

func newBrowser(l *lab) *browser {
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: l.t.(*testing.T), l: l, hc: hc}
}

func (b *browser) do(method, u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(b.l.ctx, method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

var formAction = regexp.MustCompile(`<form id="([a-z-]+)" action="([^"]+)"`)

// form returns the id and action of the page's form.
func (b *browser) form(page string) (id, action string) {
	b.t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no form in page:\n%s", page)
	}
	return m[1], strings.ReplaceAll(m[2], "&amp;", "&")
}

// consoleOAuth is the console client as a browser app configures it.
func (l *lab) consoleOAuth() *oauth2.Config {
	iss := l.hs.URL + "/realms/" + Realm
	return &oauth2.Config{
		ClientID:    ConsoleClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: iss + "/protocol/openid-connect/auth", TokenURL: iss + "/protocol/openid-connect/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: consoleRedirect,
		Scopes:      []string{oidc.ScopeOpenID},
	}
}

// login runs the browser login up to the redirect back to the client and returns its query.
func (b *browser) login(authURL, username, password, otp string) url.Values {
	b.t.Helper()
	resp, page := b.do(http.MethodGet, authURL, nil)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("authorization request: %d %s", resp.StatusCode, page)
	}
	id, action := b.form(page)
	if id != "kc-form-login" {
		b.t.Fatalf("first form %q", id)
	}
	resp, page = b.do(http.MethodPost, action, url.Values{"username": {username}, "password": {password}})
	if resp.StatusCode == http.StatusOK && otp != "" {
		id, action = b.form(page)
		if id != "kc-otp-login-form" {
			b.t.Fatalf("expected the OTP form, got %q:\n%s", id, page)
		}
		resp, page = b.do(http.MethodPost, action, url.Values{"otp": {otp}})
	}
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("login did not redirect: %d %s", resp.StatusCode, page)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), consoleRedirect) {
		b.t.Fatalf("redirect to %q", resp.Header.Get("Location"))
	}
	return loc.Query()
}

func TestBrowserLoginWithPKCEAndOTP(t *testing.T) {
	l := newLab(t)
	oc := l.consoleOAuth()
	ctx := context.WithValue(l.ctx, oauth2.HTTPClient, l.hs.Client())
	provider, err := oidc.NewProvider(oidc.ClientContext(l.ctx, l.hs.Client()), l.hs.URL+"/realms/"+Realm)
	if err != nil {
		t.Fatal(err)
	}
	idVerifier := provider.Verifier(&oidc.Config{ClientID: ConsoleClientID, Now: l.clock.Now})

	t.Run("bob: password, then the one-time code, then the code exchanged with its verifier", func(t *testing.T) {
		b := newBrowser(l)
		verifier := oauth2.GenerateVerifier()
		q := b.login(oc.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)), "bob", UserPassword, TOTPCode("bob", l.clock.Now()))
		if q.Get("state") != "st-1" || q.Get("code") == "" || q.Get("iss") != l.hs.URL+"/realms/"+Realm {
			t.Fatalf("redirect query %v", q)
		}
		tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		var c mfaClaims
		l.verifiedClaims(tok.AccessToken, &c)
		if !slices.Equal(c.Amr, []string{"pwd", "otp"}) || c.Sid != q.Get("session_state") {
			t.Fatalf("access token amr/sid = %+v", c)
		}
		rawID, _ := tok.Extra("id_token").(string)
		if _, err := idVerifier.Verify(l.ctx, rawID); err != nil {
			t.Fatalf("id token: %v", err)
		}
		// The code works once.
		if _, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); !oauthErrorIs(err, "invalid_grant", "Code not valid") {
			t.Fatalf("second exchange: %v", err)
		}
	})

	t.Run("alice has no second factor: no OTP form", func(t *testing.T) {
		b := newBrowser(l)
		verifier := oauth2.GenerateVerifier()
		q := b.login(oc.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier)), "alice", UserPassword, "")
		tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		var c mfaClaims
		l.verifiedClaims(tok.AccessToken, &c)
		if !slices.Equal(c.Amr, []string{"pwd"}) {
			t.Fatalf("amr = %q", c.Amr)
		}
	})

	t.Run("a wrong one-time code keeps bob on the OTP form and counts as a failure", func(t *testing.T) {
		b := newBrowser(l)
		_, page := b.do(http.MethodGet, oc.AuthCodeURL("st-3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), nil)
		_, action := b.form(page)
		_, page = b.do(http.MethodPost, action, url.Values{"username": {"bob"}, "password": {UserPassword}})
		_, action = b.form(page)
		resp, page := b.do(http.MethodPost, action, url.Values{"otp": {"000000"}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Invalid authenticator code.") || resp.Header.Get("Location") != "" {
			t.Fatalf("wrong code: %d %s", resp.StatusCode, page)
		}
		if got := l.lastLoginError("bob"); got != "invalid_user_credentials" {
			t.Fatalf("LOGIN_ERROR = %q", got)
		}
	})
}

func oauthErrorIs(err error, code, desc string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code && strings.Contains(re.ErrorDescription, desc)
}

// Attacks on the console client's authorization code flow: it is public, so PKCE with S256 is
// what binds a code to the app that asked for it.
func TestConsoleAuthorizationRequiresPKCES256(t *testing.T) {
	l := newLab(t)
	oc := l.consoleOAuth()
	verifier := oauth2.GenerateVerifier()
	tests := []struct {
		name     string
		url      string
		wantCode int
		wantErr  string // error_description in the redirect, or text of the error page
	}{
		{"no code challenge", oc.AuthCodeURL("s"), http.StatusFound, "Missing parameter: code_challenge_method"},
		{"plain method", oc.AuthCodeURL("s", oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain")), http.StatusFound, "Invalid parameter: code challenge method is not configured one"},
		{"S256 without a challenge", oc.AuthCodeURL("s", oauth2.SetAuthURLParam("code_challenge_method", "S256")), http.StatusFound, "Missing parameter: code_challenge"},
		{"malformed challenge", oc.AuthCodeURL("s", oauth2.SetAuthURLParam("code_challenge", "short"), oauth2.SetAuthURLParam("code_challenge_method", "S256")), http.StatusFound, "Invalid parameter: code_challenge"},
		{"foreign redirect URI", strings.Replace(oc.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), url.QueryEscape(consoleRedirect), url.QueryEscape("https://evil.example/cb"), 1), http.StatusBadRequest, "Invalid parameter: redirect_uri"},
		{"unknown client", strings.Replace(oc.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "client_id="+ConsoleClientID, "client_id=nobody", 1), http.StatusBadRequest, "Client not found."},
		{"confidential client without redirect URIs", strings.Replace(oc.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "client_id="+ConsoleClientID, "client_id="+WorkerClientID, 1), http.StatusBadRequest, "Invalid parameter: redirect_uri"},
	}
	b := newBrowser(l)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, page := b.do(http.MethodGet, tt.url, nil)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantCode, page)
			}
			if tt.wantCode == http.StatusFound {
				loc, _ := url.Parse(resp.Header.Get("Location"))
				q := loc.Query()
				if !strings.HasPrefix(loc.String(), consoleRedirect) || q.Get("error") != "invalid_request" || q.Get("error_description") != tt.wantErr || q.Get("code") != "" {
					t.Fatalf("redirect %s", loc)
				}
				return
			}
			if !strings.Contains(page, tt.wantErr) || strings.Contains(page, "kc-form-login") {
				t.Fatalf("page %s", page)
			}
		})
	}

	// A stolen code is useless without the verifier.
	ctx := context.WithValue(l.ctx, oauth2.HTTPClient, l.hs.Client())
	for _, tt := range []struct {
		name string
		opts []oauth2.AuthCodeOption
		want string
	}{
		{"no verifier", nil, "PKCE code verifier not specified"},
		{"another verifier", []oauth2.AuthCodeOption{oauth2.VerifierOption(oauth2.GenerateVerifier())}, "PKCE verification failed"},
	} {
		t.Run("exchange with "+tt.name, func(t *testing.T) {
			q := newBrowser(l).login(oc.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice", UserPassword, "")
			if _, err := oc.Exchange(ctx, q.Get("code"), tt.opts...); !oauthErrorIs(err, "invalid_grant", tt.want) {
				t.Fatalf("exchange: %v, want invalid_grant %q", err, tt.want)
			}
		})
	}
}

// The nonce of the authorization request comes back in the ID token (go-oidc leaves its check to
// the relying party), and again after a refresh.
func TestBrowserLoginNonceInIDToken(t *testing.T) {
	l := newLab(t)
	oc := l.consoleOAuth()
	ctx := context.WithValue(l.ctx, oauth2.HTTPClient, l.hs.Client())
	provider, err := oidc.NewProvider(oidc.ClientContext(l.ctx, l.hs.Client()), l.hs.URL+"/realms/"+Realm)
	if err != nil {
		t.Fatal(err)
	}
	idVerifier := provider.Verifier(&oidc.Config{ClientID: ConsoleClientID, Now: l.clock.Now})
	verifier := oauth2.GenerateVerifier()
	q := newBrowser(l).login(oc.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-0S6_WzA2Mj")), "alice", UserPassword, "")
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{tok.Extra("id_token").(string), refreshed(t, l, ctx, oc, tok)} {
		id, err := idVerifier.Verify(l.ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		if id.Nonce != "n-0S6_WzA2Mj" {
			t.Fatalf("nonce = %q", id.Nonce)
		}
	}
}

func refreshed(t *testing.T, l *lab, ctx context.Context, oc *oauth2.Config, tok *oauth2.Token) string {
	t.Helper()
	l.clock.Advance(time.Second)
	tok.Expiry = l.clock.Now().Add(-time.Hour)
	next, err := oc.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	raw, _ := next.Extra("id_token").(string)
	return raw
}

// RP-initiated logout: the session ends, and the browser is sent back only to a post-logout
// redirect URI registered for the client named by the ID token.
func TestBrowserEndSession(t *testing.T) {
	l := newLab(t)
	oc := l.consoleOAuth()
	ctx := context.WithValue(l.ctx, oauth2.HTTPClient, l.hs.Client())
	endSession := l.hs.URL + "/realms/" + Realm + "/protocol/openid-connect/logout"
	signIn := func() *oauth2.Token {
		verifier := oauth2.GenerateVerifier()
		q := newBrowser(l).login(oc.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice", UserPassword, "")
		tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	logoutURL := func(v url.Values) string { return endSession + "?" + v.Encode() }

	t.Run("a registered redirect ends the session and carries the state back", func(t *testing.T) {
		tok := signIn()
		resp, _ := newBrowser(l).do(http.MethodGet, logoutURL(url.Values{
			"id_token_hint": {tok.Extra("id_token").(string)}, "post_logout_redirect_uri": {consoleRedirect}, "state": {"bye"},
		}), nil)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != consoleRedirect+"?state=bye" {
			t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if l.active(tok.AccessToken) {
			t.Fatal("access token still active after end-session")
		}
		if _, err := oc.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); !oauthErrorIs(err, "invalid_grant", "") {
			t.Fatalf("refresh after logout: %v", err)
		}
	})

	tests := []struct {
		name     string
		query    func(idToken string) url.Values
		wantPage string
	}{
		{"foreign redirect (open redirect attempt)", func(id string) url.Values {
			return url.Values{"id_token_hint": {id}, "post_logout_redirect_uri": {"https://evil.example/"}}
		}, "Invalid redirect uri"},
		{"redirect without client or hint", func(string) url.Values {
			return url.Values{"post_logout_redirect_uri": {consoleRedirect}}
		}, "Either the parameter client_id or the parameter id_token_hint is required"},
		{"client_id other than the hint's", func(id string) url.Values {
			return url.Values{"id_token_hint": {id}, "client_id": {WorkerClientID}, "post_logout_redirect_uri": {consoleRedirect}}
		}, "Parameter client_id different than the authorized party"},
		{"forged hint", func(id string) url.Values {
			return url.Values{"id_token_hint": {id[:len(id)-4] + "AAAA"}, "post_logout_redirect_uri": {consoleRedirect}}
		}, "Invalid parameter: id_token_hint"},
		{"access token as hint", func(string) url.Values { return nil }, "Invalid parameter: id_token_hint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signIn()
			q := tt.query(tok.Extra("id_token").(string))
			if q == nil {
				q = url.Values{"id_token_hint": {tok.AccessToken}, "post_logout_redirect_uri": {consoleRedirect}}
			}
			resp, page := newBrowser(l).do(http.MethodGet, logoutURL(q), nil)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(page, tt.wantPage) {
				t.Fatalf("logout: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), page)
			}
			if !l.active(tok.AccessToken) {
				t.Fatal("a refused logout ended the session")
			}
		})
	}
}
