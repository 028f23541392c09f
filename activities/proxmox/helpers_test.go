//go:build integration

package proxmox

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
)

// memEvidence is a content-addressed in-memory evidence store.
type memEvidence struct {
	mu    sync.Mutex
	items map[string]activities.EvidenceItem
	data  map[string][]byte
}

func (m *memEvidence) PutEvidence(_ context.Context, it activities.EvidenceItem) (string, error) {
	b, err := io.ReadAll(it.Body)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	ref := fmt.Sprintf("evidence://%s/sha256:%s", it.IncidentID, hex.EncodeToString(sum[:]))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		m.data, m.items = map[string][]byte{}, map[string]activities.EvidenceItem{}
	}
	m.data[ref] = b
	m.items[ref] = it
	return ref, nil
}

func (m *memEvidence) get(ref string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data[ref]
}

// memSink is an in-memory secret sink; readable reports whether it
// offers Read (like internal/secretsink.File).
type memSink struct {
	mu      sync.Mutex
	secrets map[string][]byte
}

func (s *memSink) StoreSecret(_ context.Context, it activities.SecretItem) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets == nil {
		s.secrets = map[string][]byte{}
	}
	sum := sha256.Sum256(it.Value)
	ref := "secret://" + it.Name + "/" + hex.EncodeToString(sum[:4])
	s.secrets[ref] = append([]byte(nil), it.Value...)
	return ref, nil
}

func (s *memSink) Read(ref string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.secrets[ref]
	if !ok {
		return nil, errors.New("no such secret")
	}
	return b, nil
}

// writeOnlySink hides Read.
type writeOnlySink struct{ s *memSink }

func (w writeOnlySink) StoreSecret(ctx context.Context, it activities.SecretItem) (string, error) {
	return w.s.StoreSecret(ctx, it)
}

// countingTransport counts requests and can fail one of them: before it
// reaches the server, or after (the change happened, the answer is lost).
type countingTransport struct {
	next   http.RoundTripper
	n      atomic.Int64
	failAt atomic.Int64 // 1-based request number to fail; 0: none
	after  atomic.Bool
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	n := c.n.Add(1)
	if n == c.failAt.Load() {
		if !c.after.Load() {
			return nil, errors.New("injected: connection reset before the request")
		}
		res, err := c.next.RoundTrip(r)
		if err == nil {
			_ = res.Body.Close()
		}
		return nil, errors.New("injected: connection reset after the request")
	}
	return c.next.RoundTrip(r)
}

type labEnv struct {
	t      *testing.T
	srv    *pve.Server
	cfg    Config
	acts   *Activities
	ev     *memEvidence
	sink   *memSink
	count  *countingTransport
	caFile string
	key    *softKey
}

type labOpt func(*pve.Options, *Config)

func withTaskDuration(d time.Duration) labOpt {
	return func(o *pve.Options, _ *Config) { o.TaskDuration = d }
}

func withTaskDurations(m map[string]time.Duration) labOpt {
	return func(o *pve.Options, _ *Config) { o.TaskDurations = m }
}

func withInventory(path string) labOpt {
	return func(o *pve.Options, _ *Config) { o.InventoryPath = path }
}

func withConfig(f func(*Config)) labOpt { return func(_ *pve.Options, c *Config) { f(c) } }

// newLab starts a PVE simulator and activities talking to it over TLS,
// trusting its certificate through IRU_PVE_CA_FILE.
func newLab(t testing.TB, opts ...labOpt) *labEnv {
	t.Helper()
	po := pve.Options{Addr: "127.0.0.1:0", TaskDuration: pve.InstantTasks}
	cfg := Config{TokenID: pve.LabResponderTokenID, TokenSecret: pve.LabResponderTokenSecret,
		AllowCIDRs: []string{"10.99.0.5/32"}, TaskPoll: 5 * time.Millisecond, HTTPTimeout: 5 * time.Second, LockWait: 5 * time.Second}
	for _, o := range opts {
		o(&po, &cfg)
	}
	srv, err := pve.New(po)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Close() })
	caFile := filepath.Join(t.TempDir(), "pve-ca.pem")
	conn, err := tls.Dial("tcp", srv.Addr(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // fetching the lab's self-signed cert
	if err != nil {
		t.Fatal(err)
	}
	cert := conn.ConnectionState().PeerCertificates[0]
	_ = conn.Close()
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.URL, cfg.CAFile = srv.URL(), caFile
	l := &labEnv{srv: srv, cfg: cfg, ev: &memEvidence{}, sink: &memSink{}, caFile: caFile}
	if tt, ok := t.(*testing.T); ok {
		l.t = tt
	}
	l.acts = l.newActs(t, cfg, l.sink)
	return l
}

func (l *labEnv) newActs(t testing.TB, cfg Config, sink activities.SecretSink) *Activities {
	t.Helper()
	l.count = &countingTransport{}
	if l.key == nil {
		l.key = newSoftKey(t)
	}
	a, err := New(cfg, l.ev, sink, WithTransport(func(rt http.RoundTripper) http.RoundTripper {
		l.count.next = rt
		return l.count
	}), WithRecordKey(l.key))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// ct returns the canonical JSON of one container's state.
func (l *labEnv) ct(t testing.TB, vmid int) string {
	t.Helper()
	for _, c := range l.srv.State().Containers {
		if c.VMID == vmid {
			// The allow rules of an isolation are added together, so
			// their order among themselves is the order they arrived in.
			rules := slices.Clone(c.Firewall.Rules)
			first := slices.IndexFunc(rules, func(r map[string]string) bool { return strings.HasPrefix(r["comment"], "iru:") })
			if first >= 0 {
				slices.SortStableFunc(rules[first:], func(a, b map[string]string) int {
					ja, _ := json.Marshal(a)
					jb, _ := json.Marshal(b)
					return strings.Compare(string(ja), string(jb))
				})
			}
			c.Firewall.Rules = rules
			b, err := json.MarshalIndent(c, "", " ")
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
	t.Fatalf("CT %d not in the lab state", vmid)
	return ""
}

func (l *labEnv) state(t testing.TB) string {
	t.Helper()
	b, err := l.srv.State().CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func input(action, asset string, params map[string]string) activities.ActionInput {
	p := map[string]string{}
	if asset != "" {
		p["asset"] = asset
	}
	for k, v := range params {
		p[k] = v
	}
	return activities.ActionInput{IncidentID: "INC-42", StepID: "step1", Action: action, Asset: asset, Params: p,
		IdempotencyKey: "INC-42/step1"}
}

// run executes one action through Temporal's activity test environment,
// so errors come back as they would to a workflow.
func run(t testing.TB, a *Activities, in activities.ActionInput) (activities.ActionResult, error) {
	t.Helper()
	env := activitytest.New(nil)
	a.Register(env)
	return activitytest.Run[activities.ActionResult](env, in.Action, in)
}

func mustRun(t testing.TB, a *Activities, in activities.ActionInput) activities.ActionResult {
	t.Helper()
	res, err := run(t, a, in)
	if err != nil {
		t.Fatalf("%s %s: %v", in.Action, in.Params["asset"], err)
	}
	return res
}

// errType returns the application error type and whether it is final.
func errType(t testing.TB, err error) (string, bool) {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an application error", err, err)
	}
	return ae.Type(), ae.NonRetryable()
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

var quietLogger = tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// softKey is an in-memory ECDSA P-256 record key standing in for the HSM's
// signing key (internal/keys.Manager) in unit tests.
type softKey struct {
	id   string
	priv *ecdsa.PrivateKey
}

func newSoftKey(t testing.TB) *softKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &softKey{id: "soft-test-key", priv: k}
}

func (k *softKey) Sign(_ context.Context, digest []byte) (keys.Signature, error) {
	// Deterministic (RFC 6979, nil rand) so that repeated isolations give
	// the same description and tests can compare states exactly.
	sig, err := k.priv.Sign(nil, digest, crypto.SHA256)
	return keys.Signature{KeyID: k.id, Sig: sig}, err
}

func (k *softKey) Verify(_ context.Context, digest []byte, sig keys.Signature) error {
	if sig.KeyID != k.id || !ecdsa.VerifyASN1(&k.priv.PublicKey, digest, sig.Sig) {
		return keys.ErrBadSignature
	}
	return nil
}
