//go:build integration

package api

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/related"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/notify"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/workerhost"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// workerKeys, when set, are the decision keys the test workers trust
// (default: testSigner's); a test changes them to play a rotation.
var workerKeys atomic.Pointer[decision.KeySet]

// testSigner is the test API server's decision key (the HSM's in production).
var testSigner = func() *decision.LocalSigner {
	s, err := decision.NewLocalSigner()
	if err != nil {
		panic(err)
	}
	return s
}()

// labKeycloak starts the Keycloak simulator for a test. Rotated-out
// signing keys leave the JWKS after 1 ms.
func labKeycloak(t *testing.T) *keycloak.Server {
	t.Helper()
	kc, err := keycloak.New(keycloak.Options{Addr: "127.0.0.1:0", KeyRotationOverlap: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

// login returns an access token of user from the lab Keycloak, through the
// public console client as `starter login` does.
func login(t *testing.T, kc *keycloak.Server, user string) string {
	t.Helper()
	// Leads and admins send their one-time code (the lab's TOTP seed); others send none.
	tok, err := gocloak.NewClient(kc.URL()).LoginOtp(context.Background(), keycloak.ConsoleClientID, "", keycloak.Realm, user, keycloak.UserPassword, keycloak.TOTPCode(user, time.Now()))
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return tok.AccessToken
}

// testConfig is a valid responder configuration for kc.
func testConfig(kc *keycloak.Server) Config { return configFor(kc.URL()) }

// configFor is a valid responder configuration for a Keycloak at base.
func configFor(base string) Config {
	return Config{
		OIDC: auth.OIDCConfig{IssuerURL: base + "/realms/" + keycloak.Realm, Audience: keycloak.APIClientID,
			ClientID: keycloak.APIClientID, ClientSecret: keycloak.APIClientSecret, SessionCache: 5 * time.Second},
		Access:            accesslog.Config{QueueSize: 1000},
		AuthFailThreshold: 5, AuthFailWindow: 5 * time.Minute, MaxBodyBytes: 64 << 10, RequestTimeout: 20 * time.Second,
	}
}

// memWrapper wraps evidence data keys with an in-memory AES-GCM key (the
// HSM's role; the locker is what the tests exercise).
type memWrapper struct{ aead cipher.AEAD }

func newMemWrapper(t *testing.T) memWrapper {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	b, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return memWrapper{g}
}

func (m memWrapper) Wrap(_ context.Context, dek []byte) (evidence.Wrapped, error) {
	n := make([]byte, m.aead.NonceSize())
	_, _ = rand.Read(n)
	return evidence.Wrapped{KeyID: "mem", Nonce: n, Ciphertext: m.aead.Seal(nil, n, dek, nil)}, nil
}

func (m memWrapper) Unwrap(_ context.Context, w evidence.Wrapped) ([]byte, error) {
	return m.aead.Open(nil, w.Nonce, w.Ciphertext, nil)
}

// webhook counts notifications.
type webhook struct {
	mu     sync.Mutex
	events []notify.Event
	srv    *httptest.Server
}

func newWebhook(t *testing.T) *webhook {
	wh := &webhook{}
	wh.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev notify.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		wh.mu.Lock()
		wh.events = append(wh.events, ev)
		wh.mu.Unlock()
	}))
	t.Cleanup(wh.srv.Close)
	return wh
}

func (wh *webhook) got() []notify.Event {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return append([]notify.Event(nil), wh.events...)
}

// stack is a responder API over a real dev server running the real
// incident workflow with fake actions, the lab Keycloak, an SQLite ledger
// with the access log and an evidence locker.
type stack struct {
	t        *testing.T
	kc       *keycloak.Server
	temporal client.Client
	queue    string
	ledger   *ledger.Ledger
	access   *accesslog.Logger
	locker   *evidence.Locker
	api      *httptest.Server
}

// fakeAction succeeds with every declared output empty.
func fakeAction(_ context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	a, err := activities.Lookup(in.Action)
	if err != nil {
		return activities.ActionResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadParams, err)
	}
	out := map[string]string{}
	for _, o := range a.Outputs {
		out[o] = ""
	}
	return activities.ActionResult{Outputs: out, Summary: "fake " + in.Action}, nil
}

func fakeLedgerAppend(context.Context, activities.LedgerAppendInput) (activities.LedgerAppendResult, error) {
	return activities.LedgerAppendResult{Hash: "fake"}, nil
}

// registerIncident registers the real incident workflow, the playbook
// resolver over the embedded playbooks, and a fake for every catalog action.
func registerIncident(t *testing.T, r worker.Registry, c related.Lister) {
	set, err := playbooks.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	workerhost.RegisterIncident(r, set, c)
	// The worker trusts the test API server's decision key.
	r.RegisterActivityWithOptions(func(context.Context, workflows.DecisionKeysInput) (workflows.DecisionKeysResult, error) {
		if k := workerKeys.Load(); k != nil {
			return workflows.DecisionKeysResult{Keys: *k}, nil
		}
		return workflows.DecisionKeysResult{Keys: decision.KeySet{Keys: []decision.Key{testSigner.Key(time.Time{}, time.Time{})}}}, nil
	}, activity.RegisterOptions{Name: workflows.DecisionKeysActivity})
	for _, a := range activities.Catalog() {
		if a.Name == activities.LedgerAppend {
			r.RegisterActivityWithOptions(fakeLedgerAppend, activity.RegisterOptions{Name: a.Name})
			continue
		}
		r.RegisterActivityWithOptions(fakeAction, activity.RegisterOptions{Name: a.Name})
	}
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, kc: labKeycloak(t), queue: "api-test-" + uuid.NewString()}
	s.temporal = testenv.Client(t, client.Options{Logger: tlog.NewStructuredLogger(slogNop())})
	testenv.Worker(t, s.temporal, s.queue, func(r worker.Registry) { registerIncident(t, r, s.temporal) })
	st, err := ledger.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s.ledger = ledger.New(st, nil)
	s.access, err = accesslog.New(accesslog.LedgerOf(s.ledger), accesslog.Options{QueueSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	s.access.Start(context.Background())
	t.Cleanup(func() { _ = s.access.Close(context.Background()) })
	s.locker, err = evidence.Open(t.TempDir(), newMemWrapper(t), evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewResponder(ResponderOptions{Config: testConfig(s.kc), Temporal: s.temporal, Evidence: s.locker, Access: s.access, Log: slogNop(),
		Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Log: slogNop(), Temporal: fakeTemporal{}, Responder: rs, Access: s.access}
	s.api = httptest.NewServer(srv.Handler())
	t.Cleanup(s.api.Close)
	return s
}

func slogNop() *slog.Logger { return slog.New(slog.DiscardHandler) }

// start opens an incident with the container-compromise playbook.
func (s *stack) start(key, openedBy string) workflows.IncidentInput {
	s.t.Helper()
	in := workflows.IncidentInput{
		IncidentID: "INC-20260101-" + uuid.NewString()[:8], Key: key, Asset: "web-01", Severity: "high",
		Playbook: "container-compromise", OpenedBy: openedBy,
		Alerts: []workflows.Alert{{ID: uuid.NewString(), Fingerprint: "fp-" + key, Source: "falco", Rule: "shell in container",
			Severity: "high", Asset: "web-01", Summary: "shell spawned", ReceivedAt: time.Now().UTC()}},
	}
	_, err := s.temporal.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.IncidentWorkflowID(key), TaskQueue: s.queue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SeverityKey.ValueSet(in.Severity), workflows.PlaybookKey.ValueSet(in.Playbook),
			workflows.AssetKey.ValueSet(in.Asset), workflows.PhaseKey.ValueSet(playbooks.PhaseDetection), workflows.DrillKey.ValueSet(false)),
	}, workflows.IncidentWorkflow, in)
	if err != nil {
		s.t.Fatalf("start incident %s: %v", key, err)
	}
	return in
}

// call sends a request to the API and decodes a JSON answer into out (if
// not nil). It returns the status and the raw body.
func (s *stack) call(method, path, token string, body any, out any) (int, []byte) {
	s.t.Helper()
	return call(s.t, s.api.URL, method, path, token, body, out, nil)
}

func call(t *testing.T, base, method, path, token string, body any, out any, hdr http.Header) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		for _, k := range nonSnakeKeys(t, raw) {
			t.Errorf("%s %s: key %s is not snake_case", method, path, k)
		}
	}
	if out != nil && len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// waitStatus polls GET /incidents/{key} until cond holds.
func (s *stack) waitStatus(token, key string, what string, cond func(IncidentView) bool) IncidentView {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var v IncidentView
	for time.Now().Before(deadline) {
		v = IncidentView{}
		if code, _ := s.call("GET", "/api/v1/incidents/"+key, token, nil, &v); code == http.StatusOK && cond(v) {
			return v
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("incident %s: timed out waiting for %s; last status %+v", key, what, v.Status)
	return v
}

func stepStatus(v IncidentView, step string) string {
	for _, st := range v.Status.Steps {
		if st.ID == step {
			return st.Status
		}
	}
	return ""
}

// accessEntries returns today's access chain after draining the logger.
func (s *stack) accessEntries() []ledger.Entry {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.access.Close(ctx); err != nil {
		s.t.Fatal(err)
	}
	var out []ledger.Entry
	err := s.ledger.Store().Entries(ctx, accesslog.Chain(time.Now()), func(e ledger.Entry) error { out = append(out, e); return nil })
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		s.t.Fatal(err)
	}
	return out
}

// mustPrefix parses a prefix for tests.
func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := ParseProxies([]string{s})
	if err != nil || len(p) != 1 {
		t.Fatalf("prefix %s: %v", s, err)
	}
	return p[0]
}
