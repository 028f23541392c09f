// Package auth verifies who is calling the platform: responders with
// Keycloak (OIDC) access tokens, verified against the realm's JWKS by a
// well-kept OIDC library; roles come from the token. Only verified
// identities reach the workflows. It also counts authentication failures and
// raises an alert when they pass a threshold, as the hardening guide asks.
package auth

import (
	"context"
	"slices"
)

// Responder roles, as defined in the Keycloak realm.
const (
	RoleResponder = "ir-responder"
	RoleLead      = "ir-lead"
	RoleAdmin     = "ir-admin"
)

// Identity is a verified caller.
type Identity struct {
	// Subject is the token's sub (stable user id).
	Subject string
	// Username is preferred_username.
	Username string
	Email    string `json:",omitempty"`
	// Realm is the Keycloak realm (from the issuer).
	Realm string
	// Roles are the realm roles (realm_access.roles).
	Roles []string
	// SessionID is the Keycloak session (sid).
	SessionID string `json:",omitempty"`
	// TokenID is the access token's jti.
	TokenID string `json:",omitempty"`
	// AMR are the token's authentication methods (RFC 8176: pwd, otp, …);
	// ACR its authentication context class.
	AMR []string `json:",omitempty"`
	ACR string   `json:",omitempty"`
	// ClientID is the client the token was issued to (azp).
	ClientID string `json:",omitempty"`
	// SourceIP is the client address as seen by the API server.
	SourceIP string `json:",omitempty"`
}

// HasRole reports whether the identity holds role.
func (i Identity) HasRole(role string) bool { return slices.Contains(i.Roles, role) }

// HasAnyRole reports whether the identity holds one of roles.
func (i Identity) HasAnyRole(roles ...string) bool {
	for _, r := range roles {
		if i.HasRole(r) {
			return true
		}
	}
	return false
}

// HasSecondFactor reports whether the token's amr shows a second factor
// (a one-time password, or multiple factors).
func (i Identity) HasSecondFactor() bool {
	return slices.Contains(i.AMR, "otp") || slices.Contains(i.AMR, "mfa")
}

// Actor is how the identity appears in the audit ledger and timelines.
func (i Identity) Actor() string { return "keycloak:" + i.Realm + "/" + i.Username }

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the verified identity in ctx, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
