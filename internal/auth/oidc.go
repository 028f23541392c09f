package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// OIDCConfig says which tokens the API accepts.
type OIDCConfig struct {
	IssuerURL string `env:"IRU_OIDC_ISSUER" envDefault:"http://127.0.0.1:8180/realms/iru" doc:"OIDC issuer of responder tokens (the Keycloak realm URL)."`
	Audience  string `env:"IRU_OIDC_AUDIENCE" envDefault:"iru-api" doc:"Audience (client id) responder tokens must carry."`
	// ClientID and ClientSecret authenticate the API server to Keycloak's
	// token introspection (the session check of mutating routes).
	ClientID     string        `env:"IRU_OIDC_CLIENT_ID" envDefault:"iru-api" doc:"Confidential client of the API server at Keycloak, used to introspect responder tokens (is the session still live?) before every decision."`
	ClientSecret string        `env:"IRU_OIDC_CLIENT_SECRET" secret:"true" doc:"Secret of IRU_OIDC_CLIENT_ID. Without it mutating responder routes answer 503: a revoked session could not be refused."`
	SessionCache time.Duration `env:"IRU_OIDC_SESSION_CACHE" envDefault:"5s" doc:"How long a live-session answer of token introspection is reused for the same token (revoked sessions are refused from the next check)."`
}

// ErrUnauthenticated is returned for a missing or invalid token.
var ErrUnauthenticated = errors.New("auth: unauthenticated")

// Verifier verifies responder access tokens. Provider discovery happens on
// first use and is retried on later calls until it succeeds, so the API
// server can start before Keycloak answers.
type Verifier struct {
	cfg    OIDCConfig
	client *http.Client

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

// NewVerifier returns a verifier for cfg. client may be nil (default client
// with a 10 s timeout).
func NewVerifier(cfg OIDCConfig, client *http.Client) *Verifier {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Verifier{cfg: cfg, client: client}
}

func (v *Verifier) get(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, nil
	}
	// The key set keeps using this client for JWKS refreshes (key rotation).
	pctx := oidc.ClientContext(context.WithoutCancel(ctx), v.client)
	p, err := oidc.NewProvider(pctx, v.cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("auth: discover %s: %w", v.cfg.IssuerURL, err)
	}
	v.verifier = p.Verifier(&oidc.Config{ClientID: v.cfg.Audience})
	return v.verifier, nil
}

// keycloakClaims are the claims read from a Keycloak access token.
type keycloakClaims struct {
	Subject           string   `json:"sub"`
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email"`
	SessionID         string   `json:"sid"`
	TokenID           string   `json:"jti"`
	AMR               []string `json:"amr"`
	ACR               string   `json:"acr"`
	AuthorizedParty   string   `json:"azp"`
	RealmAccess       struct {
		Roles []string `json:"roles"`
	} `json:"realm_access"`
}

// Verify checks the raw token (signature via JWKS, issuer, audience, expiry)
// and returns the identity it carries.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	if raw == "" {
		return Identity{}, ErrUnauthenticated
	}
	ver, err := v.get(ctx)
	if err != nil {
		return Identity{}, err
	}
	tok, err := ver.Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	var c keycloakClaims
	if err := tok.Claims(&c); err != nil {
		return Identity{}, fmt.Errorf("%w: claims: %v", ErrUnauthenticated, err)
	}
	if c.PreferredUsername == "" {
		return Identity{}, fmt.Errorf("%w: token has no preferred_username", ErrUnauthenticated)
	}
	realm := tok.Issuer
	if i := strings.LastIndex(realm, "/realms/"); i >= 0 {
		realm = realm[i+len("/realms/"):]
	}
	return Identity{
		Subject:   c.Subject,
		Username:  c.PreferredUsername,
		Email:     c.Email,
		Realm:     realm,
		Roles:     c.RealmAccess.Roles,
		SessionID: c.SessionID,
		TokenID:   c.TokenID,
		AMR:       c.AMR,
		ACR:       c.ACR,
		ClientID:  c.AuthorizedParty,
	}, nil
}

// BearerToken extracts the token of an "Authorization: Bearer" header.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
