package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

// TestSourceLimitersBounded: 50,000 source addresses leave at most
// MaxSources+1 limiters, and idle full buckets are forgotten.
func TestSourceLimitersBounded(t *testing.T) {
	s := NewSet(100, time.Minute)
	now := time.Unix(1700000000, 0)
	for i := range 50_000 {
		release, ref := s.Acquire(fmt.Sprintf("10.1.%d.%d", i>>8, i&0xff), 10, 20, 4, now)
		if ref == nil {
			release()
		}
	}
	if n := s.Size(); n > 101 {
		t.Fatalf("%d limiters after 50,000 sources, want at most 101", n)
	}
	now = now.Add(2 * time.Minute)
	if release, ref := s.Acquire("192.0.2.1", 10, 20, 4, now); ref == nil {
		release()
	}
	if n := s.Size(); n > 2 {
		t.Fatalf("%d limiters once every old one is idle and full, want at most 2", n)
	}
}

// TestAcquireLimits: the burst is granted, the next request is refused
// with a Retry-After of about one token's time, and the concurrency limit
// refuses while the slots are held; a release frees a slot.
func TestAcquireLimits(t *testing.T) {
	s := NewSet(10, time.Minute)
	now := time.Unix(1700000000, 0)
	var held []func()
	for i := range 3 {
		release, ref := s.Acquire("a", 1, 3, 10, now)
		if ref != nil {
			t.Fatalf("request %d within the burst refused: %+v", i, ref)
		}
		held = append(held, release)
	}
	if _, ref := s.Acquire("a", 1, 3, 10, now); ref == nil || ref.Why != "rate limited" || ref.RetryAfter <= 0 || ref.RetryAfter > time.Second {
		t.Fatalf("request beyond the burst: %+v, want rate limited within a second", ref)
	}
	if _, ref := s.Acquire("b", 100, 100, 3, now); ref != nil {
		t.Fatalf("another key shares a's bucket: %+v", ref)
	}
	for range 2 {
		if _, ref := s.Acquire("c", 100, 100, 2, now); ref != nil {
			t.Fatal(ref)
		}
	}
	if _, ref := s.Acquire("c", 100, 100, 2, now); ref == nil || ref.Why != "too many requests in flight" {
		t.Fatalf("third in flight with a limit of 2: %+v", ref)
	}
	for _, r := range held {
		r()
		r() // a second release gives nothing back twice
	}
	if RetryAfterSeconds(1500*time.Millisecond) != 2 || RetryAfterSeconds(0) != 1 {
		t.Error("RetryAfterSeconds rounds up to whole seconds, at least 1")
	}
}
