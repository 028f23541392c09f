package console

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// getProvider discovers the realm on first use (and again after a
// failure), so the API server can start before Keycloak answers.
func (c *Console) getProvider(ctx context.Context) (*provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider != nil {
		return c.provider, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(context.WithoutCancel(ctx), c.client), c.issuer)
	if err != nil {
		return nil, fmt.Errorf("console: discover %s: %w", c.issuer, err)
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&extra); err != nil {
		return nil, fmt.Errorf("console: discovery document of %s: %w", c.issuer, err)
	}
	c.provider = &provider{
		oauth: &oauth2.Config{ClientID: c.cfg.ClientID, Endpoint: p.Endpoint(), RedirectURL: c.base.String() + "/callback",
			Scopes: []string{oidc.ScopeOpenID}},
		idVerifier: p.Verifier(&oidc.Config{ClientID: c.cfg.ClientID, Now: c.now}),
		endSession: extra.EndSession,
	}
	c.provider.oauth.Endpoint.AuthStyle = oauth2.AuthStyleInParams // a public client has no secret
	return c.provider, nil
}

// login starts the authorization code flow: a new state, nonce and PKCE
// verifier, the state bound to this browser by the login cookie.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	p, err := c.getProvider(r.Context())
	if err != nil {
		c.log.Error("console: sign-in unavailable", "err", err)
		c.render(w, r, http.StatusServiceUnavailable, "error", pageData{Title: "Sign-in unavailable", Error: "Keycloak cannot be reached; try again shortly."})
		return
	}
	pl := pendingLogin{verifier: oauth2.GenerateVerifier(), nonce: randomID(), next: localPath(r.URL.Query().Get("next"))}
	state, ok := c.store.beginLogin(pl)
	if !ok {
		c.render(w, r, http.StatusServiceUnavailable, "error", pageData{Title: "Busy", Error: "Too many sign-ins in progress; try again shortly."})
		return
	}
	setCookie(w, loginCookie, state, int(loginTTL.Seconds()), http.SameSiteLaxMode)
	http.Redirect(w, r, p.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(pl.verifier), oidc.Nonce(pl.nonce)), http.StatusFound)
}

// localPath keeps a post-login destination inside the console.
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, Prefix+"/") || strings.Contains(next, "\\") || strings.HasPrefix(next, "//") {
		return Prefix + "/"
	}
	return u.RequestURI()
}

// callback takes Keycloak's answer: the state must be this browser's, the
// code is exchanged with the PKCE verifier, the ID token verified (issuer,
// audience, expiry, signature, nonce) and the access token verified as the
// API verifies it. Then the session starts.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fail := func(status int, msg string, args ...any) {
		c.log.Warn("console: sign-in refused", append([]any{"reason", msg}, args...)...)
		c.render(w, r, status, "error", pageData{Title: "Sign-in failed", Error: msg, SignIn: true})
	}
	cookie, err := r.Cookie(loginCookie)
	setCookie(w, loginCookie, "", -1, http.SameSiteLaxMode)
	state := q.Get("state")
	if err != nil || state == "" || cookie.Value != state {
		fail(http.StatusBadRequest, "This sign-in was not started by this browser.")
		return
	}
	pl, ok := c.store.takeLogin(state)
	if !ok {
		fail(http.StatusBadRequest, "This sign-in has expired or was already used.")
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusUnauthorized, "Keycloak refused the sign-in: "+q.Get("error_description"), "error", e)
		return
	}
	p, err := c.getProvider(r.Context())
	if err != nil {
		fail(http.StatusServiceUnavailable, "Keycloak cannot be reached.", "err", err)
		return
	}
	ctx := oidc.ClientContext(r.Context(), c.client)
	tok, err := p.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pl.verifier))
	if err != nil {
		fail(http.StatusUnauthorized, "The sign-in code was refused.", "err", err)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := p.idVerifier.Verify(ctx, rawID)
	if err != nil {
		fail(http.StatusUnauthorized, "The ID token does not verify.", "err", err)
		return
	}
	if subtleEq(idt.Nonce, pl.nonce) != 1 {
		fail(http.StatusUnauthorized, "The ID token belongs to another sign-in (nonce).")
		return
	}
	id, err := c.verifier.Verify(r.Context(), tok.AccessToken)
	if err != nil {
		fail(http.StatusUnauthorized, "The access token is not accepted by the responder API.", "err", err)
		return
	}
	sess := c.store.create(tok, rawID, id)
	setCookie(w, sessionCookie, sess.id, int(c.cfg.SessionTTL.Seconds()), http.SameSiteStrictMode)
	c.log.Info("console: signed in", "user", id.Username, "amr", id.AMR)
	// The session cookie is SameSite=Strict: the browser would not send it
	// on a redirect that continues Keycloak's cross-site navigation, so the
	// next page is loaded from this (same-site) page.
	c.render(w, r, http.StatusOK, "continue", pageData{Title: "Signed in", Next: pl.next})
}

// logout ends the console session and then the Keycloak session
// (RP-initiated logout with the ID token as hint).
func (c *Console) logout(w http.ResponseWriter, r *http.Request, sess *session) {
	c.store.end(sess.id)
	setCookie(w, sessionCookie, "", -1, http.SameSiteStrictMode)
	sess.mu.Lock()
	hint := sess.idToken
	sess.mu.Unlock()
	c.log.Info("console: signed out", "user", sess.who().Username)
	p, err := c.getProvider(r.Context())
	if err != nil || p.endSession == "" {
		http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
		return
	}
	v := url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {c.base.String() + "/"}, "client_id": {c.cfg.ClientID}}
	http.Redirect(w, r, p.endSession+"?"+v.Encode(), http.StatusSeeOther)
}

func subtleEq(a, b string) int { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) }
