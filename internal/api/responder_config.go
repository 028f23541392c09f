package api

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/auth"
)

// Config is the responder API's part of the `starter serve` configuration.
// Load it with internal/config (config.Load); it validates itself.
type Config struct {
	OIDC   auth.OIDCConfig
	Access accesslog.Config

	TrustedProxies    []string      `env:"IRU_API_TRUSTED_PROXIES" envSeparator:"," doc:"Comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For the API server believes; empty: the client address is always the peer address."`
	AuthFailThreshold int           `env:"IRU_AUTH_FAIL_THRESHOLD" envDefault:"5" doc:"Failed responder authentications from one client address within IRU_AUTH_FAIL_WINDOW that send a failed_auth_threshold notification."`
	AuthFailWindow    time.Duration `env:"IRU_AUTH_FAIL_WINDOW" envDefault:"5m" doc:"Sliding window of IRU_AUTH_FAIL_THRESHOLD."`
	MaxBodyBytes      int64         `env:"IRU_API_MAX_BODY_BYTES" envDefault:"65536" doc:"Largest request body the responder API reads (decisions, notes); larger bodies get 413."`
	RequestTimeout    time.Duration `env:"IRU_API_REQUEST_TIMEOUT" envDefault:"20s" doc:"How long one responder API request may take (Temporal queries and updates included) before it answers 504."`
	SourceRate        float64       `env:"IRU_API_SOURCE_RATE" envDefault:"50" doc:"Responder API requests per second one client address may make (token bucket), counted before authentication; more get 429 with Retry-After. Every request costs Temporal calls, so one address cannot flood the server."`
	SourceBurst       int           `env:"IRU_API_SOURCE_BURST" envDefault:"100" doc:"Responder API requests one client address may make at once above IRU_API_SOURCE_RATE (the bucket's size)."`
	SourceConcurrency int           `env:"IRU_API_SOURCE_CONCURRENCY" envDefault:"16" doc:"Responder API requests of one client address in flight at once; more get 429."`
}

// Defaults of the per-address limits, used when a [Config] built in code
// leaves them zero (the environment always sets them).
const (
	defaultSourceRate        = 50
	defaultSourceBurst       = 100
	defaultSourceConcurrency = 16
	// maxSources bounds the client addresses whose limits are remembered;
	// beyond it new addresses share one limit (see package ratelimit).
	maxSources = 10_000
)

// Validate checks the configuration; errors name the variable.
func (c *Config) Validate() error {
	return errors.Join(c.validateResponder(), c.Access.Validate())
}

// validateResponder checks what the [Responder] itself uses.
func (c *Config) validateResponder() error {
	var p []error
	if c.OIDC.IssuerURL == "" {
		p = append(p, errors.New("IRU_OIDC_ISSUER: must not be empty"))
	}
	if c.OIDC.Audience == "" {
		p = append(p, errors.New("IRU_OIDC_AUDIENCE: must not be empty"))
	}
	if _, err := ParseProxies(c.TrustedProxies); err != nil {
		p = append(p, fmt.Errorf("IRU_API_TRUSTED_PROXIES: %w", err))
	}
	if c.AuthFailThreshold < 1 {
		p = append(p, fmt.Errorf("IRU_AUTH_FAIL_THRESHOLD=%d: must be at least 1", c.AuthFailThreshold))
	}
	if c.AuthFailWindow <= 0 {
		p = append(p, fmt.Errorf("IRU_AUTH_FAIL_WINDOW=%s: must be positive", c.AuthFailWindow))
	}
	if c.MaxBodyBytes < 1024 {
		p = append(p, fmt.Errorf("IRU_API_MAX_BODY_BYTES=%d: must be at least 1024", c.MaxBodyBytes))
	}
	if c.OIDC.SessionCache < 0 || c.OIDC.SessionCache > time.Minute {
		p = append(p, fmt.Errorf("IRU_OIDC_SESSION_CACHE=%s: between 0 and 1m (a revoked session stays usable that long)", c.OIDC.SessionCache))
	}
	if c.RequestTimeout <= 0 {
		p = append(p, fmt.Errorf("IRU_API_REQUEST_TIMEOUT=%s: must be positive", c.RequestTimeout))
	}
	if c.SourceRate < 0 || math.IsInf(c.SourceRate, 0) || math.IsNaN(c.SourceRate) {
		p = append(p, fmt.Errorf("IRU_API_SOURCE_RATE=%g: must be a positive number", c.SourceRate))
	}
	if c.SourceBurst < 0 {
		p = append(p, fmt.Errorf("IRU_API_SOURCE_BURST=%d: must be at least 1", c.SourceBurst))
	}
	if c.SourceConcurrency < 0 {
		p = append(p, fmt.Errorf("IRU_API_SOURCE_CONCURRENCY=%d: must be at least 1", c.SourceConcurrency))
	}
	return errors.Join(p...)
}

// Proxies returns the parsed IRU_API_TRUSTED_PROXIES (call after Validate).
func (c *Config) Proxies() []netip.Prefix {
	p, _ := ParseProxies(c.TrustedProxies)
	return p
}

// ParseProxies parses addresses ("10.0.0.1") and CIDRs ("10.0.0.0/8").
func ParseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q: want an address or a CIDR: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: want an address or a CIDR: %w", s, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
