package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
)

// inventory is a fake asset inventory.
type inventory map[string]string

func (i inventory) AssetAddr(_ context.Context, asset string) (netip.Addr, error) {
	a, ok := i[asset]
	if !ok {
		return netip.Addr{}, activities.NewFinalError(activities.ErrTypeNotFound, "no asset "+asset, nil)
	}
	return netip.MustParseAddr(a), nil
}

// ResolvedAddr knows no resolved assets: these tests run without one.
func (i inventory) ResolvedAddr(context.Context, activities.AssetRef) (netip.Addr, error) {
	return netip.Addr{}, errors.New("fake inventory: no resolved assets")
}

// counting is a listener that counts connections and HTTP requests: a
// refused probe must reach it not even once.
type counting struct {
	srv      *httptest.Server
	conns    atomic.Int32
	requests atomic.Int32
	port     int
}

func newCounting(t *testing.T) *counting {
	t.Helper()
	c := &counting{}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c.requests.Add(1)
		_, _ = w.Write([]byte(`{"payloads":[]}`))
	}))
	c.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	_, p, _ := net.SplitHostPort(c.srv.Listener.Addr().String())
	c.port, _ = strconv.Atoi(p)
	return c
}

// TestProbeTargetsRefused attacks the probe with the targets an alert or a
// tampered inventory could point it at: cloud metadata, link-local and
// loopback addresses, the platform's own codec server, a host name that
// resolves to loopback, an unlisted target. Each is refused with a final
// Precondition error and the listener standing in for the victim receives
// nothing.
func TestProbeTargetsRefused(t *testing.T) {
	codec := newCounting(t) // the platform's codec server on loopback
	other := newCounting(t) // a loopback service that is not the platform's
	codecAddr := codec.srv.Listener.Addr().String()
	inv := inventory{
		"metadata":  "169.254.169.254",
		"v6-link":   "fe80::1",
		"mapped":    "::ffff:169.254.169.254",
		"loopback":  "127.0.0.1",
		"wildcard":  "0.0.0.0",
		"multicast": "239.1.1.1",
	}
	for _, tc := range []struct {
		name   string
		cfg    Config
		params map[string]string
		victim *counting
		reason string
	}{
		{"metadata address from the inventory", Config{Scheme: "http", Port: 80, Path: "/latest/meta-data/"}, map[string]string{"asset": "metadata"}, nil, "link-local"},
		{"ipv6 link-local", Config{}, map[string]string{"asset": "v6-link"}, nil, "link-local"},
		{"ipv4-mapped metadata", Config{}, map[string]string{"asset": "mapped"}, nil, "link-local"},
		{"unspecified", Config{}, map[string]string{"asset": "wildcard"}, nil, "unspecified"},
		{"multicast", Config{}, map[string]string{"asset": "multicast"}, nil, "multicast"},
		{"loopback codec via the inventory", Config{Scheme: "http", Port: codec.port, Path: "/decode"}, map[string]string{"asset": "loopback"}, codec, "platform's own listen address"},
		{"loopback service via the inventory", Config{Scheme: "http", Port: other.port, Path: "/"}, map[string]string{"asset": "loopback"}, other, "loopback"},
		{"codec url as an unlisted target", Config{}, map[string]string{"target": codec.srv.URL + "/decode"}, codec, "allow-list"},
		{"own address even in an allowed network", Config{Scheme: "http", Port: codec.port, Path: "/decode", AllowNets: []string{"127.0.0.0/8"}},
			map[string]string{"asset": "loopback"}, codec, "platform's own listen address"},
		{"listed host name resolving to loopback", Config{Targets: []string{"localhost:" + strconv.Itoa(other.port)}},
			map[string]string{"target": "localhost:" + strconv.Itoa(other.port)}, other, "loopback"},
		{"listed url with a host name resolving to loopback", Config{Targets: []string{"http://localhost:" + strconv.Itoa(other.port) + "/x"}},
			map[string]string{"target": "http://localhost:" + strconv.Itoa(other.port) + "/x"}, other, "loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.RetryDelay = time.Millisecond
			a, err := New(cfg, inv, codecAddr)
			if err != nil {
				t.Fatal(err)
			}
			before := int32(0)
			if tc.victim != nil {
				before = tc.victim.conns.Load() + tc.victim.requests.Load()
			}
			params := tc.params
			params["retries"] = "2"
			_, err = run(t, a, params, false)
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || ae.Type() != activities.ErrTypePrecondition || !ae.NonRetryable() || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("probe error = %v, want a final Precondition naming %q", err, tc.reason)
			}
			if tc.victim != nil {
				if got := tc.victim.conns.Load() + tc.victim.requests.Load(); got != before {
					t.Fatalf("the refused target was contacted (%d connections/requests)", got-before)
				}
			}
		})
	}

	t.Run("explicitly allowed loopback is probed", func(t *testing.T) {
		a, err := New(Config{Scheme: "http", Port: other.port, Path: "/health", AllowNets: []string{"127.0.0.0/8"}, RetryDelay: time.Millisecond}, inv, codecAddr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := run(t, a, map[string]string{"asset": "loopback"}, false)
		if err != nil || res.Outputs["healthy"] != "true" || other.requests.Load() == 0 {
			t.Fatalf("allowed probe = %+v, %v (requests %d)", res, err, other.requests.Load())
		}
	})
	t.Run("asset entry of the allow-list", func(t *testing.T) {
		a, err := New(Config{Targets: []string{"web-1=" + other.srv.URL + "/ct/web-1/health"}, RetryDelay: time.Millisecond}, inv, codecAddr)
		if err != nil {
			t.Fatal(err)
		}
		n := other.requests.Load()
		res, err := run(t, a, map[string]string{"asset": "web-1"}, false)
		if err != nil || res.Outputs["healthy"] != "true" || other.requests.Load() != n+1 {
			t.Fatalf("allow-listed asset probe = %+v, %v", res, err)
		}
	})
	t.Run("the incident's asset is the default", func(t *testing.T) {
		a, err := New(Config{Scheme: "http", Port: 80}, inv, codecAddr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := a.HealthProbe(context.Background(), activities.ActionInput{Action: activities.NetHealthProbe, Asset: "metadata", DryRun: true})
		if err == nil || !strings.Contains(err.Error(), "169.254.169.254") {
			t.Fatalf("dry run of a refused target = %+v, %v", res, err)
		}
	})
}
