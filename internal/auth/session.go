package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ErrSessionInactive is returned when Keycloak says the token's session
// is no longer live (logged out, revoked, user disabled).
var ErrSessionInactive = errors.New("auth: the token's session is no longer active")

// ErrSessionCheckUnavailable is returned when the session cannot be
// checked (not configured, or Keycloak does not answer).
var ErrSessionCheckUnavailable = errors.New("auth: the session check is unavailable")

// Introspector checks with Keycloak's token introspection (RFC 7662) that
// a token's session is still live, remembering live answers for a few
// seconds per token. It is safe for concurrent use.
type Introspector struct {
	endpoint     string
	clientID     string
	clientSecret string
	ttl          time.Duration
	client       *http.Client
	now          func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]time.Time // token hash -> live until
}

// NewIntrospector returns the session checker for cfg (Keycloak's
// introspection endpoint under the issuer). client may be nil.
func NewIntrospector(cfg OIDCConfig, client *http.Client) *Introspector {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &Introspector{
		endpoint: strings.TrimSuffix(cfg.IssuerURL, "/") + "/protocol/openid-connect/token/introspect",
		clientID: cfg.ClientID, clientSecret: cfg.ClientSecret, ttl: cfg.SessionCache, client: client, now: time.Now,
		cache: map[[32]byte]time.Time{},
	}
}

// CheckSession returns nil when raw's session is live, an error wrapping
// [ErrSessionInactive] when Keycloak says it is not, and one wrapping
// [ErrSessionCheckUnavailable] when it cannot tell.
func (in *Introspector) CheckSession(ctx context.Context, raw string) error {
	if in.clientSecret == "" {
		return fmt.Errorf("%w: IRU_OIDC_CLIENT_SECRET is not set", ErrSessionCheckUnavailable)
	}
	key := sha256.Sum256([]byte(raw))
	now := in.now()
	in.mu.Lock()
	if until, ok := in.cache[key]; ok && now.Before(until) {
		in.mu.Unlock()
		return nil
	}
	in.mu.Unlock()
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSessionCheckUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.clientSecret))
	resp, err := in.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: introspection: %v", ErrSessionCheckUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: introspection answered %d", ErrSessionCheckUnavailable, resp.StatusCode)
	}
	var body struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return fmt.Errorf("%w: introspection: %v", ErrSessionCheckUnavailable, err)
	}
	if !body.Active {
		in.mu.Lock()
		delete(in.cache, key)
		in.mu.Unlock()
		return ErrSessionInactive
	}
	in.mu.Lock()
	if len(in.cache) > 10000 {
		clear(in.cache)
	}
	in.cache[key] = now.Add(in.ttl)
	in.mu.Unlock()
	return nil
}
