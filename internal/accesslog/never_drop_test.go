package accesslog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iru-responder/responder/internal/ledger"
)

// fill fills a's queue with housekeeping records until it drops one.
func fill(t *testing.T, a *Logger) {
	t.Helper()
	if a.Free() == cap(a.room) {
		// Let the appender take a first record (and get stuck with it), so
		// that the queue does not move under the test.
		a.Record(Record{Action: ActionConfigLoad, Actor: "system:test", Path: "/fill/first"})
		for deadline := time.Now().Add(10 * time.Second); a.Free() < cap(a.room); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the appender did not take the first record")
			}
		}
	}
	for i := range 10_000 {
		if !a.Record(Record{Action: ActionConfigLoad, Actor: "system:test", Path: fmt.Sprint("/fill/", i)}) {
			return
		}
	}
	t.Fatal("the queue never filled")
}

// TestAuthenticatedRecordNeverDropped attacks the access log: with its
// queue full (a stuck ledger), an authenticated request either waits
// until its record has room and the record lands in the ledger, or fails
// without acting; its record is never silently dropped.
func TestAuthenticatedRecordNeverDropped(t *testing.T) {
	l := openLedger(t)
	reg := prometheus.NewRegistry()
	bl := blockingLedger{Ledger: LedgerOf(l), release: make(chan struct{})}
	a, err := New(bl, Options{QueueSize: 12, Wait: 300 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.Start(ctx)
	fill(t, a)

	// Housekeeping noise leaves the last quarter of the queue (3 places)
	// to authenticated requests: two of them (one with an extra
	// auth.success record) get room at once.
	approve := Record{Action: ActionRequest, SourceIP: "10.0.0.9", Method: "POST", Path: "/api/v1/incidents/x/steps/s/approve", Status: 200}
	var slots []*Slot
	for i := range 2 {
		rctx, slot := a.WithSlot(context.Background(), "10.0.0.9")
		var extra []Record
		if i == 0 {
			extra = []Record{{Action: ActionAuthSuccess, Actor: "keycloak:iru/bob", Detail: "session s1"}}
		}
		if err := Authenticated(rctx, "keycloak:iru/bob", extra...); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		slots = append(slots, slot)
	}
	// The queue is now full: a third waits, and fails when no room frees
	// up in time; its handler then answers 503 without acting.
	rctx, _ := a.WithSlot(context.Background(), "10.0.0.9")
	if err := Authenticated(rctx, "keycloak:iru/bob"); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("Authenticated with a full queue: %v, want ErrNoRoom (the request must fail, not act)", err)
	}
	if got := gathered(t, reg, "iru_access_log_records_total", "refused"); got != 1 {
		t.Errorf("refused counter = %v, want 1", got)
	}
	// A fourth waits while the ledger catches up, and gets room.
	rctx, slot := a.WithSlot(context.Background(), "10.0.0.9")
	go func() { time.Sleep(50 * time.Millisecond); close(bl.release) }()
	if err := Authenticated(rctx, "keycloak:iru/bob"); err != nil {
		t.Fatalf("Authenticated while the ledger catches up: %v", err)
	}
	slots = append(slots, slot)
	for i, s := range slots {
		r := approve
		r.RequestID = fmt.Sprint("req-", i)
		s.Finish(r)
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	approvals, success := 0, false
	for _, e := range entries(t, l, Chain(time.Now())) {
		if e.Actor == "keycloak:iru/bob" && e.Action == ActionRequest && strings.Contains(e.Target, "/approve") {
			approvals++
		}
		success = success || (e.Actor == "keycloak:iru/bob" && e.Action == ActionAuthSuccess)
	}
	if approvals != 3 || !success {
		t.Fatalf("bob's approvals in the ledger: %d (want 3), his auth.success: %v; none may be dropped", approvals, success)
	}
	if s := a.Stats(); s.Refused != 1 || s.Failed != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// TestAnonymousRefusalsAggregated: 1,000 refused anonymous requests from
// one source within a minute leave one ledger record with their count
// (and one more per other source), and the metric counts every one.
func TestAnonymousRefusalsAggregated(t *testing.T) {
	l := openLedger(t)
	reg := prometheus.NewRegistry()
	minute := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a, err := New(LedgerOf(l), Options{Registerer: reg, Now: func() time.Time { return minute.Add(30 * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	for i := range 1000 {
		a.Anonymous(Record{Time: minute.Add(time.Duration(i) * 50 * time.Millisecond), Action: ActionRequest, SourceIP: "203.0.113.5",
			Method: "POST", Path: "/v1/alerts/falco", Status: 401, Detail: "wrong api key"})
	}
	a.Anonymous(Record{Time: minute, SourceIP: "198.51.100.2", Method: "GET", Path: "/api/v1/incidents", Status: 401})
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rows []ledger.Entry
	for _, e := range entries(t, l, Chain(minute)) {
		if e.Action == ActionAnonymous {
			rows = append(rows, e)
		}
	}
	if len(rows) != 2 {
		t.Fatalf("%d aggregated rows, want 2 (one per source and minute)", len(rows))
	}
	r := rows[0]
	if r.Actor == "anonymous:198.51.100.2" {
		r = rows[1]
	}
	if r.Actor != "anonymous:203.0.113.5" || r.Outcome.Status != ledger.StatusDenied ||
		!strings.Contains(r.Outcome.Detail, "count=1000") || !strings.Contains(r.Outcome.Detail, "wrong api key=1000") {
		t.Fatalf("aggregated row = %s %s %q", r.Actor, r.Outcome.Status, r.Outcome.Detail)
	}
	if got := counterValue(t, reg, "iru_access_anonymous_refusals_total", "status", "401"); got != 1001 {
		t.Errorf("iru_access_anonymous_refusals_total{status=401} = %v, want 1001", got)
	}
}

// TestAnonymousSourcesBounded: a flood from 50,000 sources keeps at most
// AnonymousSources+1 aggregates (the rest share "other-sources").
func TestAnonymousSourcesBounded(t *testing.T) {
	g := newAggregator(100)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 50_000 {
		g.add(Record{Time: now, SourceIP: fmt.Sprintf("10.0.%d.%d", i>>8, i&0xff), Status: 401})
	}
	recs := g.take(time.Time{})
	if len(recs) != 101 {
		t.Fatalf("%d aggregates, want 101", len(recs))
	}
	var other int64
	for _, r := range recs {
		if r.SourceIP == OtherSources {
			other = r.Count
		}
	}
	if other != 50_000-100 {
		t.Fatalf("other-sources count = %d, want %d", other, 50_000-100)
	}
}

// counterValue returns the counter name{label=value} gathered from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && labelIs(m, label, value) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}
