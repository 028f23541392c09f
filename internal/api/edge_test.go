//go:build integration

package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/intake"
	intakeauth "github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/intake/route"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/internal/ledger"
)

const edgeKey = "edge-falco-key"

// falcoAlert is one Falco alert about a known asset.
var falcoAlert = []byte(`{"output":"shell","priority":"Critical","rule":"Terminal shell in container","time":"2026-05-01T12:00:00Z","output_fields":{"container.name":"web-1","container.id":"3ad7b26ded6d"}}`)

// tokenVerifier accepts the token "good" as bob and refuses the rest.
type tokenVerifier struct{}

func (tokenVerifier) Verify(_ context.Context, raw string) (auth.Identity, error) {
	if raw == "good" {
		return auth.Identity{Subject: "b", Username: "bob", Realm: "iru", Roles: []string{auth.RoleResponder}, SessionID: "s1"}, nil
	}
	return auth.Identity{}, fmt.Errorf("%w: bad signature", auth.ErrUnauthenticated)
}

// edgeStack is an API server with the intake (one Falco detector), the
// responder API (tokenVerifier) and the access log on a ledger.
type edgeStack struct {
	srv    *Server
	ts     *httptest.Server
	acc    *accesslog.Logger
	ledger *ledger.Ledger
	spool  *spool.Spool
	reg    *prometheus.Registry
}

type edgeOptions struct {
	access accesslog.Options
	// wrap wraps the ledger the access log appends to.
	wrap   func(accesslog.Ledger) accesslog.Ledger
	limits intake.LimitsConfig
}

func newEdgeStack(t *testing.T, o edgeOptions) *edgeStack {
	t.Helper()
	st, err := ledger.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	l := ledger.New(st, nil)
	var al accesslog.Ledger = accesslog.LedgerOf(l)
	if o.wrap != nil {
		al = o.wrap(al)
	}
	reg := prometheus.NewRegistry()
	o.access.Registerer = reg
	acc, err := accesslog.New(al, o.access)
	if err != nil {
		t.Fatal(err)
	}
	acc.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = acc.Close(ctx)
	})
	a, err := intakeauth.New([]intakeauth.Detector{{Name: "falco", Format: "falco",
		APIKeys: []intakeauth.APIKey{{ID: "f1", SHA256: intakeauth.HashKey("f1", edgeKey)}}}}, intakeauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.New(staticAssets{{Name: "web-1", Node: "pve1", VMID: 121, Aliases: []string{"3ad7b26ded6d"}}}, inventory.Options{})
	if err := inv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	rules, err := route.Default()
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	h, err := intake.NewHandler(intake.Options{Auth: a, Inventory: inv, Rules: rules, Spool: sp, Limits: o.limits})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewResponder(ResponderOptions{Config: configFor("http://127.0.0.1:1"), Temporal: &recordingTemporal{},
		Verifier: tokenVerifier{}, Access: acc})
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Intake: h, IntakePattern: intake.Pattern, Access: acc, Responder: rs}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &edgeStack{srv: srv, ts: ts, acc: acc, ledger: l, spool: sp, reg: reg}
}

type staticAssets []inventory.Asset

func (a staticAssets) Assets(context.Context) ([]inventory.Asset, error) { return a, nil }

func (s *edgeStack) do(t *testing.T, method, path string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// entries closes the access log (writing what it holds) and returns the
// day's access chain.
func (s *edgeStack) entries(t *testing.T) []ledger.Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.acc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var out []ledger.Entry
	err := s.ledger.Store().Entries(ctx, accesslog.Chain(time.Now()), func(e ledger.Entry) error { out = append(out, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sum returns the sum of the counter name's series in reg.
func sum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// awayFromMinuteEnd waits, if need be, so that a few seconds of requests
// stay within one UTC minute.
func awayFromMinuteEnd(seconds int) {
	if now := time.Now(); now.Second() >= 60-seconds {
		time.Sleep(now.Truncate(time.Minute).Add(time.Minute + 100*time.Millisecond).Sub(now))
	}
}

// TestBadTokenFloodLeavesOneLedgerRow performs a bad-credential flood:
// 1,000 requests with bad credentials from one source within a minute
// (bad detector keys, an unknown detector, bad responder tokens) leave ONE
// aggregated ledger row for that source and minute, counting 1,000, and
// the metric counts 1,000 (not one row, or two, per request).
func TestBadTokenFloodLeavesOneLedgerRow(t *testing.T) {
	limits := intake.DefaultLimits() // the burst runs into them: 429s are refusals too
	s := newEdgeStack(t, edgeOptions{limits: limits})
	awayFromMinuteEnd(15)
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Go(func() {
			for i := range 100 {
				switch (w*100 + i) % 3 {
				case 0:
					s.do(t, "POST", "/v1/alerts/falco", falcoAlert, "Authorization", "Bearer wrong-"+fmt.Sprint(i))
				case 1:
					s.do(t, "POST", "/v1/alerts/nosuch", falcoAlert, "Authorization", "Bearer "+edgeKey)
				default:
					s.do(t, "GET", "/api/v1/incidents", nil, "Authorization", "Bearer forged")
				}
			}
		})
	}
	wg.Wait()
	// The flood spent the source's responder API budget (its 429s are
	// refusals too); its bucket (IRU_API_SOURCE_RATE, 50/s) refills within
	// a second. Then a legitimate request is recorded on its own, with its
	// identity.
	time.Sleep(1500 * time.Millisecond)
	if resp := s.do(t, "GET", "/api/v1/incidents/x", nil, "Authorization", "Bearer good"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("legitimate request: %d, want 404 (the fake Temporal knows no incident)", resp.StatusCode)
	}
	if got := sum(t, s.reg, "iru_access_anonymous_refusals_total"); got != 1000 {
		t.Errorf("iru_access_anonymous_refusals_total = %v, want 1000", got)
	}
	var anon, other []ledger.Entry
	thresholds := 0
	for _, e := range s.entries(t) {
		switch {
		case e.Actor == "anonymous:127.0.0.1" && e.Action == accesslog.ActionAuthThreshold:
			thresholds++ // the failed-auth threshold, once per window
		case e.Actor == "anonymous:127.0.0.1":
			anon = append(anon, e)
		case e.Actor != "keycloak:iru/bob":
			other = append(other, e)
		}
	}
	if thresholds != 1 {
		t.Errorf("%d failed-auth threshold rows, want 1", thresholds)
	}
	if len(anon) != 1 {
		for _, e := range anon {
			t.Logf("%s %s %s %q", e.Time, e.Action, e.Target, e.Outcome.Detail)
		}
		t.Fatalf("%d ledger rows for the anonymous source, want 1 (aggregated)", len(anon))
	}
	e := anon[0]
	if e.Action != accesslog.ActionAnonymous || e.Outcome.Status != ledger.StatusDenied || !strings.Contains(e.Outcome.Detail, "count=1000 ") {
		t.Fatalf("aggregated row: %s %s %q", e.Action, e.Outcome.Status, e.Outcome.Detail)
	}
	for _, want := range []string{"wrong api key=", "unknown detector=", "auth failure: bad signature=", "POST /v1/alerts/falco=", "GET /api/v1/incidents="} {
		if !strings.Contains(e.Outcome.Detail, want) {
			t.Errorf("aggregated row does not say %q: %q", want, e.Outcome.Detail)
		}
	}
	if len(other) != 0 {
		t.Errorf("unexpected rows: %+v", other)
	}
}

// stuckLedger blocks appends until release is closed.
type stuckLedger struct {
	accesslog.Ledger
	release chan struct{}
}

func (b stuckLedger) Append(ctx context.Context, r ledger.AppendRequest) (ledger.Entry, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ledger.Entry{}, ctx.Err()
	}
	return b.Ledger.Append(ctx, r)
}

// TestFullAccessLogNeverDropsAuthenticatedActions attacks the access
// log: with its queue full (a stuck ledger and housekeeping noise), an
// authenticated detector's alert and an authenticated responder request
// either fail (503, the alert not spooled) or are recorded; none is acted
// on with its record dropped (answered 202 with no record).
func TestFullAccessLogNeverDropsAuthenticatedActions(t *testing.T) {
	release := make(chan struct{})
	s := newEdgeStack(t, edgeOptions{
		access: accesslog.Options{QueueSize: 8, Wait: 200 * time.Millisecond},
		wrap:   func(l accesslog.Ledger) accesslog.Ledger { return stuckLedger{Ledger: l, release: release} },
	})
	// The appender takes a first record and is stuck with it ...
	s.acc.Record(accesslog.Record{Action: accesslog.ActionConfigLoad, Actor: "system:api", Path: "/noise/first"})
	for deadline := time.Now().Add(10 * time.Second); s.acc.Free() < 8; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the appender did not take the first record")
		}
	}
	// ... and housekeeping noise fills the queue as far as it may.
	for i := 0; s.acc.Record(accesslog.Record{Action: accesslog.ActionConfigLoad, Actor: "system:api", Path: fmt.Sprint("/noise/", i)}); i++ {
	}
	// The last quarter of the queue is kept for authenticated requests;
	// other requests in flight hold it.
	held, err := s.acc.Reserve(context.Background(), s.acc.Free())
	if err != nil {
		t.Fatal(err)
	}
	before := s.spool.Stats()
	resp := s.do(t, "POST", "/v1/alerts/falco", falcoAlert, "Authorization", "Bearer "+edgeKey)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("alert with the access log full: %d, want 503 with Retry-After (not accepted with its record dropped)", resp.StatusCode)
	}
	if after := s.spool.Stats(); after.Pending != before.Pending {
		t.Fatalf("the refused alert was spooled: %+v → %+v", before, after)
	}
	if resp := s.do(t, "GET", "/api/v1/incidents/x", nil, "Authorization", "Bearer good"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("responder request with the access log full: %d, want 503", resp.StatusCode)
	}
	// The ledger catches up: the next alert is accepted and recorded.
	held.Release()
	close(release)
	resp = s.do(t, "POST", "/v1/alerts/falco", falcoAlert, "Authorization", "Bearer "+edgeKey)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("alert once the ledger caught up: %d", resp.StatusCode)
	}
	accepted := s.spool.Stats().Pending - before.Pending
	recorded := 0
	for _, e := range s.entries(t) {
		if e.Actor == "detector:falco/f1" && e.Action == accesslog.ActionRequest && strings.Contains(e.Outcome.Detail, "status=202") {
			recorded++
		}
	}
	if accepted != 1 || recorded != 1 {
		t.Fatalf("%d alerts accepted, %d recorded in the ledger; want 1 and 1", accepted, recorded)
	}
	if st := s.acc.Stats(); st.Refused != 2 {
		t.Errorf("access log stats %+v: want the 2 refused requests counted", st)
	}
}
