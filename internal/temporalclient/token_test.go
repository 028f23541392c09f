//go:build integration

package temporalclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/lab/keycloak"
)

// tokenEndpoint is a client-credentials endpoint that hands out numbered
// tokens valid for life, or fails while down is set.
func tokenEndpoint(t *testing.T, life time.Duration) (url string, calls *atomic.Int32, down *atomic.Bool) {
	calls, down = new(atomic.Int32), new(atomic.Bool)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" ||
			r.Form.Get("client_id") != "iru-worker" || r.Form.Get("client_secret") != "s3cret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":%d}`, n, int(life.Seconds()))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls, down
}

func TestTokenHeadersRenewBeforeExpiry(t *testing.T) {
	url, calls, down := tokenEndpoint(t, 100*time.Second)
	h := NewTokenHeaders(config.Temporal{TokenURL: url, ClientID: "iru-worker", ClientSecret: "s3cret"})
	now := time.Now()
	h.now = func() time.Time { return now }
	get := func() string {
		t.Helper()
		m, err := h.GetHeaders(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return m["authorization"]
	}
	steps := []struct {
		after time.Duration
		down  bool
		want  string
		calls int32
	}{
		{0, false, "Bearer tok-1", 1},
		{10 * time.Second, false, "Bearer tok-1", 1}, // reused
		{74 * time.Second, false, "Bearer tok-1", 1}, // still under 3/4 of its life
		{76 * time.Second, false, "Bearer tok-2", 2}, // renewed before it expires
		{76 * time.Second, true, "Bearer tok-2", 2},
		{155 * time.Second, true, "Bearer tok-2", 2}, // renewal due but the endpoint is down: the valid token is kept
	}
	start := now
	for i, s := range steps {
		now = start.Add(s.after)
		down.Store(s.down)
		if got := get(); got != s.want || calls.Load() != s.calls {
			t.Fatalf("step %d (+%s): header %q after %d fetches, want %q after %d", i, s.after, got, calls.Load(), s.want, s.calls)
		}
	}
	// Expired and the endpoint still down: an error, never an expired token.
	now = start.Add(200 * time.Second)
	if m, err := h.GetHeaders(context.Background()); err == nil {
		t.Fatalf("expired token sent: %v", m)
	}
}

func TestTokenHeadersWrongSecretFails(t *testing.T) {
	url, _, _ := tokenEndpoint(t, time.Minute)
	h := NewTokenHeaders(config.Temporal{TokenURL: url, ClientID: "iru-worker", ClientSecret: "wrong"})
	if _, err := h.GetHeaders(context.Background()); err == nil {
		t.Fatal("a refused client got headers")
	}
}

// TestTokenHeadersFromLabKeycloak obtains a real client-credentials token
// from the lab's Keycloak: the token is the worker's service account's.
func TestTokenHeadersFromLabKeycloak(t *testing.T) {
	kc, err := keycloak.New(keycloak.Options{Addr: "127.0.0.1:0", KeyBits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	h := NewTokenHeaders(config.Temporal{TokenURL: kc.URL() + "/realms/" + keycloak.Realm + "/protocol/openid-connect/token",
		ClientID: keycloak.WorkerClientID, ClientSecret: keycloak.WorkerClientSecret})
	m, err := h.GetHeaders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := strings.CutPrefix(m["authorization"], "Bearer ")
	parts := strings.Split(tok, ".")
	if !ok || len(parts) != 3 {
		t.Fatalf("not a bearer JWT: %q", m["authorization"])
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Azp string `json:"azp"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Azp != keycloak.WorkerClientID {
		t.Fatalf("token for %q, want %q", claims.Azp, keycloak.WorkerClientID)
	}
}
