package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/auth"
)

// oneToken verifies one bearer token as one identity and finds its
// session live.
type oneToken struct {
	raw string
	id  auth.Identity
}

func (o oneToken) Verify(_ context.Context, raw string) (auth.Identity, error) {
	if raw != o.raw {
		return auth.Identity{}, auth.ErrUnauthenticated
	}
	return o.id, nil
}

func (oneToken) CheckSession(context.Context, string) error { return nil }

// TestSourceRateLimit floods the responder API from one address: beyond
// the burst every request is answered 429 rate_limited with Retry-After
// before its token is checked, and none of them reaches Temporal (the
// visibility store sees only the burst); another address is still
// served, and an unauthenticated flood is cut off the same way.
func TestSourceRateLimit(t *testing.T) {
	const burst = 5
	v := &pagingVisibility{n: 3, max: 100}
	tok := oneToken{raw: "alice-token", id: auth.Identity{Subject: "a-1", Username: "alice", Roles: []string{auth.RoleResponder}}}
	cfg := Config{OIDC: auth.OIDCConfig{IssuerURL: "https://kc.invalid/realms/iru", Audience: "iru-api"},
		AuthFailThreshold: 1000, AuthFailWindow: time.Minute, MaxBodyBytes: 64 << 10, RequestTimeout: 10 * time.Second,
		SourceRate: 0.001, SourceBurst: burst, SourceConcurrency: 16}
	rs, err := NewResponder(ResponderOptions{Config: cfg, Temporal: v, Verifier: tok, Sessions: tok, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := (&Server{Log: slog.New(slog.DiscardHandler), Temporal: fakeTemporal{}, Responder: rs}).Handler()
	get := func(addr, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", APIPrefix+"/incidents", nil)
		r.RemoteAddr = addr + ":40000"
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	codes := map[int]int{}
	for range 4 * burst {
		w := get("198.51.100.7", tok.raw)
		codes[w.Code]++
		if w.Code == http.StatusTooManyRequests {
			var e apiError
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code != "rate_limited" || w.Header().Get("Retry-After") == "" {
				t.Fatalf("429 answer: %s (Retry-After %q)", w.Body, w.Header().Get("Retry-After"))
			}
		}
	}
	if codes[http.StatusOK] != burst || codes[http.StatusTooManyRequests] != 3*burst {
		t.Fatalf("answers to the flood = %v, want %d OK and %d 429", codes, burst, 3*burst)
	}
	if len(v.sizes) != burst {
		t.Errorf("%d visibility calls, want %d: refused requests reached Temporal", len(v.sizes), burst)
	}
	if w := get("198.51.100.8", tok.raw); w.Code != http.StatusOK {
		t.Errorf("another address: %d %s", w.Code, w.Body)
	}
	unauth := map[int]int{}
	for range 2 * burst {
		unauth[get("203.0.113.9", "forged").Code]++
	}
	if unauth[http.StatusUnauthorized] != burst || unauth[http.StatusTooManyRequests] != burst {
		t.Errorf("answers to an unauthenticated flood = %v, want %d 401 and %d 429", unauth, burst, burst)
	}
}
