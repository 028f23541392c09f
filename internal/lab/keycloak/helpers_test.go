package keycloak

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
)

// testClock is a controllable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now().Truncate(time.Second)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// lab is one simulator behind an httptest server, with a gocloak client pointed at it.
type lab struct {
	t     testing.TB
	srv   *Server
	hs    *httptest.Server
	clock *testClock
	gc    *gocloak.GoCloak
	ctx   context.Context
}

func newLab(t testing.TB, mutate ...func(*Options)) *lab {
	t.Helper()
	clock := newTestClock()
	opts := Options{Now: clock.Now, KeyBits: 1024}
	for _, m := range mutate {
		m(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &lab{t: t, srv: srv, hs: hs, clock: clock, gc: gocloak.NewClient(hs.URL), ctx: ctx}
}

// adminToken logs the master admin in (gocloak LoginAdmin).
func (l *lab) adminToken() string {
	l.t.Helper()
	jwt, err := l.gc.LoginAdmin(l.ctx, AdminUsername, AdminPassword, MasterRealm)
	if err != nil {
		l.t.Fatalf("LoginAdmin: %v", err)
	}
	return jwt.AccessToken
}

// workerToken logs the iru-worker service account in (gocloak LoginClient).
func (l *lab) workerToken() string {
	l.t.Helper()
	jwt, err := l.gc.LoginClient(l.ctx, WorkerClientID, WorkerClientSecret, Realm)
	if err != nil {
		l.t.Fatalf("LoginClient: %v", err)
	}
	return jwt.AccessToken
}

// login logs a seeded iru user in through the public console client, with the user's current
// one-time code when the lab gives them a TOTP seed (gocloak LoginOtp sends it as "totp").
func (l *lab) login(username string) *gocloak.JWT {
	l.t.Helper()
	var (
		jwt *gocloak.JWT
		err error
	)
	if code := TOTPCode(username, l.clock.Now()); code != "" {
		jwt, err = l.gc.GetToken(l.ctx, Realm, gocloak.TokenOptions{
			ClientID: gocloak.StringP(ConsoleClientID), GrantType: gocloak.StringP("password"),
			Username: gocloak.StringP(username), Password: gocloak.StringP(UserPassword),
			Totp: gocloak.StringP(code), Scopes: &[]string{"openid"},
		})
	} else {
		jwt, err = l.gc.Login(l.ctx, ConsoleClientID, "", Realm, username, UserPassword)
	}
	if err != nil {
		l.t.Fatalf("Login %s: %v", username, err)
	}
	return jwt
}

// active introspects tok as the API server does (gocloak RetrospectToken).
func (l *lab) active(tok string) bool {
	l.t.Helper()
	res, err := l.gc.RetrospectToken(l.ctx, tok, APIClientID, APIClientSecret, Realm)
	if err != nil {
		l.t.Fatalf("RetrospectToken: %v", err)
	}
	return res.Active != nil && *res.Active
}

func (l *lab) userID(username string) string {
	l.t.Helper()
	users, err := l.gc.GetUsers(l.ctx, l.workerToken(), Realm, gocloak.GetUsersParams{Username: gocloak.StringP(username), Exact: gocloak.BoolP(true)})
	if err != nil || len(users) != 1 {
		l.t.Fatalf("GetUsers %s: %v (%d users)", username, err, len(users))
	}
	return *users[0].ID
}

func (l *lab) clientUUID(clientID string) string {
	l.t.Helper()
	clients, err := l.gc.GetClients(l.ctx, l.workerToken(), Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(clientID)})
	if err != nil || len(clients) != 1 {
		l.t.Fatalf("GetClients %s: %v (%d clients)", clientID, err, len(clients))
	}
	return *clients[0].ID
}

// do sends a raw request and returns the response with its body read.
func (l *lab) do(method, path, token string, body io.Reader, header ...string) (*http.Response, string) {
	l.t.Helper()
	req, err := http.NewRequestWithContext(l.ctx, method, l.hs.URL+path, body)
	if err != nil {
		l.t.Fatalf("new request: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := l.hs.Client().Do(req)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		l.t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// apiErr asserts err is a *gocloak.APIError with code and a message containing want.
func apiErr(t *testing.T, err error, code int, want string) {
	t.Helper()
	var ae *gocloak.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not a *gocloak.APIError", err, err)
	}
	if ae.Code != code || !strings.Contains(ae.Message, want) {
		t.Fatalf("APIError = %d %q, want %d containing %q", ae.Code, ae.Message, code, want)
	}
}
