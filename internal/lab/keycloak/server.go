// Package keycloak is an in-process simulator of Keycloak 23 for the lab and for tests.
//
// It serves, without the legacy /auth prefix, the per-realm OpenID Connect endpoints
// (discovery, authorization with the browser login and PKCE, token with the authorization_code,
// password, client_credentials and refresh_token grants, JWKS, introspection, userinfo, logout,
// revoke) and the part of the Admin REST API the platform uses
// (users, sessions, clients and secrets, realm not-before, push-revocation, logout-all, events,
// admin events, roles and role mappings). Tokens are RS256 JWTs that go-oidc verifies, and the
// unmodified gocloak and go-oidc clients work against it; pointing the platform at a real Keycloak
// only changes the URL and credentials.
//
// The password grant runs the realm's direct grant flow and the browser login its browser flow
// (login form, then an OTP form) (username, password, and conditional
// subflows that ask for a TOTP code by role or when the user has one: RFC 6238 with the realm's
// OTP policy) under the realm's brute-force detection; tokens get the claims of the clients'
// protocol mappers (hardcoded, role, attribute, audience and AMR mappers).
//
// Realms are loaded from Keycloak realm-export JSON files embedded from realms/*.json: the same
// files a real Keycloak imports with --import-realm. Lab credentials are the exported constants.
// A real Keycloak creates its master realm at first start (KEYCLOAK_ADMIN/KEYCLOAK_ADMIN_PASSWORD,
// which must then be AdminUsername/AdminPassword) and skips importing realms/master.json; the
// iru realm imports as is, and Keycloak itself adds the built-in clients (realm-management,
// account, admin-cli, ...) and service-account users that the simulator also adds on load.
//
// Lab controls live outside /realms and /admin, under /_lab: fault injection (PUT /_lab/faults)
// and signing-key rotation (POST /_lab/realms/{realm}/rotate-key).
package keycloak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configures a Server. The zero value serves the embedded seed on DefaultAddr.
type Options struct {
	// Addr is the listen address of Start; empty means DefaultAddr. Port 0 picks a free port.
	Addr string
	// Now is the clock for token times, expiry, sessions and events; nil means time.Now.
	// Tests pass a controllable clock to test expiry without sleeping.
	Now func() time.Time
	// Realms are realm-export JSON documents that replace the embedded seed; nil loads realms/*.json.
	Realms [][]byte
	// AccessTokenLifespans overrides the realm exports' accessTokenLifespan per realm name.
	AccessTokenLifespans map[string]time.Duration
	// KeyRotationOverlap is how long a rotated-out signing key stays in the JWKS and keeps
	// verifying tokens; zero means 10 minutes.
	KeyRotationOverlap time.Duration
	// KeyBits is the RSA key size; zero means 2048.
	KeyBits int
	// FrontendURL fixes the base of token issuers (Keycloak's hostname setting, e.g.
	// "http://keycloak:8080"). Empty derives it from each request's Host, as Keycloak does by default.
	FrontendURL string
	// Logger receives one debug line per request; nil discards.
	Logger *slog.Logger
}

// Server is a running (or ready to run) Keycloak simulator. All methods are safe for concurrent use.
type Server struct {
	opts    Options
	now     func() time.Time
	log     *slog.Logger
	overlap time.Duration
	keyBits int

	mu     sync.Mutex
	realms map[string]*realm

	faults *faultSet

	handler  http.Handler
	srvMu    sync.Mutex
	srv      *http.Server
	url      string
	closed   chan struct{}
	closeOne sync.Once
}

// New builds a server from opts, loading and validating the realm exports and generating one
// signing key per realm. It does not listen: call Start, or mount Handler.
func New(opts Options) (*Server, error) {
	s := &Server{
		opts:    opts,
		now:     opts.Now,
		log:     opts.Logger,
		overlap: opts.KeyRotationOverlap,
		keyBits: opts.KeyBits,
		realms:  map[string]*realm{},
		faults:  newFaultSet(),
		closed:  make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.overlap <= 0 {
		s.overlap = 10 * time.Minute
	}
	if s.keyBits == 0 {
		s.keyBits = 2048
	}
	var exports []*realmExport
	if opts.Realms == nil {
		sub, err := fs.Sub(seedFS, "realms")
		if err != nil {
			return nil, fmt.Errorf("open embedded realms: %w", err)
		}
		if exports, err = loadSeed(sub); err != nil {
			return nil, fmt.Errorf("load embedded realms: %w", err)
		}
	} else {
		for i, b := range opts.Realms {
			rx, err := parseRealmExport(b)
			if err != nil {
				return nil, fmt.Errorf("load realm document %d: %w", i, err)
			}
			exports = append(exports, rx)
		}
	}
	names := realmNames(exports)
	now := s.now()
	for _, rx := range exports {
		if _, dup := s.realms[rx.Realm]; dup {
			return nil, fmt.Errorf("load realms: realm %q defined twice", rx.Realm)
		}
		r, err := buildRealm(rx, names, now.UnixMilli())
		if err != nil {
			return nil, fmt.Errorf("build realm %s: %w", rx.Realm, err)
		}
		if d, ok := opts.AccessTokenLifespans[r.name]; ok && d > 0 {
			r.accessTokenLifespan = int(d / time.Second)
		}
		k, err := newSigningKey(s.keyBits, now)
		if err != nil {
			return nil, fmt.Errorf("build realm %s: %w", rx.Realm, err)
		}
		r.keys = []*signingKey{k}
		s.realms[r.name] = r
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the simulator's HTTP handler (for httptest.NewServer or an existing mux).
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on Options.Addr and serves until ctx is done or Close is called. It returns once
// the listener is open, so URL is valid afterwards.
func (s *Server) Start(ctx context.Context) error {
	addr := s.opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("keycloak simulator listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.srvMu.Lock()
	if s.srv != nil {
		s.srvMu.Unlock()
		_ = ln.Close()
		return errors.New("keycloak simulator: already started")
	}
	s.srv = srv
	s.url = "http://" + ln.Addr().String()
	s.srvMu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("keycloak simulator serve failed", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.closed:
		}
	}()
	return nil
}

// URL returns the base URL (no trailing slash, no /auth) once Start returned; empty before.
func (s *Server) URL() string {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	return s.url
}

// Close stops the listener, releases requests held by a "hang" fault and closes connections.
func (s *Server) Close() {
	s.closeOne.Do(func() { close(s.closed) })
	s.srvMu.Lock()
	srv := s.srv
	s.srvMu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
	}
}

// RotateSigningKey makes a new RS256 key the realm's active key and returns its kid. New tokens
// carry the new kid; the previous keys stay in the JWKS and keep verifying for
// Options.KeyRotationOverlap.
func (s *Server) RotateSigningKey(realmName string) (string, error) {
	k, err := newSigningKey(s.keyBits, s.now())
	if err != nil {
		return "", fmt.Errorf("rotate signing key of realm %s: %w", realmName, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.realms[realmName]
	if !ok {
		return "", fmt.Errorf("rotate signing key: %w: %s", ErrRealmNotFound, realmName)
	}
	retire := k.created.Add(s.overlap)
	for _, old := range r.keys {
		if old.retireAt.IsZero() {
			old.retireAt = retire
		}
	}
	r.keys = append(r.keys, k)
	return k.kid, nil
}

// SigningKeyID returns the kid of the realm's active signing key.
func (s *Server) SigningKeyID(realmName string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.realms[realmName]
	if !ok {
		return "", fmt.Errorf("signing key id: %w: %s", ErrRealmNotFound, realmName)
	}
	return r.activeKey().kid, nil
}

// ErrRealmNotFound is returned by the inspection helpers for an unknown realm.
var ErrRealmNotFound = errors.New("realm not found")

// ErrUserNotFound is returned by the inspection helpers for an unknown user.
var ErrUserNotFound = errors.New("user not found")

// UserEnabled reports whether username may log in to realmName.
func (s *Server) UserEnabled(realmName, username string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.realms[realmName]
	if !ok {
		return false, fmt.Errorf("user enabled: %w: %s", ErrRealmNotFound, realmName)
	}
	u := r.userByUsername(strings.ToLower(username))
	if u == nil {
		return false, fmt.Errorf("user enabled: %w: %s", ErrUserNotFound, username)
	}
	return u.enabled, nil
}

// SessionInfo describes one live user session, for tests.
type SessionInfo struct {
	// ID is the session id (the tokens' sid and session_state).
	ID string
	// UserID is the Keycloak user id.
	UserID string
	// Clients are the clientIds that hold tokens in the session.
	Clients []string
	// Start and LastAccess are the session's creation and last refresh times.
	Start, LastAccess time.Time
}

// Sessions lists the live sessions of username in realmName, oldest first.
func (s *Server) Sessions(realmName, username string) ([]SessionInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.realms[realmName]
	if !ok {
		return nil, fmt.Errorf("sessions: %w: %s", ErrRealmNotFound, realmName)
	}
	u := r.userByUsername(strings.ToLower(username))
	if u == nil {
		return nil, fmt.Errorf("sessions: %w: %s", ErrUserNotFound, username)
	}
	r.expireSessions(s.now())
	var out []SessionInfo
	for _, ss := range r.sessions {
		if ss.userID != u.id {
			continue
		}
		info := SessionInfo{ID: ss.id, UserID: ss.userID, Start: ss.start, LastAccess: ss.lastAccess}
		for _, cid := range ss.clients {
			info.Clients = append(info.Clients, cid)
		}
		sort.Strings(info.Clients)
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Start.Equal(out[j].Start) {
			return out[i].ID < out[j].ID
		}
		return out[i].Start.Before(out[j].Start)
	})
	return out, nil
}

// Events returns the stored user events of realmName, newest first.
func (s *Server) Events(realmName string) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.realms[realmName]
	if !ok {
		return nil, fmt.Errorf("events: %w: %s", ErrRealmNotFound, realmName)
	}
	out := make([]Event, len(r.events))
	for i, e := range r.events {
		out[len(out)-1-i] = e
	}
	return out, nil
}

// AdminEvents returns the stored admin events of realmName, newest first.
func (s *Server) AdminEvents(realmName string) ([]AdminEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.realms[realmName]
	if !ok {
		return nil, fmt.Errorf("admin events: %w: %s", ErrRealmNotFound, realmName)
	}
	out := make([]AdminEvent, len(r.adminEvents))
	for i, e := range r.adminEvents {
		out[len(out)-1-i] = e
	}
	return out, nil
}
