package keycloak

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
)

// Token types (the "typ" claim), as Keycloak sets them.
const (
	typBearer  = "Bearer"
	typRefresh = "Refresh"
	typID      = "ID"
)

// audience marshals like Keycloak: a single audience as a string, several as an array.
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		var v []string
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("decode aud array: %w", err)
		}
		*a = v
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("decode aud string: %w", err)
	}
	*a = audience{v}
	return nil
}

type roleList struct {
	Roles []string `json:"roles"`
}

// tokenClaims are the claims of the access, refresh and ID tokens the simulator issues.
type tokenClaims struct {
	Exp               int64               `json:"exp"`
	Iat               int64               `json:"iat"`
	AuthTime          int64               `json:"auth_time,omitempty"`
	Jti               string              `json:"jti"`
	Iss               string              `json:"iss"`
	Aud               audience            `json:"aud,omitempty"`
	Sub               string              `json:"sub"`
	Typ               string              `json:"typ"`
	Azp               string              `json:"azp"`
	SessionState      string              `json:"session_state,omitempty"`
	Acr               string              `json:"acr,omitempty"`
	AllowedOrigins    []string            `json:"allowed-origins,omitempty"`
	RealmAccess       *roleList           `json:"realm_access,omitempty"`
	ResourceAccess    map[string]roleList `json:"resource_access,omitempty"`
	Scope             string              `json:"scope,omitempty"`
	Sid               string              `json:"sid,omitempty"`
	ClientID          string              `json:"client_id,omitempty"`
	EmailVerified     *bool               `json:"email_verified,omitempty"`
	Name              string              `json:"name,omitempty"`
	PreferredUsername string              `json:"preferred_username,omitempty"`
	GivenName         string              `json:"given_name,omitempty"`
	FamilyName        string              `json:"family_name,omitempty"`
	Email             string              `json:"email,omitempty"`
	// Nonce is the authorization request's nonce, in every token of that login (OIDC Core 3.1.3.6).
	Nonce string `json:"nonce,omitempty"`
}

// tokenSet is what a successful grant produces.
type tokenSet struct {
	access, refresh, id string
	accessExp           int
	refreshExp          int
	scope               string
	sessionID           string
	accessJTI           string
	refreshJTI          string
}

// grantScope is the "scope" claim for a request: Keycloak's default client scopes plus openid
// when the client asked for it.
func grantScope(requested string) string {
	fields := strings.Fields(requested)
	if slices.Contains(fields, "openid") {
		return "openid profile email"
	}
	return "profile email"
}

// issueTokens signs the tokens of one grant. sess is nil for client_credentials; nonce is the
// authorization request's, empty for grants without one. Caller holds s.mu.
func (s *Server) issueTokens(r *realm, iss string, c *client, u *user, sess *session, scope, nonce string, now time.Time, authTime int64) (tokenSet, error) {
	key := r.activeKey()
	realmRoles, clientRoles := r.effectiveRoles(u)
	var ts tokenSet
	ts.scope = grantScope(scope)
	iat := now.Unix()
	access := tokenClaims{
		Exp: iat + int64(r.accessTokenLifespan), Iat: iat, Jti: uuid.NewString(), Iss: iss,
		Sub: u.id, Typ: typBearer, Azp: c.clientID, Acr: "1", Scope: ts.scope,
		PreferredUsername: u.username, RealmAccess: &roleList{Roles: nonNil(realmRoles)}, Nonce: nonce,
	}
	if sess != nil {
		access.AuthTime = authTime
		access.SessionState, access.Sid = sess.id, sess.id
		ts.sessionID = sess.id
	}
	if len(clientRoles) > 0 {
		access.ResourceAccess = map[string]roleList{}
		for cid, roles := range clientRoles {
			access.ResourceAccess[cid] = roleList{Roles: roles}
		}
	}
	// Audience: clients named by audience mappers, then every other client whose roles the token
	// carries (Keycloak's audience resolve mapper).
	aud := slices.Clone(c.audiences)
	for _, cid := range slices.Sorted(maps.Keys(clientRoles)) {
		if cid != c.clientID && !slices.Contains(aud, cid) {
			aud = append(aud, cid)
		}
	}
	access.Aud = aud
	if len(c.webOrigins) > 0 {
		access.AllowedOrigins = c.webOrigins
	}
	if u.serviceAccountClientID != "" {
		access.ClientID = u.serviceAccountClientID
	}
	access.EmailVerified = &u.emailVerified
	access.Email = u.email
	access.GivenName, access.FamilyName = u.firstName, u.lastName
	access.Name = strings.TrimSpace(u.firstName + " " + u.lastName)
	accessExtra, err := r.mapperClaims(c, u, sess, realmRoles, clientRoles, kindAccess)
	if err != nil {
		return tokenSet{}, err
	}
	if ts.access, err = sign(key, access, accessExtra); err != nil {
		return tokenSet{}, err
	}
	ts.accessExp = r.accessTokenLifespan
	ts.accessJTI = access.Jti
	if sess == nil {
		return ts, nil
	}
	refreshExp := min(sess.lastAccess.Unix()+int64(r.ssoIdle), sess.start.Unix()+int64(r.ssoMax))
	refresh := tokenClaims{
		Exp: refreshExp, Iat: iat, Jti: uuid.NewString(), Iss: iss, Aud: audience{iss},
		Sub: u.id, Typ: typRefresh, Azp: c.clientID, SessionState: sess.id, Sid: sess.id, Scope: ts.scope,
		Nonce: nonce,
	}
	if ts.refresh, err = sign(key, refresh, nil); err != nil {
		return tokenSet{}, err
	}
	ts.refreshExp = int(refreshExp - iat)
	ts.refreshJTI = refresh.Jti
	if slices.Contains(strings.Fields(ts.scope), "openid") {
		id := tokenClaims{
			Exp: access.Exp, Iat: iat, AuthTime: authTime, Jti: uuid.NewString(), Iss: iss,
			Aud: audience{c.clientID}, Sub: u.id, Typ: typID, Azp: c.clientID, SessionState: sess.id,
			Sid: sess.id, Acr: "1", EmailVerified: access.EmailVerified, Name: access.Name,
			PreferredUsername: u.username, GivenName: u.firstName, FamilyName: u.lastName, Email: u.email,
			Nonce: nonce,
		}
		idExtra, err := r.mapperClaims(c, u, sess, realmRoles, clientRoles, kindID)
		if err != nil {
			return tokenSet{}, err
		}
		if ts.id, err = sign(key, id, idExtra); err != nil {
			return tokenSet{}, err
		}
	}
	return ts, nil
}

// sign serialises c, with the protocol mappers' extra claims under it: a mapper cannot replace a
// claim the simulator sets itself.
func sign(k *signingKey, c tokenClaims, extra map[string]any) (string, error) {
	b := jwt.Signed(k.signer)
	if len(extra) > 0 {
		b = b.Claims(extra)
	}
	raw, err := b.Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign %s token: %w", c.Typ, err)
	}
	return raw, nil
}

// errBadToken is returned for a token that is malformed, not signed by a usable realm key, or
// from another issuer.
var errBadToken = errors.New("invalid token")

// parseToken verifies raw's signature against the realm's usable keys and its issuer. It does not
// check expiry or revocation (see tokenProblem). Caller holds s.mu.
func (r *realm) parseToken(raw, iss string, now time.Time) (*tokenClaims, map[string]any, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(tok.Headers) != 1 {
		return nil, nil, errBadToken
	}
	k := r.verificationKey(tok.Headers[0].KeyID, now)
	if k == nil {
		return nil, nil, errBadToken
	}
	var c tokenClaims
	var m map[string]any
	if err := tok.Claims(&k.priv.PublicKey, &c, &m); err != nil {
		return nil, nil, errBadToken
	}
	if c.Iss != iss {
		return nil, nil, errBadToken
	}
	return &c, m, nil
}

// Reasons a parsed token is no longer valid, worded as Keycloak words them on refresh.
const (
	reasonExpired        = "Token is not active"
	reasonSessionGone    = "Session not active"
	reasonUserDisabled   = "User disabled"
	reasonUnknownUser    = "Unknown user"
	reasonStale          = "Stale token"
	reasonClientDisabled = "Client disabled"
	reasonRevoked        = "Token revoked"
)

// tokenProblem returns "" if the token is active at now, or why it is not, checking in Keycloak's
// order: expiry, revocation, user session, user, not-before (client, realm, user), client.
// Caller holds s.mu.
func (r *realm) tokenProblem(c *tokenClaims, now time.Time) string {
	if c.Exp != 0 && now.Unix() > c.Exp {
		return reasonExpired
	}
	if _, ok := r.revoked[c.Jti]; ok {
		return reasonRevoked
	}
	if c.Sid != "" {
		sess := r.sessions[c.Sid]
		if !r.sessionValid(sess, now) || sess.userID != c.Sub {
			return reasonSessionGone
		}
	}
	u := r.users[c.Sub]
	if u == nil {
		return reasonUnknownUser
	}
	if !u.enabled {
		return reasonUserDisabled
	}
	cl := r.clientByClientID(c.Azp)
	if cl == nil || !cl.enabled {
		return reasonClientDisabled
	}
	if c.Iat < cl.notBefore || c.Iat < r.notBefore || c.Iat < u.notBefore {
		return reasonStale
	}
	return ""
}
