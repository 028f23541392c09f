package intake

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/intake/parse"
	"github.com/iru-responder/responder/internal/intake/route"
	"github.com/iru-responder/responder/internal/intake/spool"
)

// Keys of the detectors of the budget tests.
const (
	floodKey  = "flood-secret-key"
	calmKey   = "calm-secret-key"
	scopedKey = "scoped-secret-key"
)

// budgetDetectors: "generic" (no scope), "flood" with a small spool quota,
// "calm" with the default quota, "scoped" limited to web-* assets and to
// svc-* accounts (and ops-* in realm iru).
func budgetDetectors(floodQuota int64) []auth.Detector {
	return []auth.Detector{
		{Name: "generic", Format: "generic", APIKeys: []auth.APIKey{{ID: "g1", SHA256: auth.HashKey("g1", genericKey)}}},
		{Name: "flood", Format: "generic", APIKeys: []auth.APIKey{{ID: "f1", SHA256: auth.HashKey("f1", floodKey)}}, SpoolQuotaBytes: floodQuota},
		{Name: "calm", Format: "generic", APIKeys: []auth.APIKey{{ID: "c1", SHA256: auth.HashKey("c1", calmKey)}}},
		{Name: "scoped", Format: "generic", APIKeys: []auth.APIKey{{ID: "s1", SHA256: auth.HashKey("s1", scopedKey)}},
			Scope: auth.Scope{Assets: []string{"web-*"}, Accounts: []string{"svc-*", "iru/ops-*"}}},
	}
}

// budgetEnv is an intake with the budget, quota and scope defences wired
// as intake.Open wires them, recording refusals and metrics.
type budgetEnv struct {
	t        *testing.T
	dir      string
	sp       *spool.Spool
	dl       *spool.DeadLetters
	h        *Handler
	srv      *httptest.Server
	reg      *prometheus.Registry
	metrics  *Metrics
	mu       sync.Mutex
	refusals []Refusal
}

func newBudgetEnv(t *testing.T, floodQuota int64) *budgetEnv {
	t.Helper()
	e := &budgetEnv{t: t, dir: t.TempDir(), reg: prometheus.NewRegistry()}
	a, err := auth.New(budgetDetectors(floodQuota), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e.dl, err = spool.OpenDeadLetters(e.dir, 0); err != nil {
		t.Fatal(err)
	}
	if e.metrics, err = NewMetrics(e.reg, e.dl); err != nil {
		t.Fatal(err)
	}
	cfg := Config{SpoolMaxBytes: 64 << 20}
	if e.sp, err = spool.Open(e.dir, spool.Options{MaxBytes: cfg.SpoolMaxBytes, Quota: Quota(a, cfg.quota())}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.sp.Close() })
	inv := inventory.New(testAssets, inventory.Options{})
	if err := inv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	rules, err := route.Default()
	if err != nil {
		t.Fatal(err)
	}
	e.h, err = NewHandler(Options{Auth: a, Inventory: inv, Rules: rules, Spool: e.sp, Metrics: e.metrics, RetryAfter: 7 * time.Second,
		OnRefusal: func(r Refusal) { e.mu.Lock(); e.refusals = append(e.refusals, r); e.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Pattern, e.h)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *budgetEnv) post(detector, key string, body []byte) result {
	e.t.Helper()
	return postTo(e.t, e.srv.Client(), e.srv.URL, detector, body, bearer(key)...)
}

func (e *budgetEnv) refused(reason string) []Refusal {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Refusal
	for _, r := range e.refusals {
		if r.Reason == reason {
			out = append(out, r)
		}
	}
	return out
}

func (e *budgetEnv) refusalMetric(detector, reason string) float64 {
	return metricValue(e.t, e.reg, "iru_intake_refusals_total", map[string]string{"detector": detector, "reason": reason})
}

// metricValue reads a counter or gauge from reg as /metrics would show it.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// forward runs a forwarder with the dead-letter queue until the test ends.
func (e *budgetEnv) forward(sig forward.Signaler, opts forward.Options) *forward.Forwarder {
	opts.DeadLetters = e.dl
	opts.OnDeadLetter = e.metrics.DeadLettered
	fw := forward.New(e.sp, sig, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fw.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return fw
}

// labelAlert is a generic alert for asset whose labels carry extra.
func labelAlert(asset string, i int, labels map[string]string) []byte {
	b, err := parse.Marshal(map[string]any{"source": "budget-test", "rule": "ContainerShell", "severity": "high", "asset": asset,
		"summary": fmt.Sprintf("alert %d", i), "labels": labels, "observed_at": "2024-05-01T12:00:00Z"})
	if err != nil {
		panic(err)
	}
	return b
}

// ltAttack is the attack alert: just under the 1 MiB body limit, its
// labels full of '<' (json.Marshal writes each as the six bytes \u003c).
func ltAttack(asset string) []byte {
	return labelAlert(asset, 0, map[string]string{"a": strings.Repeat("<", 500<<10), "b": strings.Repeat("<", 500<<10)})
}

// TestLessThanLabelsRefusedWhole: the '<'-label alert under the body
// limit is refused with 413 naming the label and the budget, nothing is
// spooled, the refusal is recorded and counted; an alert of '<' within
// the budget is spooled without growing (no \u003c escapes).
func TestLessThanLabelsRefusedWhole(t *testing.T) {
	e := newBudgetEnv(t, 0)
	body := ltAttack("web-1")
	if len(body) >= DefaultMaxBodyBytes {
		t.Fatalf("attack body %d bytes is not under the body limit", len(body))
	}
	r := e.post("generic", genericKey, body)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d %v, want 413", r.status, r.body)
	}
	if r.body["field"] != "labels.a" || r.body["limit_bytes"] != float64(parse.DefaultMaxLabelBytes) || !strings.Contains(r.body["error"].(string), "budget") {
		t.Errorf("413 body %v: want the label, its size and the budget", r.body)
	}
	if st := e.sp.Stats(); st.Pending != 0 || st.Bytes != 0 {
		t.Fatalf("spool %+v after a refused alert", st)
	}
	if got := e.refused(RefusedBudget); len(got) != 1 || got[0].Detector != "generic" || got[0].Status != 413 {
		t.Errorf("refusals recorded: %+v", got)
	}
	if n := e.refusalMetric("generic", RefusedBudget); n != 1 {
		t.Errorf("iru_intake_refusals_total{generic,budget} = %v", n)
	}

	// The same characters within the budget: accepted, and the spool record
	// is about as long as the text (json.Marshal would write 6x).
	text := strings.Repeat("<", 7<<10)
	if r := e.post("generic", genericKey, labelAlert("web-1", 1, map[string]string{"a": text})); r.status != http.StatusAccepted {
		t.Fatalf("alert within the budget: %d %v", r.status, r.body)
	}
	items := e.sp.Pending(10, nil)
	if len(items) != 1 {
		t.Fatalf("%d items spooled", len(items))
	}
	if n := len(items[0].Data); n > len(text)+2048 {
		t.Errorf("spool record %d bytes for %d bytes of '<': encoding inflates", n, len(text))
	}
	if items[0].Owner != "generic" {
		t.Errorf("item owner %q", items[0].Owner)
	}
}

// TestBudgetErrorsNameTheAlert: a batch with one alert over a budget is
// refused whole (413), naming that alert; the others are not spooled.
func TestBudgetErrorsNameTheAlert(t *testing.T) {
	e := newBudgetEnv(t, 0)
	cases := []struct {
		name, field string
		body        string
	}{
		{"summary kept whole in a label over the budget", "alerts[1].labels.summary",
			`[` + string(labelAlert("web-1", 0, nil)) + `,{"source":"s","rule":"r","severity":"high","asset":"web-1","summary":"x\n` + strings.Repeat("y", 9<<10) + `","observed_at":"2024-05-01T00:00:00Z"}]`},
		{"rule", "rule", `{"source":"s","rule":"` + strings.Repeat("r", 2<<10) + `","severity":"high","asset":"web-1","summary":"x","observed_at":"2024-05-01T00:00:00Z"}`},
		{"labels total", "labels", string(labelAlert("web-1", 0, map[string]string{"a": strings.Repeat("x", 7<<10), "b": strings.Repeat("x", 7<<10),
			"c": strings.Repeat("x", 7<<10), "d": strings.Repeat("x", 7<<10), "e": strings.Repeat("x", 7<<10), "f": strings.Repeat("x", 7<<10), "g": strings.Repeat("x", 7<<10)}))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.post("generic", genericKey, []byte(c.body))
			if r.status != http.StatusRequestEntityTooLarge || r.body["field"] != c.field {
				t.Fatalf("status %d %v, want 413 on %s", r.status, r.body, c.field)
			}
			if n := e.sp.Stats().Pending; n != 0 {
				t.Fatalf("%d items spooled from a refused request", n)
			}
		})
	}
}

// TestScopeRefused: a scoped detector's alert about an asset or naming an
// account outside its scope is refused (403, the scope named), recorded
// and counted; in-scope alerts are accepted.
func TestScopeRefused(t *testing.T) {
	e := newBudgetEnv(t, 0)
	cases := []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"asset outside", labelAlert("db-1", 0, nil), http.StatusForbidden, `asset "db-1" is outside the scope of detector "scoped"`},
		{"unknown asset outside", labelAlert("mystery-host", 0, nil), http.StatusForbidden, `asset "mystery-host"`},
		{"lead account", labelAlert("web-1", 0, map[string]string{"username": "bob", "realm": "iru"}), http.StatusForbidden, `account "iru/bob"`},
		{"master admin", labelAlert("web-1", 0, map[string]string{"username": "admin", "realm": "master"}), http.StatusForbidden, `account "master/admin"`},
		{"ops in master", labelAlert("web-1", 0, map[string]string{"username": "ops-1", "realm": "master"}), http.StatusForbidden, `account "master/ops-1"`},
		{"service account", labelAlert("web-1", 0, map[string]string{"username": "svc-backup", "realm": "iru"}), http.StatusAccepted, ""},
		{"ops in iru", labelAlert("web-1", 0, map[string]string{"username": "ops-1", "realm": "iru"}), http.StatusAccepted, ""},
		{"no account", labelAlert("web-1", 0, nil), http.StatusAccepted, ""},
	}
	accepted, refused := 0, 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.post("scoped", scopedKey, c.body)
			if r.status != c.status {
				t.Fatalf("status %d %v, want %d", r.status, r.body, c.status)
			}
			if c.status == http.StatusAccepted {
				accepted++
				return
			}
			refused++
			if msg, _ := r.body["error"].(string); !strings.Contains(msg, c.want) || r.body["field"] != "alerts[0]" {
				t.Errorf("error %v, want %q", r.body, c.want)
			}
		})
	}
	if n := e.sp.Stats().Pending; n != accepted {
		t.Errorf("%d items spooled, want the %d accepted", n, accepted)
	}
	if got := e.refused(RefusedScope); len(got) != refused || got[0].Detector != "scoped" || !strings.Contains(got[0].Detail, "outside the scope") {
		t.Errorf("recorded refusals %+v, want %d", got, refused)
	}
	if n := e.refusalMetric("scoped", RefusedScope); n != float64(refused) {
		t.Errorf("iru_intake_refusals_total{scoped,scope} = %v, want %d", n, refused)
	}
	// An unscoped detector may still report on db-1 and bob.
	if r := e.post("generic", genericKey, labelAlert("db-1", 0, map[string]string{"username": "bob"})); r.status != http.StatusAccepted {
		t.Errorf("unscoped detector: %d %v", r.status, r.body)
	}
}

// TestQuotaIsolatesDetectors: a flooding detector hits its spool quota
// (503 with Retry-After, recorded) while another detector's alert is
// accepted; once delivered, the flooder's room comes back.
func TestQuotaIsolatesDetectors(t *testing.T) {
	const quota = 64 << 10
	e := newBudgetEnv(t, quota)
	big := map[string]string{"blob": strings.Repeat("x", 7<<10)}
	acceptedFlood, first503 := 0, -1
	for i := range 50 {
		r := e.post("flood", floodKey, labelAlert("web-1", i, big))
		if r.status == http.StatusAccepted {
			acceptedFlood++
			continue
		}
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "7" || !strings.Contains(r.body["error"].(string), "quota") {
			t.Fatalf("flood post %d: %d %v (Retry-After %q)", i, r.status, r.body, r.header.Get("Retry-After"))
		}
		if first503 < 0 {
			first503 = i
		}
	}
	if first503 < 0 || acceptedFlood == 0 || e.sp.Owned("flood") > quota {
		t.Fatalf("flooder accepted %d, first 503 at %d, holds %d bytes of a %d quota", acceptedFlood, first503, e.sp.Owned("flood"), quota)
	}
	if r := e.post("calm", calmKey, labelAlert("db-1", 0, big)); r.status != http.StatusAccepted {
		t.Fatalf("other detector during the flood: %d %v", r.status, r.body)
	}
	if got := e.refused(RefusedQuota); len(got) != 50-acceptedFlood || got[0].Detector != "flood" || got[0].Status != 503 {
		t.Errorf("%d quota refusals recorded, want %d", len(got), 50-acceptedFlood)
	}
	mem := newMem()
	e.forward(mem, forward.Options{})
	eventually(t, "spool drained", 10*time.Second, func() bool { return e.sp.Stats().Pending == 0 })
	if e.sp.Owned("flood") != 0 {
		t.Errorf("flooder still charged %d bytes after delivery", e.sp.Owned("flood"))
	}
	if r := e.post("flood", floodKey, labelAlert("web-1", 99, big)); r.status != http.StatusAccepted {
		t.Errorf("flooder after delivery: %d %v", r.status, r.body)
	}
}

// TestDetectorsFileScopeAndQuota: the detectors file carries a detector's
// scope and quota through a write and a load; a bad pattern or a negative
// quota is refused with the detector named.
func TestDetectorsFileScopeAndQuota(t *testing.T) {
	path := t.TempDir() + "/detectors.yaml"
	det := budgetDetectors(1 << 20)[3]
	det.SpoolQuotaBytes = 1 << 20
	if err := detectorsfile.Write(path, detectorsfile.File{Detectors: []auth.Detector{det}}); err != nil {
		t.Fatal(err)
	}
	f, err := detectorsfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := f.Detectors[0]
	if !slices.Equal(got.Scope.Assets, []string{"web-*"}) || !slices.Equal(got.Scope.Accounts, []string{"svc-*", "iru/ops-*"}) || got.SpoolQuotaBytes != 1<<20 {
		t.Fatalf("loaded %+v", got)
	}
	for _, bad := range []func(d *auth.Detector){
		func(d *auth.Detector) { d.Scope.Assets = []string{"web-["} },
		func(d *auth.Detector) { d.Scope.Accounts = []string{" "} },
		func(d *auth.Detector) { d.SpoolQuotaBytes = -1 },
	} {
		d := det
		d.Scope = auth.Scope{Assets: slices.Clone(det.Scope.Assets), Accounts: slices.Clone(det.Scope.Accounts)}
		bad(&d)
		if err := detectorsfile.Write(path, detectorsfile.File{Detectors: []auth.Detector{d}}); err == nil || !strings.Contains(err.Error(), "scoped") {
			t.Errorf("invalid detector %+v written: %v", d, err)
		}
	}
}
