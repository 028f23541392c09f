//go:build integration

package keycloak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	kclab "github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
)

// memEvidence is an in-memory EvidenceStore.
type memEvidence struct {
	mu    sync.Mutex
	items []storedEvidence
}

type storedEvidence struct {
	ref  string
	item activities.EvidenceItem
	body []byte
}

func (m *memEvidence) PutEvidence(_ context.Context, item activities.EvidenceItem) (string, error) {
	b, err := io.ReadAll(item.Body)
	if err != nil {
		return "", fmt.Errorf("read evidence body: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ref := fmt.Sprintf("evidence://%s/%d", item.IncidentID, len(m.items)+1)
	item.Body = nil
	m.items = append(m.items, storedEvidence{ref: ref, item: item, body: b})
	return ref, nil
}

func (m *memEvidence) get(ref string) (storedEvidence, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, it := range m.items {
		if it.ref == ref {
			return it, true
		}
	}
	return storedEvidence{}, false
}

func (m *memEvidence) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

func (m *memEvidence) all() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, it := range m.items {
		b.Write(it.body)
	}
	return b.String()
}

// memSecrets is an in-memory SecretSink; failNext makes the next store fail
// with an error that echoes the secret (to prove it is redacted).
type memSecrets struct {
	mu       sync.Mutex
	byRef    map[string]string
	stores   int
	failNext bool
}

func (m *memSecrets) StoreSecret(_ context.Context, item activities.SecretItem) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext {
		m.failNext = false
		return "", fmt.Errorf("sink down while storing %q", item.Value)
	}
	if m.byRef == nil {
		m.byRef = map[string]string{}
	}
	m.stores++
	ref := fmt.Sprintf("secret://%s/v%d", item.Name, m.stores)
	m.byRef[ref] = string(item.Value)
	return ref, nil
}

func (m *memSecrets) read(ref string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.byRef[ref]
	return v, ok
}

// testClock is a settable clock shared by the lab and the activities.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

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

// countingTransport counts token requests.
type countingTransport struct {
	next   http.RoundTripper
	tokens atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/token") {
		c.tokens.Add(1)
	}
	return c.next.RoundTrip(r)
}

// env is one started simulator and the activities pointed at it.
type env struct {
	t        *testing.T
	ctx      context.Context
	lab      *kclab.Server
	gc       *gocloak.GoCloak // an independent client for checks
	clock    *testClock
	acts     *Activities
	evidence *memEvidence
	secrets  *memSecrets
	tr       *countingTransport
}

func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	clock := &testClock{t: time.Now().Truncate(time.Second)}
	lab, err := kclab.New(kclab.Options{Addr: "127.0.0.1:0", Now: clock.Now, KeyBits: 1024})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	if err := lab.Start(ctx); err != nil {
		t.Fatalf("lab start: %v", err)
	}
	t.Cleanup(lab.Close)
	cfg := Config{
		URL: lab.URL(), Realm: kclab.Realm, ClientID: kclab.WorkerClientID,
		ClientSecret: kclab.WorkerClientSecret, Timeout: 5 * time.Second,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	e := &env{t: t, ctx: ctx, lab: lab, gc: gocloak.NewClient(lab.URL()), clock: clock, evidence: &memEvidence{}, secrets: &memSecrets{}}
	acts, err := New(cfg, e.evidence, e.secrets)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	acts.now = clock.Now
	e.tr = &countingTransport{next: http.DefaultTransport}
	acts.gc.RestyClient().SetTransport(e.tr)
	e.acts = acts
	return e
}

func (e *env) adminToken() string {
	e.t.Helper()
	j, err := e.gc.LoginAdmin(e.ctx, kclab.AdminUsername, kclab.AdminPassword, kclab.MasterRealm)
	if err != nil {
		e.t.Fatalf("LoginAdmin: %v", err)
	}
	return j.AccessToken
}

func (e *env) user(username string) *gocloak.User {
	e.t.Helper()
	users, err := e.gc.GetUsers(e.ctx, e.adminToken(), kclab.Realm, gocloak.GetUsersParams{Username: gocloak.StringP(username), Exact: gocloak.BoolP(true)})
	if err != nil || len(users) != 1 {
		e.t.Fatalf("GetUsers %s: %v (%d users)", username, err, len(users))
	}
	return users[0]
}

func (e *env) userID(username string) string { return *e.user(username).ID }

// setAttr sets (or, with no values, removes) a user attribute.
func (e *env) setAttr(username, name string, values ...string) {
	e.t.Helper()
	u := e.user(username)
	attrs := map[string][]string{}
	if u.Attributes != nil {
		attrs = *u.Attributes
	}
	if len(values) == 0 {
		delete(attrs, name)
	} else {
		attrs[name] = values
	}
	if err := e.gc.UpdateUser(e.ctx, e.adminToken(), kclab.Realm, gocloak.User{ID: u.ID, Attributes: &attrs}); err != nil {
		e.t.Fatalf("set attribute %s of %s: %v", name, username, err)
	}
}

func (e *env) setEnabled(username string, on bool) {
	e.t.Helper()
	u := e.user(username)
	if err := e.gc.UpdateUser(e.ctx, e.adminToken(), kclab.Realm, gocloak.User{ID: u.ID, Enabled: gocloak.BoolP(on)}); err != nil {
		e.t.Fatalf("set enabled of %s: %v", username, err)
	}
}

func (e *env) enabled(username string) bool {
	e.t.Helper()
	on, err := e.lab.UserEnabled(kclab.Realm, username)
	if err != nil {
		e.t.Fatalf("UserEnabled: %v", err)
	}
	return on
}

func (e *env) sessions(username string) []kclab.SessionInfo {
	e.t.Helper()
	s, err := e.lab.Sessions(kclab.Realm, username)
	if err != nil {
		e.t.Fatalf("Sessions: %v", err)
	}
	return s
}

// login logs a seeded user in through the public console client.
func (e *env) login(username string) *gocloak.JWT {
	e.t.Helper()
	// Leads and admins send their one-time code (the lab's TOTP seed); others send none.
	j, err := e.gc.LoginOtp(e.ctx, kclab.ConsoleClientID, "", kclab.Realm, username, kclab.UserPassword, kclab.TOTPCode(username, e.clock.Now()))
	if err != nil {
		e.t.Fatalf("Login %s: %v", username, err)
	}
	return j
}

func (e *env) active(tok string) bool {
	e.t.Helper()
	res, err := e.gc.RetrospectToken(e.ctx, tok, kclab.APIClientID, e.clientSecret(kclab.APIClientID), kclab.Realm)
	if err != nil {
		e.t.Fatalf("RetrospectToken: %v", err)
	}
	return res.Active != nil && *res.Active
}

func (e *env) client(clientID string) *gocloak.Client {
	e.t.Helper()
	cs, err := e.gc.GetClients(e.ctx, e.adminToken(), kclab.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(clientID)})
	if err != nil || len(cs) != 1 {
		e.t.Fatalf("GetClients %s: %v", clientID, err)
	}
	return cs[0]
}

func (e *env) clientSecret(clientID string) string {
	e.t.Helper()
	c, err := e.gc.GetClientSecret(e.ctx, e.adminToken(), kclab.Realm, *e.client(clientID).ID)
	if err != nil {
		e.t.Fatalf("GetClientSecret: %v", err)
	}
	return *c.Value
}

func (e *env) setClientAttr(clientID, name, value string) {
	e.t.Helper()
	c := e.client(clientID)
	attrs := map[string]string{}
	if c.Attributes != nil {
		attrs = *c.Attributes
	}
	attrs[name] = value
	if err := e.gc.UpdateClient(e.ctx, e.adminToken(), kclab.Realm, gocloak.Client{ID: c.ID, ClientID: c.ClientID, Attributes: &attrs}); err != nil {
		e.t.Fatalf("UpdateClient: %v", err)
	}
}

func (e *env) faults(f ...kclab.Fault) {
	e.t.Helper()
	if err := e.lab.SetFaults(f); err != nil {
		e.t.Fatalf("SetFaults: %v", err)
	}
}

// snapshot captures everything a dry run must leave alone; withEvents adds
// the number of stored user and admin events.
func (e *env) snapshot(withEvents bool) string {
	e.t.Helper()
	var b strings.Builder
	for _, name := range []string{"alice", "bob", "carol", "jdoe", "asmith"} {
		u := e.user(name)
		attrs, _ := json.Marshal(u.Attributes)
		fmt.Fprintf(&b, "%s enabled=%t attrs=%s sessions=%d\n", name, *u.Enabled, attrs, len(e.sessions(name)))
	}
	for _, c := range []string{kclab.APIClientID, kclab.WorkerClientID} {
		attrs, _ := json.Marshal(e.client(c).Attributes)
		fmt.Fprintf(&b, "client %s secret=%s attrs=%s\n", c, e.clientSecret(c), attrs)
	}
	r, err := e.gc.GetRealm(e.ctx, e.adminToken(), kclab.Realm)
	if err != nil {
		e.t.Fatalf("GetRealm: %v", err)
	}
	fmt.Fprintf(&b, "notBefore=%d\n", gocloak.PInt(r.NotBefore))
	ad, _ := e.lab.AdminEvents(kclab.Realm)
	fmt.Fprintf(&b, "adminEvents=%d\n", len(ad))
	if withEvents {
		ev, _ := e.lab.Events(kclab.Realm)
		fmt.Fprintf(&b, "events=%d\n", len(ev))
	}
	return b.String()
}

func input(action string, params map[string]string) activities.ActionInput {
	if params["realm"] == "" {
		params["realm"] = kclab.Realm
	}
	return activities.ActionInput{
		IncidentID: "inc-1", StepID: "step-" + action, Action: action, Params: params,
		IdempotencyKey: "inc-1/step-" + action,
	}
}

// wantErr checks err's application error type and retryability.
func wantErr(t *testing.T, err error, errType string, nonRetryable bool) {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not a temporal.ApplicationError", err, err)
	}
	if ae.Type() != errType || ae.NonRetryable() != nonRetryable {
		t.Fatalf("error type=%q nonRetryable=%t, want %q %t (%v)", ae.Type(), ae.NonRetryable(), errType, nonRetryable, err)
	}
}

// run executes one action through Temporal's activity test environment,
// as a worker would: with an activity context (logger, heartbeats, attempt
// info), and its errors converted as a workflow receives them.
func (e *env) run(fn activities.Func, in activities.ActionInput) (activities.ActionResult, error) {
	te := activitytest.New(nil)
	te.RegisterActivity(fn)
	return activitytest.Run[activities.ActionResult](te, fn, in)
}
