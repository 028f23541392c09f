package intake

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LimitsConfig bounds what one source address and one detector may ask of
// the intake: requests per second (a token bucket, golang.org/x/time/rate)
// and requests in flight. A request over a limit is answered 429 with
// Retry-After before its body is read.
type LimitsConfig struct {
	SourceRate        float64       `env:"IRU_INTAKE_SOURCE_RATE" envDefault:"50" doc:"Intake requests per second one source address may make (token bucket, refilled continuously); more get 429 with Retry-After before the body is read."`
	SourceBurst       int           `env:"IRU_INTAKE_SOURCE_BURST" envDefault:"100" doc:"Intake requests one source address may make at once above IRU_INTAKE_SOURCE_RATE (the bucket's size)."`
	SourceConcurrency int           `env:"IRU_INTAKE_SOURCE_CONCURRENCY" envDefault:"16" doc:"Intake requests of one source address in flight at once; more get 429."`
	DetectorRate      float64       `env:"IRU_INTAKE_DETECTOR_RATE" envDefault:"100" doc:"Intake requests per second one detector may make (default for detectors whose limits do not say); more get 429 with Retry-After."`
	DetectorBurst     int           `env:"IRU_INTAKE_DETECTOR_BURST" envDefault:"200" doc:"Intake requests one detector may make at once above IRU_INTAKE_DETECTOR_RATE."`
	DetectorConc      int           `env:"IRU_INTAKE_DETECTOR_CONCURRENCY" envDefault:"32" doc:"Intake requests of one detector whose body is being read or processed at once; more get 429. Bounds the intake's memory to about this many bodies per detector."`
	MaxSources        int           `env:"IRU_INTAKE_MAX_SOURCES" envDefault:"10000" doc:"Source addresses whose limits the intake remembers; when full, idle ones are forgotten and new sources beyond it share one overflow limit."`
	SourceIdle        time.Duration `env:"IRU_INTAKE_SOURCE_IDLE" envDefault:"10m" doc:"How long a source address's limits are kept after its last request once its bucket is full again (a full, idle bucket is the same as a new one)."`
}

// Validate implements config.Validator; errors name the variable.
func (c *LimitsConfig) Validate() error {
	var p []error
	if c.SourceRate <= 0 || math.IsInf(c.SourceRate, 0) || math.IsNaN(c.SourceRate) {
		p = append(p, fmt.Errorf("IRU_INTAKE_SOURCE_RATE=%g: must be a positive number", c.SourceRate))
	}
	if c.DetectorRate <= 0 || math.IsInf(c.DetectorRate, 0) || math.IsNaN(c.DetectorRate) {
		p = append(p, fmt.Errorf("IRU_INTAKE_DETECTOR_RATE=%g: must be a positive number", c.DetectorRate))
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"IRU_INTAKE_SOURCE_BURST", c.SourceBurst}, {"IRU_INTAKE_SOURCE_CONCURRENCY", c.SourceConcurrency},
		{"IRU_INTAKE_DETECTOR_BURST", c.DetectorBurst}, {"IRU_INTAKE_DETECTOR_CONCURRENCY", c.DetectorConc}} {
		if v.n < 1 {
			p = append(p, fmt.Errorf("%s=%d: must be at least 1", v.name, v.n))
		}
	}
	if c.MaxSources < 1 || c.MaxSources > 10_000_000 {
		p = append(p, fmt.Errorf("IRU_INTAKE_MAX_SOURCES=%d: want 1 to 10000000", c.MaxSources))
	}
	if c.SourceIdle <= 0 {
		p = append(p, fmt.Errorf("IRU_INTAKE_SOURCE_IDLE=%s: must be positive", c.SourceIdle))
	}
	return errors.Join(p...)
}

// DefaultLimits are the defaults of [LimitsConfig].
func DefaultLimits() LimitsConfig {
	return LimitsConfig{SourceRate: 50, SourceBurst: 100, SourceConcurrency: 16, DetectorRate: 100, DetectorBurst: 200,
		DetectorConc: 32, MaxSources: 10000, SourceIdle: 10 * time.Minute}
}

// overflowKey is the limiter shared by keys beyond a limiterSet's capacity.
const overflowKey = "\x00overflow"

// gate is the rate and concurrency limit of one key.
type gate struct {
	bucket   *rate.Limiter
	max      int
	inflight int // guarded by limiterSet.mu
	last     time.Time
}

// limiterSet holds one gate per key (source address or detector), at most
// max of them: gates that are idle, have nothing in flight and whose
// bucket is full again are forgotten (such a gate is the same as a new
// one, so forgetting it grants nothing); when the set is still full, new
// keys share one overflow gate.
type limiterSet struct {
	mu        sync.Mutex
	gates     map[string]*gate
	max       int
	idle      time.Duration
	lastSweep time.Time
}

func newLimiterSet(max int, idle time.Duration) *limiterSet {
	return &limiterSet{gates: map[string]*gate{}, max: max, idle: idle}
}

// refusal says why a gate refused and when to come back.
type refusal struct {
	why        string
	retryAfter time.Duration
}

// acquire takes one request of rate and one slot in flight for key, whose
// limits are r, burst and conc; release gives the slot back. On a refusal
// nothing is taken.
func (s *limiterSet) acquire(key string, r rate.Limit, burst, conc int, now time.Time) (release func(), ref *refusal) {
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
		return nil, &refusal{why: "too many requests in flight", retryAfter: time.Second}
	}
	res := g.bucket.ReserveN(now, 1)
	if !res.OK() {
		return nil, &refusal{why: "rate limited", retryAfter: time.Second}
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return nil, &refusal{why: "rate limited", retryAfter: d}
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
func (s *limiterSet) sweep(now time.Time) {
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

// size returns how many gates the set holds.
func (s *limiterSet) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.gates)
}

// retryAfterSeconds renders d as a Retry-After value: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
