// Package probe implements the net.health_probe action of the activity
// catalog: an HTTP(S) GET that must answer with an expected status (any
// 2xx/3xx by default; redirects are not followed), or a TCP connect, tried
// a number of times with a per-attempt timeout and a heartbeat between
// attempts. A target that never becomes healthy fails the step with a
// retryable error of type [ErrTypeUnhealthy]; a malformed target is a final
// BadParams error.
//
// Nothing an alert carries chooses what is probed: the target is the
// asset's inventory address with the configured scheme, port and path
// (IRU_PROBE_SCHEME, IRU_PROBE_PORT, IRU_PROBE_PATH), read from the
// container the intake resolved the asset to (looked up by name only when
// the run carries no resolved asset), or the asset's entry
// of the allow-list IRU_PROBE_TARGETS; a step may name a `target` only if
// it is on that list. Link-local, loopback, unspecified and multicast
// addresses and the platform's own listen addresses are refused (final
// Precondition, nothing is sent) unless explicitly allowed, on the target
// and again at dial time, after name resolution.
package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/redact"
	"github.com/iru-responder/responder/internal/tlsutil"
)

// ErrTypeUnhealthy is the (retryable) error type of a probe whose target
// did not answer as expected in any attempt.
const ErrTypeUnhealthy = "ProbeUnhealthy"

// Config configures the probe.
type Config struct {
	CAFile     string        `env:"IRU_PROBE_CA_FILE" doc:"PEM file of an extra CA trusted for HTTPS probes; system roots are kept."`
	RetryDelay time.Duration `env:"IRU_PROBE_RETRY_DELAY" envDefault:"1s" doc:"Pause between two attempts of one probe."`
	Scheme     string        `env:"IRU_PROBE_SCHEME" envDefault:"tcp" doc:"How an asset is probed at its inventory address: tcp (connect), http or https (GET IRU_PROBE_PATH)."`
	Port       int           `env:"IRU_PROBE_PORT" envDefault:"22" doc:"Port probed at an asset's inventory address."`
	Path       string        `env:"IRU_PROBE_PATH" envDefault:"/healthz" doc:"Path of the HTTP(S) health endpoint probed at an asset's inventory address."`
	Targets    []string      `env:"IRU_PROBE_TARGETS" envSeparator:"," doc:"Allow-list of probe targets, comma separated: ASSET=TARGET probes TARGET (URL or host:port) for that asset instead of its inventory address; a bare TARGET may be named by a step's target parameter. Listed address literals are allowed even when loopback or link-local."`
	AllowNets  []string      `env:"IRU_PROBE_ALLOW_NETS" envSeparator:"," doc:"Networks (CIDRs) a probe may reach although they are loopback, link-local or multicast; the platform's own listen addresses stay refused."`
	// PlatformAddrs are refused as probe targets besides IRU_API_ADDR and
	// the worker's own addresses (given to New).
	PlatformAddrs []string `env:"IRU_PROBE_PLATFORM_ADDRS" envSeparator:"," doc:"Other listen addresses (host:port) of the platform that probes must never reach, besides IRU_API_ADDR, IRU_CODEC_SERVER_ADDR and IRU_WORKER_HTTP_ADDR."`
	APIAddr       string   `env:"IRU_API_ADDR" envDefault:"127.0.0.1:8080" doc:"Listen address of the API server."`
}

// Validate checks the configuration (it implements internal/config.Validator).
func (c *Config) Validate() error {
	var p []error
	if c.RetryDelay < 0 {
		p = append(p, fmt.Errorf("IRU_PROBE_RETRY_DELAY=%s: must not be negative", c.RetryDelay))
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			p = append(p, fmt.Errorf("IRU_PROBE_CA_FILE=%q: %w", c.CAFile, err))
		}
	}
	switch c.Scheme {
	case "tcp", "http", "https":
	default:
		p = append(p, fmt.Errorf("IRU_PROBE_SCHEME=%q: want tcp, http or https", c.Scheme))
	}
	if c.Port < 1 || c.Port > 65535 {
		p = append(p, fmt.Errorf("IRU_PROBE_PORT=%d: want a port 1-65535", c.Port))
	}
	if c.Scheme != "tcp" && !strings.HasPrefix(c.Path, "/") {
		p = append(p, fmt.Errorf("IRU_PROBE_PATH=%q: want an absolute path", c.Path))
	}
	if _, err := parseAllowList(c.Targets); err != nil {
		p = append(p, err)
	}
	if _, err := activities.ParseCIDRList(strings.Join(c.AllowNets, ",")); err != nil {
		p = append(p, fmt.Errorf("IRU_PROBE_ALLOW_NETS: %w", err))
	}
	for _, a := range append([]string{c.APIAddr}, c.PlatformAddrs...) {
		if _, _, err := net.SplitHostPort(a); a != "" && err != nil {
			p = append(p, fmt.Errorf("IRU_PROBE_PLATFORM_ADDRS / IRU_API_ADDR: %q is not host:port", a))
		}
	}
	return errors.Join(p...)
}

// Activities holds the net.health_probe action.
type Activities struct {
	cfg    Config
	hc     *http.Client
	dialer *net.Dialer
	inv    Inventory
	allow  allowList
	policy *policy
}

// New returns the probe activities for cfg. inv gives assets' inventory
// addresses; platform lists the worker's own listen addresses (metrics,
// codec server), refused like IRU_API_ADDR.
func New(cfg Config, inv Inventory, platform ...string) (*Activities, error) {
	if err := config.FillDefaults(&cfg); err != nil {
		return nil, fmt.Errorf("probe activities: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("probe activities: %w", err)
	}
	allow, _ := parseAllowList(cfg.Targets)
	nets, _ := activities.ParseCIDRList(strings.Join(cfg.AllowNets, ","))
	var own []string
	for _, a := range append(append([]string{cfg.APIAddr}, platform...), cfg.PlatformAddrs...) {
		if a != "" {
			own = append(own, a)
		}
	}
	pol := &policy{exact: allow.exactAddrs(), nets: nets, platform: own, localAddrs: interfaceAddrs,
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pool, err := tlsutil.CertPool(cfg.CAFile, true)
		if err != nil {
			return nil, fmt.Errorf("probe activities: IRU_PROBE_CA_FILE: %w", err)
		}
		tlsCfg.RootCAs = pool
	}
	dialer := &net.Dialer{ControlContext: pol.control}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.DisableKeepAlives = true // every attempt is a fresh connection
	tr.Proxy = nil              // a proxy would connect where the policy cannot see
	tr.DialContext = dialer.DialContext
	return &Activities{cfg: cfg, inv: inv, allow: allow, policy: pol, dialer: dialer, hc: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// Register registers net.health_probe under its catalog name. No retry
// policy is set here: the workflow uses the catalog's recommended options.
func (a *Activities) Register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}) {
	r.RegisterActivityWithOptions(a.HealthProbe, activity.RegisterOptions{Name: activities.NetHealthProbe})
}

// target is a parsed probe target.
type target struct {
	url  *url.URL // HTTP(S)
	addr string   // TCP host:port
}

func (t target) String() string {
	if t.url != nil {
		return redact.URL(t.url.String())
	}
	return "tcp://" + t.addr
}

func parseTarget(s string) (target, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return target{}, fmt.Errorf("target %q: %w", redact.URL(s), redact.Error(err))
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			return target{}, fmt.Errorf("target %q: want an http(s) URL with a host", redact.URL(s))
		}
		return target{url: u}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return target{}, fmt.Errorf("target %q: want an http(s) URL or host:port: %w", s, err)
	}
	if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
		return target{}, fmt.Errorf("target %q: want host:port with a host and a port 1-65535", s)
	}
	return target{addr: s}, nil
}

// HealthProbe implements [activities.NetHealthProbe]. Outputs: healthy
// ("true") and detail (what answered, on which attempt); the summary (and
// the plan of a dry run) says where the target came from: the allow-list,
// the container the intake resolved, or a look-up by name.
func (a *Activities) HealthProbe(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.NetHealthProbeParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	t, from, err := a.resolveTarget(ctx, in, p)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if err := a.policy.checkLiteral(ctx, t); err != nil {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypePrecondition, activities.NetHealthProbe+": "+err.Error(), nil)
	}
	retries, timeout, want := p.Retries, p.Timeout, p.ExpectStatus
	if in.DryRun {
		p := fmt.Sprintf("probe %s (%s) up to %d times (timeout %s each)", t, from, retries, timeout)
		return activities.ActionResult{Plan: []string{p}, Outputs: map[string]string{"healthy": "", "detail": ""}, Summary: "dry run: " + p}, nil
	}
	var last string
	for i := 1; i <= retries; i++ {
		if i > 1 {
			select {
			case <-ctx.Done():
				return activities.ActionResult{}, fmt.Errorf("%s %s: %w", activities.NetHealthProbe, t, ctx.Err())
			case <-time.After(a.cfg.RetryDelay):
			}
		}
		ok, detail, rerr := a.attempt(ctx, t, timeout, want)
		if rerr != nil {
			return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypePrecondition,
				fmt.Sprintf("%s %s: %v", activities.NetHealthProbe, t, rerr), nil)
		}
		detail = fmt.Sprintf("%s (attempt %d/%d)", detail, i, retries)
		activity.RecordHeartbeat(ctx, detail)
		if ok {
			return activities.ActionResult{Outputs: map[string]string{"healthy": "true", "detail": detail}, Summary: "healthy: " + detail + "; target: " + from}, nil
		}
		last = detail
		if ctx.Err() != nil {
			return activities.ActionResult{}, fmt.Errorf("%s %s: %w", activities.NetHealthProbe, t, ctx.Err())
		}
	}
	return activities.ActionResult{}, temporal.NewApplicationError(fmt.Sprintf("%s: %s (%s) unhealthy after %d attempts: %s", activities.NetHealthProbe, t, from, retries, last), ErrTypeUnhealthy)
}

// attempt probes once and tells whether the target is healthy, and what it
// saw; a connection the address policy refused is returned as an error.
func (a *Activities) attempt(ctx context.Context, t target, timeout time.Duration, want int) (bool, string, error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	if t.url == nil {
		conn, err := a.dialer.DialContext(actx, "tcp", t.addr)
		if err != nil {
			if r, ok := refused(err); ok {
				return false, "", r
			}
			return false, fmt.Sprintf("tcp connect %s: %v", t.addr, describe(err)), nil
		}
		_ = conn.Close()
		return true, fmt.Sprintf("tcp connect %s ok in %s", t.addr, time.Since(start).Round(time.Millisecond)), nil
	}
	req, err := http.NewRequestWithContext(actx, http.MethodGet, t.url.String(), nil)
	if err != nil {
		return false, fmt.Sprintf("GET %s: %v", t, redact.Error(err)), nil
	}
	req.Header.Set("User-Agent", "iru-responder-health-probe")
	res, err := a.hc.Do(req)
	if err != nil {
		if r, ok := refused(err); ok {
			return false, "", r
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return false, fmt.Sprintf("GET %s: %v", t, describe(err)), nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	ok := res.StatusCode >= 200 && res.StatusCode < 400
	if want != 0 {
		ok = res.StatusCode == want
	}
	return ok, fmt.Sprintf("GET %s: HTTP %d in %s", t, res.StatusCode, time.Since(start).Round(time.Millisecond)), nil
}

func describe(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}
