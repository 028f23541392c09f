package accesslog

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/iru-responder/responder/internal/ledger"
)

func openLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	st, err := ledger.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return ledger.New(st, nil)
}

func entries(t *testing.T, l *ledger.Ledger, chain string) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	if err := l.Store().Entries(context.Background(), chain, func(e ledger.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRecordsLandInTheDayChain(t *testing.T) {
	l := openLedger(t)
	day := time.Date(2026, 3, 14, 23, 59, 0, 0, time.FixedZone("x", -2*3600)) // 2026-03-15 01:59 UTC
	a, err := New(LedgerOf(l), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.Start(ctx)
	tests := []struct {
		name       string
		rec        Record
		wantActor  string
		wantStatus ledger.Status
		wantDetail string
	}{
		{"authenticated", Record{Action: ActionRequest, Actor: "keycloak:iru/alice", SourceIP: "10.0.0.1", Method: "GET", Path: "/api/v1/incidents", Status: 200},
			"keycloak:iru/alice", ledger.StatusOK, "status=200 ip=10.0.0.1"},
		{"anonymous", Record{Action: ActionRequest, SourceIP: "10.0.0.2", Method: "GET", Path: "/api/v1/incidents", Status: 401},
			"anonymous:10.0.0.2", ledger.StatusDenied, "status=401"},
		{"client error", Record{Action: ActionRequest, Actor: "keycloak:iru/bob", Method: "POST", Path: "/api/v1/incidents/x/abort", Status: 400},
			"keycloak:iru/bob", "rejected", "status=400"},
		{"server error", Record{Action: ActionRequest, Actor: "keycloak:iru/bob", Method: "GET", Path: "/api/v1/incidents/x", Status: 502},
			"keycloak:iru/bob", ledger.StatusFailed, "status=502"},
		{"auth failure", Record{Action: ActionAuthFailure, SourceIP: "10.0.0.3", Method: "GET", Path: "/api/v1/incidents", Detail: "bad signature"},
			"anonymous:10.0.0.3", ledger.StatusDenied, "detail=bad signature"},
	}
	for _, tt := range tests {
		tt.rec.Time = day
		if !a.Record(tt.rec) {
			t.Fatalf("%s: record refused", tt.name)
		}
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := entries(t, l, "access:2026-03-15")
	if len(got) != len(tests) {
		t.Fatalf("chain has %d entries, want %d", len(got), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := got[i]
			if e.Seq != int64(i+1) || e.Actor != tt.wantActor || e.Outcome.Status != tt.wantStatus || !strings.Contains(e.Outcome.Detail, tt.wantDetail) {
				t.Errorf("entry = seq %d actor %q status %q detail %q; want actor %q status %q detail containing %q",
					e.Seq, e.Actor, e.Outcome.Status, e.Outcome.Detail, tt.wantActor, tt.wantStatus, tt.wantDetail)
			}
			if e.Action != tt.rec.Action || e.Target != strings.TrimSpace(tt.rec.Method+" "+tt.rec.Path) {
				t.Errorf("action %q target %q", e.Action, e.Target)
			}
		})
	}
	if rep, err := l.Verify(context.Background(), "access:2026-03-15", nil); err != nil || !rep.OK() {
		t.Fatalf("chain does not verify: %v %+v", err, rep)
	}
	if s := a.Stats(); s.Written != int64(len(tests)) || s.Dropped != 0 || s.Failed != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// TestConcurrentServersShareAChain runs several loggers (API servers) on
// one store: every record lands exactly once and the chain verifies.
func TestConcurrentServersShareAChain(t *testing.T) {
	l := openLedger(t)
	const servers, each = 4, 40
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var loggers []*Logger
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range servers {
		a, err := New(LedgerOf(l), Options{QueueSize: each})
		if err != nil {
			t.Fatal(err)
		}
		loggers = append(loggers, a)
		a.Start(ctx)
	}
	var wg sync.WaitGroup
	for s, a := range loggers {
		wg.Go(func() {
			for i := range each {
				if err := a.RecordWait(context.Background(), Record{Time: now, Action: ActionRequest, Actor: fmt.Sprintf("keycloak:iru/u%d", s), Path: fmt.Sprintf("/r/%d", i), Status: 200}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, a := range loggers {
		if err := a.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s := a.Stats(); s.Written != each || s.Failed != 0 || s.Dropped != 0 {
			t.Errorf("stats = %+v", s)
		}
	}
	got := entries(t, l, Chain(now))
	if len(got) != servers*each {
		t.Fatalf("chain has %d entries, want %d", len(got), servers*each)
	}
	seen := map[string]bool{}
	for _, e := range got {
		k := e.Actor + e.Target
		if seen[k] {
			t.Fatalf("record %s written twice", k)
		}
		seen[k] = true
	}
	if rep, err := l.Verify(context.Background(), Chain(now), nil); err != nil || !rep.OK() {
		t.Fatalf("chain does not verify: %v %+v", err, rep)
	}
}

// blockingLedger blocks every append until release is closed.
type blockingLedger struct {
	Ledger
	release chan struct{}
}

func (b blockingLedger) Append(ctx context.Context, r ledger.AppendRequest) (ledger.Entry, error) {
	<-b.release
	return b.Ledger.Append(ctx, r)
}

// TestFullQueueDropsWithoutBlocking: a stuck ledger never blocks Record
// (housekeeping records); the overflow is counted in the Prometheus
// counter.
func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	l := openLedger(t)
	reg := prometheus.NewRegistry()
	bl := blockingLedger{Ledger: LedgerOf(l), release: make(chan struct{})}
	a, err := New(bl, Options{QueueSize: 3, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.Start(ctx)
	start := time.Now()
	accepted := 0
	for i := range 100 {
		if a.Record(Record{Action: ActionRequest, Path: fmt.Sprint("/", i), Status: 200}) {
			accepted++
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("100 records took %s with a stuck ledger", d)
	}
	// One record may be in the appender's hands, three in the queue.
	if accepted < 3 || accepted > 4 {
		t.Errorf("accepted %d records, want 3 or 4", accepted)
	}
	if got := gathered(t, reg, "iru_access_log_records_total", "dropped"); int(got) != 100-accepted {
		t.Errorf("dropped counter = %v, want %d", got, 100-accepted)
	}
	close(bl.release)
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.Written != int64(accepted) || s.Dropped != int64(100-accepted) {
		t.Errorf("stats = %+v", s)
	}
	if a.Record(Record{Action: ActionRequest}) {
		t.Error("a closed logger accepted a record")
	}
}

// gathered returns the value of the series of name with result=label.
func gathered(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "result", result) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s{result=%q}", name, result)
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func TestSlot(t *testing.T) {
	SetActor(context.Background(), "keycloak:iru/x") // no slot: no effect, no panic
	ctx, s := WithSlot(context.Background())
	if s.Actor() != "" {
		t.Fatal("new slot not empty")
	}
	SetActor(ctx, "detector:falco/k1")
	if s.Actor() != "detector:falco/k1" {
		t.Fatalf("actor = %q", s.Actor())
	}
}

func BenchmarkRecordAndAppend(b *testing.B) {
	st, err := ledger.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, err := New(LedgerOf(ledger.New(st, nil)), Options{QueueSize: b.N + 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Record(Record{Action: ActionRequest, Actor: "keycloak:iru/alice", Method: "GET", Path: "/api/v1/incidents", Status: 200})
	}
	b.StopTimer()
	a.Start(ctx)
	start := time.Now()
	if err := a.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}
