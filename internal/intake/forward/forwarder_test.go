package forward

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/workflows"
)

// fakeSignaler records calls; fail decides whether a call fails.
type fakeSignaler struct {
	mu       sync.Mutex
	starts   []Start
	signals  map[string][][]workflows.Alert
	running  map[string]bool
	fail     func(workflowID string) error
	refuse   func(alerts []workflows.Alert) error // by content (nil: none)
	perKey   map[string][]string                  // delivered alert ids per workflow id
	inflight map[string]bool
	overlap  bool
	// hold, if set, is called as a SignalWithStart begins (it may block).
	hold func(workflowID string)
	// order is the workflow id of every delivering call, in order.
	order []string
}

func newFake() *fakeSignaler {
	return &fakeSignaler{signals: map[string][][]workflows.Alert{}, running: map[string]bool{}, perKey: map[string][]string{}, inflight: map[string]bool{}}
}

func (f *fakeSignaler) enter(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inflight[id] {
		f.overlap = true
	}
	f.inflight[id] = true
	if f.fail != nil {
		if err := f.fail(id); err != nil {
			f.inflight[id] = false
			return err
		}
	}
	return nil
}

func (f *fakeSignaler) SignalWithStart(ctx context.Context, s Start) error {
	if err := f.enter(s.WorkflowID); err != nil {
		return err
	}
	if f.hold != nil {
		f.hold(s.WorkflowID)
	}
	if f.refuse != nil {
		if err := f.refuse(s.Signal.Alerts); err != nil {
			f.mu.Lock()
			f.inflight[s.WorkflowID] = false
			f.mu.Unlock()
			return err
		}
	}
	time.Sleep(time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight[s.WorkflowID] = false
	f.starts = append(f.starts, s)
	f.running[s.WorkflowID] = true
	f.record(s.WorkflowID, s.Signal.Alerts)
	return nil
}

func (f *fakeSignaler) Signal(ctx context.Context, id string, in workflows.AlertSignalInput) (bool, error) {
	if err := f.enter(id); err != nil {
		return false, err
	}
	if f.refuse != nil {
		// Temporal refuses a payload for good whichever call carries it.
		if err := f.refuse(in.Alerts); err != nil {
			f.mu.Lock()
			f.inflight[id] = false
			f.mu.Unlock()
			return false, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight[id] = false
	if !f.running[id] {
		return false, nil
	}
	f.record(id, in.Alerts)
	return true, nil
}

func (f *fakeSignaler) record(id string, alerts []workflows.Alert) {
	f.signals[id] = append(f.signals[id], alerts)
	f.order = append(f.order, id)
	for _, a := range alerts {
		f.perKey[id] = append(f.perKey[id], a.ID)
	}
}

func (f *fakeSignaler) delivered(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.perKey[id])
}

func spoolWith(t testing.TB, recs ...Record) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(t.TempDir(), spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	for _, r := range recs {
		appendRecords(t, sp, r)
	}
	return sp
}

func appendRecords(t testing.TB, sp *spool.Spool, recs ...Record) {
	t.Helper()
	var items []spool.Item
	for _, r := range recs {
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, spool.Item{Key: r.Key, Data: b})
	}
	if _, err := sp.Append(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

func rec(key string, n int, resolved bool) Record {
	return Record{Key: key, Playbook: "container-compromise", Mapped: true, Resolved: resolved, OpenedBy: "am/k1",
		Alert: workflows.Alert{ID: fmt.Sprintf("%s-%04d", key, n), Source: "alertmanager", Rule: "R", Severity: "high", Asset: key,
			ReceivedAt: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}}
}

func runUntil(t *testing.T, fw *Forwarder, sp *spool.Spool, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fw.Run(ctx) }()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("condition not met; spool %+v forwarder %+v", sp.Stats(), fw.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestCoalescesPerKey(t *testing.T) {
	sp := spoolWith(t)
	var want = map[string][]string{}
	for i := range 30 {
		key := fmt.Sprintf("k%d", i%3)
		r := rec(key, i, false)
		appendRecords(t, sp, r)
		want["incident:"+key] = append(want["incident:"+key], r.Alert.ID)
	}
	fake := newFake()
	fw := New(sp, fake, Options{TaskQueue: "tq"})
	runUntil(t, fw, sp, func() bool { return sp.Stats().Pending == 0 })
	if len(fake.starts) != 3 {
		t.Fatalf("%d SignalWithStart calls, want 3 (one per key)", len(fake.starts))
	}
	for _, s := range fake.starts {
		if s.TaskQueue != "tq" || s.Input.Key == "" || workflows.IncidentWorkflowID(s.Input.Key) != s.WorkflowID {
			t.Errorf("start %+v", s)
		}
		if s.Input.Playbook != "container-compromise" || s.Input.Severity != "high" || s.Input.OpenedBy != "am/k1" {
			t.Errorf("incident input %+v", s.Input)
		}
		// Each alert travels once: in the signal, not again in the input.
		if len(s.Signal.Alerts) != 10 || len(s.Input.Alerts) != 0 {
			t.Errorf("start carries %d alerts in the signal and %d in the input, want 10 and 0", len(s.Signal.Alerts), len(s.Input.Alerts))
		}
	}
	for id, ids := range want {
		if got := fake.delivered(id); !slices.Equal(got, ids) {
			t.Errorf("%s delivered %v, want %v", id, got, ids)
		}
	}
	if st := fw.Stats(); st.Delivered != 30 || st.Calls != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestSignalSizeBounded(t *testing.T) {
	sp := spoolWith(t)
	var want []string
	var recs []Record
	for i := range 250 {
		r := rec("big", i, false)
		recs = append(recs, r)
		want = append(want, r.Alert.ID)
	}
	appendRecords(t, sp, recs...)
	fake := newFake()
	fw := New(sp, fake, Options{MaxAlertsPerSignal: 100})
	runUntil(t, fw, sp, func() bool { return sp.Stats().Pending == 0 })
	var sizes []int
	for _, s := range fake.signals["incident:big"] {
		sizes = append(sizes, len(s))
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("signal sizes %v, want [100 100 50]", sizes)
	}
	if got := fake.delivered("incident:big"); !slices.Equal(got, want) {
		t.Error("order not kept across signals")
	}
}

func TestRetryKeepsOrderAndOthersFlow(t *testing.T) {
	sp := spoolWith(t)
	fake := newFake()
	var mu sync.Mutex
	failures := 0
	fake.fail = func(id string) error {
		mu.Lock()
		defer mu.Unlock()
		if id == "incident:bad" && failures < 3 {
			failures++
			return errors.New("temporal unavailable")
		}
		return nil
	}
	fw := New(sp, fake, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, MaxAlertsPerSignal: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { fw.Run(ctx); close(done) }()
	var want []string
	for i := range 20 {
		r := rec("bad", i, false)
		want = append(want, r.Alert.ID)
		appendRecords(t, sp, r, rec("good", i, false))
		time.Sleep(time.Millisecond)
	}
	deadline := time.Now().Add(15 * time.Second)
	for sp.Stats().Pending > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if got := fake.delivered("incident:bad"); !slices.Equal(got, want) {
		t.Fatalf("retried key delivered %v, want %v", got, want)
	}
	if n := len(fake.delivered("incident:good")); n != 20 {
		t.Fatalf("healthy key delivered %d, want 20", n)
	}
	if fake.overlap {
		t.Error("two calls for one key in flight at once")
	}
	if st := fw.Stats(); st.Failures != 3 || st.Delivered != 40 {
		t.Errorf("stats %+v", st)
	}
}

func TestResolvedNeverStarts(t *testing.T) {
	sp := spoolWith(t, rec("gone", 0, true), rec("live", 1, false), rec("live", 2, true), rec("live", 3, false))
	fake := newFake()
	fw := New(sp, fake, Options{})
	runUntil(t, fw, sp, func() bool { return sp.Stats().Pending == 0 })
	for _, s := range fake.starts {
		if s.WorkflowID == "incident:gone" {
			t.Fatal("a resolved alert started an incident")
		}
	}
	if got := fake.delivered("incident:live"); !slices.Equal(got, []string{"live-0001", "live-0002", "live-0003"}) {
		t.Fatalf("live delivered %v", got)
	}
	if got := fake.delivered("incident:gone"); len(got) != 0 {
		t.Fatalf("resolved alert without incident delivered: %v", got)
	}
}

func TestIncidentID(t *testing.T) {
	a := workflows.Alert{ID: "x", ReceivedAt: time.Date(2024, 5, 1, 23, 0, 0, 0, time.FixedZone("x", -3600))}
	if got := IncidentID(a); got != "INC-20240502-2d711642" {
		t.Errorf("IncidentID = %s", got)
	}
}
