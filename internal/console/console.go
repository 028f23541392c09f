// Package console is the responder console: the incident list and the
// incident room in a browser, served by the API server (`starter serve`)
// under /console on the same listener and TLS as the responder API.
//
// People sign in with OIDC (authorization code with PKCE S256) at the
// realm's Keycloak; the console keeps their tokens in a server-side
// session behind an HttpOnly, Secure, SameSite=Strict cookie. Every read
// and every action goes through the responder API's own handlers (package
// api) with the signed-in person's access token, so the console has no
// authorisation of its own: roles, MFA, quorum, four-eyes and the session
// check are the API's. Pages are server-rendered html/template with one
// small script (no inline script: the Content-Security-Policy forbids it);
// open pages are kept current with Server-Sent Events fed by one reader per
// watched incident.
package console

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/playbooks"
)

// Prefix is the path under which the API server mounts the console.
const Prefix = "/console"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// TokenVerifier verifies access tokens as the responder API does;
// *auth.Verifier implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (auth.Identity, error)
}

// Options are the console's configuration and collaborators.
type Options struct {
	Config Config
	// IssuerURL is the Keycloak realm (the responder API's IRU_OIDC_ISSUER).
	IssuerURL string
	// API serves the responder API's routes (api.Responder.Handler): the
	// console calls it in-process with the person's access token.
	API http.Handler
	// Verifier reads the person's roles and amr from the access token
	// (to decide what to show; the API decides what is allowed).
	Verifier TokenVerifier
	// HTTPClient reaches Keycloak (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Log receives errors (nil: discarded).
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Playbooks is the folder of playbook files the playbooks page shows
	// (nil: the embedded ones, what the worker runs without
	// IRU_PLAYBOOKS_DIR).
	Playbooks fs.FS
	// Drills reads the drill schedules and results for the drills page
	// (nil: the page says it cannot).
	Drills DrillSource
}

// Console serves the console's pages.
type Console struct {
	cfg      Config
	base     *url.URL
	issuer   string
	api      http.Handler
	verifier TokenVerifier
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
	store    *store
	hub      *hub
	pages    pages
	// playbooks is the playbook folder the playbooks page reads.
	playbooks fs.FS
	drills    DrillSource

	mu       sync.Mutex // guards provider
	provider *provider
}

// provider is the discovered Keycloak realm.
type provider struct {
	oauth      *oauth2.Config
	idVerifier *oidc.IDTokenVerifier
	endSession string
}

// New returns the console of opts.
func New(opts Options) (*Console, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	base, err := opts.Config.base()
	if err != nil {
		return nil, fmt.Errorf("console: IRU_CONSOLE_URL: %w", err)
	}
	if opts.API == nil || opts.Verifier == nil || opts.IssuerURL == "" {
		return nil, errors.New("console: the responder API, a token verifier and the issuer are required")
	}
	pg, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: opts.Config, base: base, issuer: opts.IssuerURL, api: opts.API, verifier: opts.Verifier,
		client: opts.HTTPClient, log: opts.Log, now: opts.Now, pages: pg, playbooks: opts.Playbooks, drills: opts.Drills}
	if c.playbooks == nil {
		c.playbooks = playbooks.EmbeddedFS()
	}
	if c.client == nil {
		c.client = &http.Client{Timeout: 10 * time.Second}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.store = newStore(opts.Config.SessionTTL, opts.Config.SessionIdle, c.now)
	c.hub = newHub(c, opts.Config.PollInterval)
	return c, nil
}

// Close stops the live readers.
func (c *Console) Close() { c.hub.close() }

// Route is one route of the console.
type Route struct {
	Pattern string
	// Public routes answer without a session (sign-in, static files and
	// the signed-out landing page); every other one needs a session.
	Public bool
	h      http.HandlerFunc
}

// Routes returns the console's routes.
func (c *Console) Routes() []Route {
	inc := Prefix + "/incidents/{id}"
	return []Route{
		{Pattern: "GET " + Prefix + "/{$}", Public: true, h: c.index},
		{Pattern: "GET " + Prefix + "/login", Public: true, h: c.login},
		{Pattern: "GET " + Prefix + "/callback", Public: true, h: c.callback},
		{Pattern: "GET " + Prefix + "/static/", Public: true, h: c.static()},
		{Pattern: "POST " + Prefix + "/logout", h: c.withSession(c.logout)},
		{Pattern: "GET " + Prefix + "/events", h: c.withSession(c.listEvents)},
		{Pattern: "GET " + Prefix + "/playbooks", h: c.withSession(c.playbooksPage)},
		{Pattern: "GET " + Prefix + "/drills", h: c.withSession(c.drillsPage)},
		{Pattern: "GET " + Prefix + "/trends", h: c.withSession(c.trendsPage)},
		{Pattern: "GET " + inc, h: c.withSession(c.room)},
		{Pattern: "GET " + inc + "/events", h: c.withSession(c.roomEvents)},
		{Pattern: "GET " + inc + "/report", h: c.withSession(c.report)},
		{Pattern: "GET " + inc + "/evidence/{sha256}", h: c.withSession(c.download)},
		{Pattern: "POST " + inc + "/steps/{step}/{decision}", h: c.withSession(c.decide)},
		{Pattern: "POST " + inc + "/{action}", h: c.withSession(c.act)},
	}
}

// Handler serves every console route with the console's security headers.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range c.Routes() {
		mux.HandleFunc(rt.Pattern, rt.h)
	}
	return c.secure(mux)
}

// secure sets the headers of every console answer: a Content-Security-
// Policy allowing the console's own script and style only (no inline
// script or style), forms posting to the console or to Keycloak's
// end-session endpoint, no framing, no referrer to other sites, no
// sniffing.
func (c *Console) secure(next http.Handler) http.Handler {
	formAction := "'self'"
	if u, err := url.Parse(c.issuer); err == nil {
		formAction += " " + u.Scheme + "://" + u.Host
	}
	csp := "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin") // "no-referrer" would make Chromium send "Origin: null" on form posts
		h.Set("Strict-Transport-Security", "max-age=31536000")
		if !strings.HasPrefix(r.URL.Path, Prefix+"/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

func (c *Console) static() http.HandlerFunc {
	sub, _ := fs.Sub(staticFS, "static")
	fsrv := http.StripPrefix(Prefix+"/static/", http.FileServerFS(sub))
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		fsrv.ServeHTTP(w, r)
	}
}

// sessionHandler is a handler that needs a signed-in person.
type sessionHandler func(http.ResponseWriter, *http.Request, *session)

// withSession refuses requests without a live session (401 with a link to
// sign in; pages are not redirected so that a stale tab does not start a
// login by itself) and, for POST, without the session's CSRF token or
// from another origin.
func (c *Console) withSession(next sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := c.store.get(r)
		if !ok {
			c.render(w, r, http.StatusUnauthorized, "error", pageData{Title: "Signed out", Error: "You are not signed in, or your session has ended.", SignIn: true})
			return
		}
		if r.Method == http.MethodPost {
			if !c.sameOrigin(r) || !validCSRF(r, sess) {
				c.log.Warn("console: refused a form without the session's CSRF token", "user", sess.who().Username, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
				c.render(w, r, http.StatusForbidden, "error", pageData{Title: "Refused", Error: "This form did not come from your console session (CSRF check failed). Reload the page and try again."})
				return
			}
		}
		next(w, r, sess)
	}
}

// maxForm bounds a console form body.
const maxForm = 16 << 10

func validCSRF(r *http.Request, sess *session) bool {
	r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return false
	}
	got := r.PostForm.Get("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) == 1
}

// sameOrigin refuses a POST whose Origin (when the browser sends one)
// is not the console's.
func (c *Console) sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || o == c.base.Scheme+"://"+c.base.Host
}

// apiAnswer is the responder API's answer to an in-process call.
type apiAnswer struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (a *apiAnswer) Header() http.Header { return a.header }
func (a *apiAnswer) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.body.Write(b)
}
func (a *apiAnswer) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

// apiError is the responder API's error body.
type apiError struct {
	Error string   `json:"error"`
	Code  string   `json:"code"`
	Need  []string `json:"need"`
}

// errSignedOut: the session's tokens no longer work (refresh refused).
var errSignedOut = errors.New("console: the Keycloak session has ended")

// call sends one request to the responder API with the session's access
// token, from the browser's address, in ctx (which carries the request's
// access-log slot when it comes from a page request).
func (c *Console) call(ctx context.Context, remoteAddr string, sess *session, method, path string, body any) (*apiAnswer, error) {
	req, err := c.apiRequest(ctx, remoteAddr, sess, method, path, body)
	if err != nil {
		return nil, err
	}
	ans := &apiAnswer{header: http.Header{}}
	c.api.ServeHTTP(ans, req)
	if ans.status == 0 {
		ans.status = http.StatusOK
	}
	return ans, nil
}

// apiRequest is a request to the responder API as the session's person.
func (c *Console) apiRequest(ctx context.Context, remoteAddr string, sess *session, method, path string, body any) (*http.Request, error) {
	tok, err := c.accessToken(ctx, sess)
	if err != nil {
		return nil, err
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("console: encode %s body: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return nil, fmt.Errorf("console: %s %s: %w", method, path, err)
	}
	req.RemoteAddr = remoteAddr
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// decode reads a 200 answer into v, or returns the API's error.
func (a *apiAnswer) decode(v any) error {
	if a.status/100 != 2 {
		return a.err()
	}
	if err := json.Unmarshal(a.body.Bytes(), v); err != nil {
		return fmt.Errorf("console: decode API answer: %w", err)
	}
	return nil
}

// apiFailure is an error answer of the responder API.
type apiFailure struct {
	status int
	apiError
}

func (e *apiFailure) Error() string {
	msg := e.apiError.Error
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if len(e.Need) > 0 {
		msg += "; needs one of the roles " + strings.Join(e.Need, ", ")
	}
	return msg
}

func (a *apiAnswer) err() error {
	f := &apiFailure{status: a.status}
	if json.Unmarshal(a.body.Bytes(), &f.apiError) != nil || f.apiError.Error == "" {
		f.apiError.Error = http.StatusText(a.status)
	}
	return f
}

// statusOf is the HTTP status to answer for err.
func statusOf(err error) int {
	var f *apiFailure
	switch {
	case errors.As(err, &f):
		return f.status
	case errors.Is(err, errSignedOut):
		return http.StatusUnauthorized
	}
	return http.StatusBadGateway
}

// accessToken returns the session's access token, refreshed at Keycloak
// when it has expired; a refused refresh ends the session.
func (c *Console) accessToken(ctx context.Context, sess *session) (string, error) {
	p, err := c.getProvider(ctx)
	if err != nil {
		return "", err
	}
	sess.mu.Lock()
	cur := sess.token
	sess.mu.Unlock()
	tok, err := p.oauth.TokenSource(oidc.ClientContext(ctx, c.client), cur).Token()
	if err != nil {
		c.store.end(sess.id)
		return "", fmt.Errorf("%w: %v", errSignedOut, err)
	}
	if tok.AccessToken != cur.AccessToken {
		id, err := c.verifier.Verify(ctx, tok.AccessToken)
		if err != nil {
			c.store.end(sess.id)
			return "", fmt.Errorf("%w: refreshed token: %v", errSignedOut, err)
		}
		if raw, ok := tok.Extra("id_token").(string); ok && raw != "" {
			sess.mu.Lock()
			sess.idToken = raw
			sess.mu.Unlock()
		}
		sess.mu.Lock()
		sess.token, sess.identity = tok, id
		sess.mu.Unlock()
	}
	return tok.AccessToken, nil
}
