//go:build integration

package api

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/notify"
	"github.com/iru-responder/responder/internal/sharedstate/sharedtest"
)

// TestFailedAuthThresholdAcrossReplicas: failed authentications from one
// client spread over two API servers (a load balancer alternating) reach
// the threshold (5) when the counters are shared in PostgreSQL: exactly one
// notification, on the fifth failure, whichever replica saw it. With each
// replica counting in its own memory (the control) neither reaches it
// (3 and 2 failures), so no notification: the attack the shared counter
// defeats.
func TestFailedAuthThresholdAcrossReplicas(t *testing.T) {
	kc := labKeycloak(t)
	tests := []struct {
		name   string
		shared bool
		want   int
	}{
		{"shared counters", true, 1},
		{"control: per-process counters", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wh := newWebhook(t)
			opts := ResponderOptions{Config: testConfig(kc), Temporal: &recordingTemporal{},
				Notifier: &notify.Notifier{Channels: []notify.Channel{{Name: "test", Kind: "webhook", URL: wh.srv.URL}}}}
			if tc.shared {
				st := sharedtest.Open(t, sharedtest.Config(t))
				opts.SharedFailures = func(local *auth.FailureWatch) auth.FailureCounter { return st.Failures(local) }
			}
			var urls []string
			for range 2 {
				rs, err := NewResponder(opts)
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewServer((&Server{Log: slogNop(), Temporal: fakeTemporal{}, Responder: rs,
					TrustedProxies: []netip.Prefix{mustPrefix(t, "127.0.0.1")}}).Handler())
				t.Cleanup(srv.Close)
				urls = append(urls, srv.URL)
			}
			hdr := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
			for i := range 5 {
				if code, _ := call(t, urls[i%2], "GET", "/api/v1/incidents", "garbage-"+string(rune('a'+i)), nil, nil, hdr); code != http.StatusUnauthorized {
					t.Fatalf("attempt %d: %d", i, code)
				}
				if i < 4 {
					time.Sleep(20 * time.Millisecond)
					if n := len(wh.got()); n != 0 {
						t.Fatalf("notified after %d failures", i+1)
					}
				}
			}
			deadline := time.Now().Add(3 * time.Second)
			for len(wh.got()) < tc.want && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond) // would another one arrive?
			got := wh.got()
			if len(got) != tc.want {
				t.Fatalf("%d notifications, want %d: %+v", len(got), tc.want, got)
			}
			if tc.want == 1 && (got[0].Kind != notify.FailedAuthThreshold || got[0].Details["source_ip"] != "203.0.113.9" || got[0].Details["failures"] != "5") {
				t.Errorf("notification = %+v", got[0])
			}
		})
	}
}
