package auth

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestFailureWatch(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var fired []string
	w := &FailureWatch{Threshold: 3, Window: time.Minute, Now: func() time.Time { return now },
		OnExceeded: func(key string, n int) { fired = append(fired, key) }}
	steps := []struct {
		name      string
		advance   time.Duration
		key       string
		success   bool
		wantCross bool
		wantFired int
	}{
		{"first", 0, "jdoe", false, false, 0},
		{"second", 10 * time.Second, "jdoe", false, false, 0},
		{"other key does not count", 0, "alice", false, false, 0},
		{"third crosses", 10 * time.Second, "jdoe", false, true, 1},
		{"fourth does not fire again", time.Second, "jdoe", false, false, 1},
		{"window slides past, re-armed after success", 0, "jdoe", true, false, 1},
		{"after success starts over", time.Second, "jdoe", false, false, 1},
		{"old failures expire", 2 * time.Minute, "jdoe", false, false, 1},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.success {
			w.Success(s.key)
			continue
		}
		if got := w.Failure(s.key); got != s.wantCross {
			t.Errorf("%s: crossed = %v, want %v", s.name, got, s.wantCross)
		}
		if len(fired) != s.wantFired {
			t.Errorf("%s: fired %d times, want %d", s.name, len(fired), s.wantFired)
		}
	}
	if c := w.Count("jdoe"); c != 1 {
		t.Errorf("count = %d, want 1 (older ones expired)", c)
	}
}

func TestFailureWatchConcurrent(t *testing.T) {
	var mu sync.Mutex
	fires := 0
	w := &FailureWatch{Threshold: 50, Window: time.Hour, OnExceeded: func(string, int) { mu.Lock(); fires++; mu.Unlock() }}
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); w.Failure("k") }()
	}
	wg.Wait()
	if fires != 1 {
		t.Fatalf("fired %d times, want exactly once", fires)
	}
}

// TestFailureWatchRearms: a source that crosses the threshold in one
// window and again in the next notifies twice (the watch re-arms for each
// window rather than firing once per key for ever); within one window a
// sustained attack notifies once.
func TestFailureWatchRearms(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var fired []time.Time
	w := &FailureWatch{Threshold: 5, Window: time.Minute, Now: func() time.Time { return now },
		OnExceeded: func(string, int) { fired = append(fired, now) }}
	burst := func(n int) {
		for range n {
			w.Failure("203.0.113.7")
			now = now.Add(time.Second)
		}
	}
	burst(20) // crosses at the fifth, then keeps failing within the window
	if len(fired) != 1 {
		t.Fatalf("first window: fired %d times, want 1", len(fired))
	}
	now = now.Add(2 * time.Minute) // a quiet window
	burst(5)
	if len(fired) != 2 {
		t.Fatalf("second window: fired %d times, want 2 (the threshold must re-arm)", len(fired))
	}
	// A sustained attack notifies once per window, not once per failure.
	burst(130)
	if len(fired) < 3 || len(fired) > 5 {
		t.Fatalf("sustained for 130 s: fired %d times in all, want one more per window", len(fired))
	}
	for i := 1; i < len(fired); i++ {
		if d := fired[i].Sub(fired[i-1]); d < time.Minute {
			t.Errorf("notifications %d and %d only %s apart", i-1, i, d)
		}
	}
}

// TestFailureWatchBounded: 100,000 sources failing once each leave at
// most MaxKeys+1 keys (the map does not keep every one of them), the
// overflow still crosses the threshold, and keys whose failures left the
// window are forgotten.
func TestFailureWatchBounded(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var fired []string
	w := &FailureWatch{Threshold: 5, Window: time.Minute, MaxKeys: 1000, Now: func() time.Time { return now },
		OnExceeded: func(k string, _ int) { fired = append(fired, k) }}
	for i := range 100_000 {
		w.Failure(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&0xff, i&0xff))
		if i%100 == 0 {
			now = now.Add(time.Millisecond)
		}
	}
	if n := w.Len(); n > 1001 {
		t.Fatalf("%d keys after 100,000 sources, want at most 1001", n)
	}
	if !slices.Contains(fired, OverflowKey) {
		t.Errorf("the overflow of 99,000 sources did not cross the threshold: fired %v", fired)
	}
	// Past the window every key is idle: a new failure sweeps them out.
	now = now.Add(2 * time.Minute)
	w.Failure("198.51.100.1")
	if n := w.Len(); n != 1 {
		t.Fatalf("%d keys after the window passed, want 1", n)
	}
	// The default bound applies without MaxKeys.
	d := &FailureWatch{Threshold: 5, Window: time.Hour}
	for i := range 100_000 {
		d.Failure(fmt.Sprint("k", i))
	}
	if n := d.Len(); n > DefaultMaxKeys+1 {
		t.Fatalf("default: %d keys, want at most %d", n, DefaultMaxKeys+1)
	}
}
