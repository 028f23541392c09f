package console

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/iru-responder/responder/internal/auth"
)

// Cookie names. The session cookie is a __Host- cookie (Secure, Path=/, no
// Domain) and SameSite=Strict; the login cookie binds the authorization
// response to the browser that asked for it and must survive the redirect
// back from Keycloak, so it is SameSite=Lax and lives ten minutes.
const (
	sessionCookie = "__Host-iru-console"
	loginCookie   = "__Host-iru-console-login"
)

// loginTTL bounds a login in progress (from /login to /callback).
const loginTTL = 10 * time.Minute

// session is one signed-in browser. Its id is the cookie value; nothing of
// it but the id leaves the server.
type session struct {
	id   string
	csrf string

	mu       sync.Mutex // guards the fields below
	token    *oauth2.Token
	idToken  string
	identity auth.Identity
	created  time.Time
	lastSeen time.Time
	flash    string
}

// pendingLogin is a login between /login and /callback.
type pendingLogin struct {
	verifier, nonce, next string
	created               time.Time
}

// store holds sessions and logins in progress in memory: a restart of the
// API server signs everyone out.
type store struct {
	ttl, idle time.Duration
	now       func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
	logins   map[string]pendingLogin // by state
}

func newStore(ttl, idle time.Duration, now func() time.Time) *store {
	return &store{ttl: ttl, idle: idle, now: now, sessions: map[string]*session{}, logins: map[string]pendingLogin{}}
}

// randomID is 256 random bits, base64url.
func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// maxLogins bounds logins in progress (each is a GET of /login, anonymous).
const maxLogins = 10000

// beginLogin records a login under a new state.
func (s *store) beginLogin(p pendingLogin) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for st, l := range s.logins {
		if now.Sub(l.created) > loginTTL {
			delete(s.logins, st)
		}
	}
	if len(s.logins) >= maxLogins {
		return "", false
	}
	p.created = now
	state := randomID()
	s.logins[state] = p
	return state, true
}

// takeLogin removes and returns the login of state (once).
func (s *store) takeLogin(state string) (pendingLogin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.logins[state]
	delete(s.logins, state)
	if !ok || s.now().Sub(p.created) > loginTTL {
		return pendingLogin{}, false
	}
	return p, true
}

// create starts a session.
func (s *store) create(tok *oauth2.Token, idToken string, id auth.Identity) *session {
	now := s.now()
	sess := &session{id: randomID(), csrf: randomID(), token: tok, idToken: idToken, identity: id, created: now, lastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, o := range s.sessions {
		if !s.live(o, now) {
			delete(s.sessions, k)
		}
	}
	s.sessions[sess.id] = sess
	return sess
}

// live reports whether sess is within its TTL and idle time.
func (s *store) live(sess *session, now time.Time) bool {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return now.Sub(sess.created) < s.ttl && now.Sub(sess.lastSeen) < s.idle
}

// get returns the live session of r's cookie and marks it used.
func (s *store) get(r *http.Request) (*session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, false
	}
	s.mu.Lock()
	sess, ok := s.sessions[c.Value]
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	now := s.now()
	if !s.live(sess, now) {
		s.end(sess.id)
		return nil, false
	}
	sess.mu.Lock()
	sess.lastSeen = now
	sess.mu.Unlock()
	return sess, true
}

// active reports whether the session still exists and is live, without
// marking it used (live streams ask this on every push).
func (s *store) active(sess *session) bool {
	s.mu.Lock()
	_, ok := s.sessions[sess.id]
	s.mu.Unlock()
	return ok && s.live(sess, s.now())
}

// end removes a session.
func (s *store) end(id string) {
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
}

// takeFlash returns and clears the session's one-time message.
func (sess *session) takeFlash() string {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	f := sess.flash
	sess.flash = ""
	return f
}

func (sess *session) setFlash(msg string) {
	sess.mu.Lock()
	sess.flash = msg
	sess.mu.Unlock()
}

func (sess *session) who() auth.Identity {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.identity
}

func setCookie(w http.ResponseWriter, name, value string, maxAge int, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: true, SameSite: sameSite})
}
