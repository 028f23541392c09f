package auth

import (
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
