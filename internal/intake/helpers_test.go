package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/intake/route"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/workflows"
)

const (
	amKey      = "am-secret-key"
	falcoKey   = "falco-secret-key"
	genericKey = "generic-secret-key"
	wazuhHMAC  = "wazuh-hmac-secret-0123456789abcdef"
)

func testDetectors() []auth.Detector {
	return []auth.Detector{
		{Name: "alertmanager", Format: "alertmanager", APIKeys: []auth.APIKey{{ID: "am1", SHA256: auth.HashKey("am1", amKey)}}},
		{Name: "falco", Format: "falco", APIKeys: []auth.APIKey{{ID: "f1", SHA256: auth.HashKey("f1", falcoKey)}}},
		{Name: "wazuh", Format: "wazuh", HMACSecrets: []auth.HMACSecret{{ID: "w1", Secret: wazuhHMAC}}},
		{Name: "generic", Format: "generic", APIKeys: []auth.APIKey{{ID: "g1", SHA256: auth.HashKey("g1", genericKey)}}},
	}
}

type assets []inventory.Asset

func (a assets) Assets(context.Context) ([]inventory.Asset, error) { return a, nil }

var testAssets = assets{
	{Name: "web-1", Node: "pve1", VMID: 121, IPs: []string{"10.10.0.21"}, Aliases: []string{"3ad7b26ded6d"}},
	{Name: "db-1", Node: "pve2", VMID: 122, IPs: []string{"10.10.0.22"}},
	{Name: "keycloak-1", Node: "pve1", VMID: 130},
	{Name: "vault-1", Node: "pve2", VMID: 140, Tags: []string{"hsm"}},
}

// env is one intake under test.
type env struct {
	t       testing.TB
	dir     string
	sp      *spool.Spool
	h       *Handler
	srv     *httptest.Server
	events  *eventLog
	spoolOp spool.Options
	// limits are the handler's limits (zero: loadLimits, which the
	// functional tests never reach).
	limits LimitsConfig
	// detectors replace testDetectors() when set.
	detectors []auth.Detector
}

// loadLimits are limits the functional and load tests never reach.
func loadLimits() LimitsConfig {
	return LimitsConfig{SourceRate: 1e6, SourceBurst: 1e6, SourceConcurrency: 1e6, DetectorRate: 1e6, DetectorBurst: 1e6,
		DetectorConc: 1e6, MaxSources: 1000, SourceIdle: time.Minute}
}

type eventLog struct {
	mu     sync.Mutex
	events []auth.Event
}

func (l *eventLog) ObserveAuth(e auth.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []auth.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func newEnv(t *testing.T, sopts spool.Options) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), events: &eventLog{}, spoolOp: sopts}
	e.open()
	t.Cleanup(e.close)
	return e
}

// open (re)opens the spool and builds a fresh handler and server over it.
func (e *env) open() {
	e.t.Helper()
	sp, err := spool.Open(e.dir, e.spoolOp)
	if err != nil {
		e.t.Fatal(err)
	}
	ds := e.detectors
	if ds == nil {
		ds = testDetectors()
	}
	a, err := auth.New(ds, auth.Options{Observer: e.events})
	if err != nil {
		e.t.Fatal(err)
	}
	inv := inventory.New(testAssets, inventory.Options{})
	if err := inv.Refresh(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	rules, err := route.Default()
	if err != nil {
		e.t.Fatal(err)
	}
	limits := e.limits
	if limits == (LimitsConfig{}) {
		limits = loadLimits()
	}
	h, err := NewHandler(Options{Auth: a, Inventory: inv, Rules: rules, Spool: sp, Limits: limits})
	if err != nil {
		e.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Pattern, h)
	e.sp, e.h, e.srv = sp, h, httptest.NewServer(mux)
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
	if e.sp != nil {
		e.sp.Close()
		e.sp = nil
	}
}

// forward runs a forwarder over the env's spool until the returned stop
// is called.
func (e *env) forward(sig forward.Signaler, opts forward.Options) (stop func()) {
	fw := forward.New(e.sp, sig, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fw.Run(ctx); !errors.Is(err, context.Canceled) {
			e.t.Errorf("forwarder: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

type result struct {
	status int
	body   map[string]any
	header http.Header
}

func (e *env) post(detector string, body []byte, hdr ...string) result {
	e.t.Helper()
	return postTo(e.t, e.srv.Client(), e.srv.URL, detector, body, hdr...)
}

func postTo(t testing.TB, c *http.Client, base, detector string, body []byte, hdr ...string) result {
	req, err := http.NewRequest(http.MethodPost, base+"/v1/alerts/"+detector, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("post: %v", err)
		return result{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Errorf("response %d is not JSON: %q", resp.StatusCode, raw)
	}
	return result{status: resp.StatusCode, body: m, header: resp.Header}
}

func fixture(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("parse", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func genericAlert(asset string, i int) []byte {
	return fmt.Appendf(nil, `{"source":"storm","rule":"ContainerShell","severity":"high","asset":%q,"summary":"alert %d","labels":{"n":"%d"},"observed_at":"2024-05-01T12:00:00Z"}`, asset, i, i)
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

func signedHeaders(body []byte, at time.Time) []string {
	ts, sig := auth.SignatureHeader([]byte(wazuhHMAC), at, body)
	return []string{auth.HeaderTimestamp, ts, auth.HeaderSignature, sig}
}

// memSignaler is an in-memory Signaler that records every call.
type memSignaler struct {
	mu      sync.Mutex
	starts  map[string]workflows.IncidentInput // first start input per workflow
	alerts  map[string][]workflows.Alert       // every alert signalled, per workflow
	calls   int
	signals int
}

func newMem() *memSignaler {
	return &memSignaler{starts: map[string]workflows.IncidentInput{}, alerts: map[string][]workflows.Alert{}}
}

func (m *memSignaler) SignalWithStart(_ context.Context, s forward.Start) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if _, ok := m.starts[s.WorkflowID]; !ok {
		m.starts[s.WorkflowID] = s.Input
	}
	m.alerts[s.WorkflowID] = append(m.alerts[s.WorkflowID], s.Signal.Alerts...)
	return nil
}

func (m *memSignaler) Signal(_ context.Context, id string, in workflows.AlertSignalInput) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.signals++
	if _, ok := m.starts[id]; !ok {
		return false, nil
	}
	m.alerts[id] = append(m.alerts[id], in.Alerts...)
	return true, nil
}

func (m *memSignaler) snapshot() (map[string]workflows.IncidentInput, map[string][]workflows.Alert) {
	m.mu.Lock()
	defer m.mu.Unlock()
	starts := map[string]workflows.IncidentInput{}
	alerts := map[string][]workflows.Alert{}
	for k, v := range m.starts {
		starts[k] = v
	}
	for k, v := range m.alerts {
		alerts[k] = slices.Clone(v)
	}
	return starts, alerts
}

func eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
