// Package ratelimit bounds what one key (a source address, a detector)
// may ask of a server: requests per second (a token bucket,
// golang.org/x/time/rate) and requests in flight, with a bounded number of
// keys remembered. The intake and the responder API use it.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// overflowKey is the limiter shared by keys beyond a limiterSet's capacity.
const overflowKey = "\x00overflow"

// gate is the rate and concurrency limit of one key.
type gate struct {
	bucket   *rate.Limiter
	max      int
	inflight int // guarded by Set.mu
	last     time.Time
}

// Set holds one token bucket and in-flight count per key (a source
// address, a detector), at most max of them: gates that are idle, have nothing in flight and whose
// bucket is full again are forgotten (such a gate is the same as a new
// one, so forgetting it grants nothing); when the set is still full, new
// keys share one overflow gate.
type Set struct {
	mu        sync.Mutex
	gates     map[string]*gate
	max       int
	idle      time.Duration
	lastSweep time.Time
}

// NewSet returns a set of at most max keys, whose idle keys are forgotten
// after idle.
func NewSet(max int, idle time.Duration) *Set {
	return &Set{gates: map[string]*gate{}, max: max, idle: idle}
}

// Refusal says why a key was refused and when to come back.
type Refusal struct {
	Why        string
	RetryAfter time.Duration
}

// Acquire takes one request of rate and one slot in flight for key, whose
// limits are r, burst and conc; release gives the slot back. On a refusal
// nothing is taken.
func (s *Set) Acquire(key string, r rate.Limit, burst, conc int, now time.Time) (release func(), ref *Refusal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.gates[key]
	if !ok {
		if len(s.gates) >= s.max {
			s.sweep(now)
		}
		if len(s.gates) >= s.max {
			key = overflowKey
			g = s.gates[key]
		}
		if g == nil {
			g = &gate{bucket: rate.NewLimiter(r, burst)}
			s.gates[key] = g
		}
	} else if now.Sub(s.lastSweep) > s.idle {
		s.sweep(now)
	}
	if g.bucket.Limit() != r || g.bucket.Burst() != burst {
		g.bucket.SetLimitAt(now, r)
		g.bucket.SetBurstAt(now, burst)
	}
	g.max, g.last = conc, now
	if g.inflight >= g.max {
		return nil, &Refusal{Why: "too many requests in flight", RetryAfter: time.Second}
	}
	res := g.bucket.ReserveN(now, 1)
	if !res.OK() {
		return nil, &Refusal{Why: "rate limited", RetryAfter: time.Second}
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return nil, &Refusal{Why: "rate limited", RetryAfter: d}
	}
	g.inflight++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			g.inflight--
			s.mu.Unlock()
		})
	}, nil
}

// sweep forgets the gates that are the same as new ones. Called with mu
// held, at most once a second when the set is full.
func (s *Set) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < time.Second && len(s.gates) >= s.max {
		return
	}
	s.lastSweep = now
	for k, g := range s.gates {
		if g.inflight == 0 && now.Sub(g.last) >= s.idle && g.bucket.TokensAt(now) >= float64(g.bucket.Burst()) {
			delete(s.gates, k)
		}
	}
}

// Size returns how many keys the set holds.
func (s *Set) Size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.gates)
}

// RetryAfterSeconds renders d as a Retry-After value: whole seconds,
// rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
