package intake

import (
	"errors"
	"fmt"
	"math"
	"time"
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
