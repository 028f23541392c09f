package temporalclient

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/iru-responder/responder/internal/config"
)

// TokenHeaders is the SDK's headers provider for a server with
// authorization: every call carries `authorization: Bearer <token>`, a
// client-credentials token of the process's own Keycloak client. A token is
// reused until three quarters of its lifetime have passed, then renewed;
// if renewal fails while the old token is still valid, the old one is sent
// (a short identity-provider outage does not stop the worker).
type TokenHeaders struct {
	fetch func(context.Context) (*oauth2.Token, error)
	now   func() time.Time

	mu       sync.Mutex
	tok      *oauth2.Token
	obtained time.Time
	expires  time.Time // on h.now's clock; zero: the server gave no lifetime
	renewals int
}

// NewTokenHeaders returns the headers provider for cfg's token endpoint and
// client.
func NewTokenHeaders(cfg config.Temporal) *TokenHeaders {
	cc := clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: cfg.TokenURL,
		AuthStyle: oauth2.AuthStyleInParams}
	hc := &http.Client{Timeout: 10 * time.Second}
	return &TokenHeaders{
		fetch: func(ctx context.Context) (*oauth2.Token, error) {
			return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
		},
		now: time.Now,
	}
}

// GetHeaders implements the SDK's client.HeadersProvider.
func (h *TokenHeaders) GetHeaders(ctx context.Context) (map[string]string, error) {
	tok, err := h.Token(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// Token returns the current access token, fetching or renewing it as
// needed.
func (h *TokenHeaders) Token(ctx context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if h.tok != nil && !h.due(now) {
		return h.tok.AccessToken, nil
	}
	// Not the caller's context: a cancelled call must not leave every
	// other call without a token.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	tok, err := h.fetch(fctx)
	if err != nil {
		if h.tok != nil && (h.expires.IsZero() || now.Before(h.expires)) {
			return h.tok.AccessToken, nil
		}
		return "", fmt.Errorf("temporalclient: client-credentials token for Temporal: %w", err)
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("temporalclient: client-credentials token for Temporal: empty access token")
	}
	h.tok, h.obtained, h.expires = tok, now, time.Time{}
	if !tok.Expiry.IsZero() {
		// The library sets Expiry from the wall clock at receipt.
		h.expires = now.Add(time.Until(tok.Expiry))
	}
	h.renewals++
	return tok.AccessToken, nil
}

// Fetches is how many tokens were obtained so far.
func (h *TokenHeaders) Fetches() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.renewals
}

// due reports whether the token has used three quarters of its lifetime.
func (h *TokenHeaders) due(now time.Time) bool {
	if h.expires.IsZero() {
		return false // the server said nothing: keep it until refused
	}
	life := h.expires.Sub(h.obtained)
	return !now.Before(h.obtained.Add(life * 3 / 4))
}
