package forward

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/workflows"
)

// holdKey makes fake's calls for key wait until the returned release is
// called; entered is closed when the first such call has begun.
func holdKey(fake *fakeSignaler, key string) (entered <-chan struct{}, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var once, rel sync.Once
	id := workflows.IncidentWorkflowID(key)
	fake.hold = func(wid string) {
		if wid != id {
			return
		}
		once.Do(func() { close(in) })
		<-out
	}
	return in, func() { rel.Do(func() { close(out) }) }
}

// startRun runs fw until the test ends.
func startRun(t *testing.T, fw *Forwarder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A new key's first alert is sent while another key's call is still in
// flight: calls do not run in lock-step rounds.
func TestNewKeyDoesNotWaitForOtherCalls(t *testing.T) {
	sp := spoolWith(t, rec("a", 1, false))
	fake := newFake()
	entered, release := holdKey(fake, "a")
	defer release()
	fw := New(sp, fake, Options{TaskQueue: "tq"})
	startRun(t, fw)
	<-entered
	appendRecords(t, sp, rec("b", 1, false))
	waitFor(t, "b's alert to be delivered while a's call is in flight", func() bool {
		return len(fake.delivered("incident:b")) == 1
	})
	release()
	waitFor(t, "the spool to drain", func() bool { return sp.Stats().Pending == 0 })
	if st := fw.Stats(); st.Delivered != 2 || st.Calls != 2 {
		t.Errorf("stats %+v, want 2 delivered in 2 calls", st)
	}
}

// With one call slot, a key whose incident the forwarder has not started
// goes before a running incident's older alerts.
func TestNewKeysGoFirst(t *testing.T) {
	sp := spoolWith(t, rec("old", 1, false))
	fake := newFake()
	entered, release := holdKey(fake, "hold")
	defer release()
	fw := New(sp, fake, Options{TaskQueue: "tq", Concurrency: 1})
	startRun(t, fw)
	waitFor(t, "old's first alert", func() bool { return sp.Stats().Pending == 0 })
	appendRecords(t, sp, rec("hold", 1, false))
	<-entered // the only slot is taken
	appendRecords(t, sp, rec("old", 2, false))
	appendRecords(t, sp, rec("new", 1, false))
	release()
	waitFor(t, "the spool to drain", func() bool { return sp.Stats().Pending == 0 })
	fake.mu.Lock()
	defer fake.mu.Unlock()
	order := fake.order
	want := []string{"incident:old", "incident:hold", "incident:new", "incident:old"}
	if len(order) != len(want) {
		t.Fatalf("calls %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("calls %v, want %v (the new key before the running incident's next alert)", order, want)
		}
	}
}

// A key whose incident the forwarder started gets its next alerts in a
// plain Signal; when that incident no longer runs, a SignalWithStart
// opens a new one and the alerts are not lost.
func TestRunningIncidentSignalled(t *testing.T) {
	sp := spoolWith(t, rec("k", 1, false))
	fake := newFake()
	fw := New(sp, fake, Options{TaskQueue: "tq"})
	startRun(t, fw)
	drained := func() bool { return sp.Stats().Pending == 0 }
	waitFor(t, "the first alert", drained)
	appendRecords(t, sp, rec("k", 2, false))
	waitFor(t, "the second alert", drained)
	fake.mu.Lock()
	starts := len(fake.starts)
	fake.running["incident:k"] = false // the incident ended
	fake.mu.Unlock()
	if starts != 1 {
		t.Fatalf("%d SignalWithStart calls for two alerts of a running incident, want 1", starts)
	}
	appendRecords(t, sp, rec("k", 3, false))
	waitFor(t, "the third alert", drained)
	fake.mu.Lock()
	starts = len(fake.starts)
	fake.mu.Unlock()
	if starts != 2 {
		t.Errorf("%d SignalWithStart calls, want 2 (the third alert reopens the ended incident)", starts)
	}
	if got, want := fake.delivered("incident:k"), []string{"k-0001", "k-0002", "k-0003"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if st := fw.Stats(); st.Delivered != 3 || st.Calls != 3 {
		t.Errorf("stats %+v, want 3 delivered in 3 calls", st)
	}
}

// While alerts keep arriving, a running incident's alerts gather for
// BusyWait, so it gets a few large signals instead of one per free call
// slot, while a new key's first alert goes at once; once the arrivals
// stop, what gathered goes without waiting out BusyWait. Without the
// wait, the same arrivals take a call nearly each.
func TestRunningIncidentAlertsGatherWhileArriving(t *testing.T) {
	tests := []struct {
		name               string
		busyWait           time.Duration
		minCalls, maxCalls int
	}{
		{name: "gathered", busyWait: 300 * time.Millisecond, minCalls: 1, maxCalls: 5},
		{name: "no wait", busyWait: -1, minCalls: 20, maxCalls: 200},
		// Zero is DefaultBusyWait, longer than the arrivals: one call
		// when they stop (two if a loaded machine pauses the arrivals
		// for QuietAfter).
		{name: "default", minCalls: 1, maxCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := spoolWith(t, rec("k", 1, false))
			fake := newFake()
			fw := New(sp, fake, Options{TaskQueue: "tq", BusyWait: tt.busyWait})
			startRun(t, fw)
			waitFor(t, "k's first alert", func() bool { return sp.Stats().Pending == 0 })
			calls := func(id string) int {
				fake.mu.Lock()
				defer fake.mu.Unlock()
				n := 0
				for _, o := range fake.order {
					if o == id {
						n++
					}
				}
				return n
			}
			before := calls("incident:k")
			// 100 alerts of the running incident over about 400 ms; a new
			// key's first alert in the middle.
			newWait := make(chan time.Duration, 1)
			for i := 2; i <= 101; i++ {
				appendRecords(t, sp, rec("k", i, false))
				if i == 50 {
					appendRecords(t, sp, rec("n", 1, false))
					go func(sent time.Time) {
						for len(fake.delivered("incident:n")) == 0 && time.Since(sent) < 5*time.Second {
							time.Sleep(time.Millisecond)
						}
						newWait <- time.Since(sent)
					}(time.Now())
				}
				time.Sleep(4 * time.Millisecond)
			}
			last := time.Now()
			waitFor(t, "the spool to drain", func() bool { return sp.Stats().Pending == 0 })
			drained := time.Since(last)
			if got := len(fake.delivered("incident:n")); got != 1 {
				t.Fatalf("new key: %d alerts delivered, want 1", got)
			}
			if got := len(fake.delivered("incident:k")); got != 101 {
				t.Fatalf("running incident: %d alerts delivered, want 101", got)
			}
			n := calls("incident:k") - before
			if n < tt.minCalls || n > tt.maxCalls {
				t.Errorf("the running incident's 100 alerts took %d calls, want %d to %d", n, tt.minCalls, tt.maxCalls)
			}
			if wait := cmp.Or(tt.busyWait, DefaultBusyWait); wait > 0 && drained >= wait {
				t.Errorf("the last alerts went %s after the arrivals stopped, want less than BusyWait (%s)", drained, wait)
			}
			if d := <-newWait; d > 100*time.Millisecond {
				t.Errorf("the new key's first alert went %s after it arrived, want at once", d)
			}
		})
	}
}
