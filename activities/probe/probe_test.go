package probe

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
)

func run(t *testing.T, a *Activities, params map[string]string, dry bool) (activities.ActionResult, error) {
	t.Helper()
	return runInput(t, a, activities.ActionInput{Action: activities.NetHealthProbe, Params: params, DryRun: dry})
}

// runInput runs the probe as a registered activity with input in.
func runInput(t *testing.T, a *Activities, in activities.ActionInput) (activities.ActionResult, error) {
	t.Helper()
	env := activitytest.New(nil)
	a.Register(env)
	return activitytest.Run[activities.ActionResult](env, activities.NetHealthProbe, in)
}

func TestHealthProbe(t *testing.T) {
	var failures atomic.Int32
	failures.Store(2)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/flaky": // fails twice, then answers
			if failures.Add(-1) >= 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		case "/down":
			w.WriteHeader(http.StatusInternalServerError)
			return
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	_ = closed.Close()

	// The test servers listen on loopback: they are explicitly allowed
	// targets (an allow-list entry for each URL named below).
	var targets []string
	for _, p := range []string{"/", "/flaky", "/moved", "/down", "/slow"} {
		targets = append(targets, srv.URL+p)
	}
	targets = append(targets, ln.Addr().String(), closedAddr)
	a, err := New(Config{RetryDelay: 10 * time.Millisecond, Targets: targets}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := srv.Client().Transport.(*http.Transport).Clone() // trust the test server
	tr.DisableKeepAlives, tr.Proxy, tr.DialContext = true, nil, a.dialer.DialContext
	a.hc.Transport = tr

	for _, tc := range []struct {
		name    string
		params  map[string]string
		healthy bool
		errType string
		final   bool
		detail  string
	}{
		{"https 200", map[string]string{"target": srv.URL + "/"}, true, "", false, "HTTP 200"},
		{"recovers on the third attempt", map[string]string{"target": srv.URL + "/flaky", "retries": "3"}, true, "", false, "attempt 3/3"},
		{"redirect is healthy, not followed", map[string]string{"target": srv.URL + "/moved"}, true, "", false, "HTTP 302"},
		{"expected status", map[string]string{"target": srv.URL + "/moved", "expect_status": "200"}, false, ErrTypeUnhealthy, false, "HTTP 302"},
		{"500 is unhealthy", map[string]string{"target": srv.URL + "/down", "retries": "2"}, false, ErrTypeUnhealthy, false, "after 2 attempts"},
		{"per-attempt timeout", map[string]string{"target": srv.URL + "/slow", "retries": "1", "timeout": "50ms"}, false, ErrTypeUnhealthy, false, "timed out"},
		{"tcp open", map[string]string{"target": ln.Addr().String()}, true, "", false, "tcp connect"},
		{"tcp closed", map[string]string{"target": closedAddr, "retries": "2"}, false, ErrTypeUnhealthy, false, "refused"},
		{"empty host (no ip resolved)", map[string]string{"target": ":22"}, false, activities.ErrTypeBadParams, true, "host"},
		{"target not on the allow-list", map[string]string{"target": "10.9.9.9:22"}, false, activities.ErrTypePrecondition, true, "allow-list"},
		{"bad scheme", map[string]string{"target": "ftp://x/"}, false, activities.ErrTypeBadParams, true, "http(s)"},
		{"bad retries", map[string]string{"target": ln.Addr().String(), "retries": "0"}, false, activities.ErrTypeBadParams, true, "retries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := run(t, a, tc.params, false)
			if tc.healthy {
				if err != nil {
					t.Fatal(err)
				}
				if res.Outputs["healthy"] != "true" || !strings.Contains(res.Outputs["detail"], tc.detail) {
					t.Fatalf("outputs %v", res.Outputs)
				}
				return
			}
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) {
				t.Fatalf("want an application error, got %v", err)
			}
			if ae.Type() != tc.errType || ae.NonRetryable() != tc.final || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("got %s final=%v %v", ae.Type(), ae.NonRetryable(), err)
			}
		})
	}
	t.Run("dry run does not connect", func(t *testing.T) {
		res, err := run(t, a, map[string]string{"target": closedAddr}, true)
		if err != nil || len(res.Plan) != 1 {
			t.Fatalf("%+v %v", res, err)
		}
	})
}
