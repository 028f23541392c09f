// Package keycloak implements the kc.* response actions of the activity
// catalog against the Keycloak Admin REST API, through gocloak and, for the
// endpoints gocloak lacks (push-revocation, typed event queries), raw
// requests on gocloak's HTTP client.
//
// Every action is safe to retry after a crash at any point:
//
//   - kc.disable_user writes the marker attribute iru_disabled_by=<IdempotencyKey>
//     in the same update that disables the user, so a retry (or a compensation
//     whose forward step never reported) still knows the user was enabled before.
//   - kc.enable_user restores that recorded state and removes the marker; it refuses
//     to re-enable a user that was disabled again by someone else.
//   - kc.rotate_client_secret records the rotation in the client attribute
//     iru_secret_rotation (idempotency key, digest of the secret before, then the
//     secret-sink reference) before and after regenerating, so a retry after the
//     secret was regenerated stores the current secret instead of rotating twice.
//   - kc.revoke_realm keeps the chosen not-before in its heartbeat details and
//     skips the update when the realm already has it.
//   - kc.delete_session treats a 404 on a retried attempt as done once the realm
//     is confirmed to exist (the session is gone).
//
// Errors carry the catalog's stable types: final ones (not found, bad
// parameters, permission, precondition, conflict) are non-retryable
// application errors; 5xx, 429, timeouts and connection errors are retryable
// ([ErrTypeUnavailable]). Secrets never appear in results, errors or logs.
//
// In a drill (ActionInput.Drill) only users and clients that carry the
// attribute iru_drill_target=true, and realms listed in
// IRU_KEYCLOAK_DRILL_REALMS for realm-wide actions, are acted on; anything
// else fails with ErrTypePrecondition.
package keycloak

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/golang-jwt/jwt/v5"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/tlsutil"
)

// ErrTypeUnavailable is the (retryable) error type of a Keycloak call that
// failed for a reason that may pass: 5xx, 429, timeout, connection error.
const ErrTypeUnavailable = "KeycloakUnavailable"

// DrillAttribute is the user or client attribute that marks a drill target
// (value "true").
const DrillAttribute = "iru_drill_target"

// DisabledByAttribute is the user attribute kc.disable_user sets to the
// step's idempotency key when it disables an enabled user.
const DisabledByAttribute = "iru_disabled_by"

// RotationAttribute is the client attribute where kc.rotate_client_secret
// records its rotation (JSON: key, state, digests, secret reference).
const RotationAttribute = "iru_secret_rotation"

// Activities are the kc.* actions. Create them with [New]; they are safe
// for concurrent use.
type Activities struct {
	cfg      Config
	gc       *gocloak.GoCloak
	evidence activities.EvidenceStore
	secrets  activities.SecretSink
	now      func() time.Time
	// attempt returns the activity attempt (1 outside an activity); tests replace it.
	attempt func(ctx context.Context) int32

	tokMu      sync.Mutex
	tok        string
	tokRenewAt time.Time
}

// New returns the activities for cfg. evidence receives session and event
// dumps, secrets receives rotated client secrets.
func New(cfg Config, evidence activities.EvidenceStore, secrets activities.SecretSink) (*Activities, error) {
	if cfg.Realm == "" {
		cfg.Realm = "iru"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.ProtectedRoles == nil {
		// As the loader's default: a caller that bypassed it stays protected.
		cfg.ProtectedRoles = []string{"ir-*", "admin"}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("keycloak activities: %w", err)
	}
	if evidence == nil || secrets == nil {
		return nil, errors.New("keycloak activities: evidence store and secret sink are required")
	}
	gc := gocloak.NewClient(cfg.URL)
	if cfg.CAFile != "" {
		pool, err := tlsutil.CertPool(cfg.CAFile, true)
		if err != nil {
			return nil, fmt.Errorf("keycloak activities: IRU_KEYCLOAK_CA_FILE: %w", err)
		}
		gc.RestyClient().SetTLSClientConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return &Activities{
		cfg: cfg, gc: gc, evidence: evidence, secrets: secrets, now: time.Now,
		attempt: func(ctx context.Context) int32 { return activity.GetInfo(ctx).Attempt },
	}, nil
}

// Register registers every kc.* activity under its catalog name. No retry
// policy is set here: the workflow uses the catalog's recommended options.
func (a *Activities) Register(r activities.Registry) { activities.RegisterAll(r, a.byName()) }

func (a *Activities) byName() map[string]activities.Func {
	return map[string]activities.Func{
		activities.KCResolveUser:         a.ResolveUser,
		activities.KCListSessions:        a.ListSessions,
		activities.KCDisableUser:         a.DisableUser,
		activities.KCEnableUser:          a.EnableUser,
		activities.KCLogoutUser:          a.LogoutUser,
		activities.KCDeleteSession:       a.DeleteSession,
		activities.KCRevokeRealm:         a.RevokeRealm,
		activities.KCRotateClientSecret:  a.RotateClientSecret,
		activities.KCCollectEvents:       a.CollectEvents,
		activities.KCDisableDirectGrants: a.DisableDirectGrants,
	}
}

// ---- tokens ----

// token returns a cached service-account token, logging in again shortly
// before it expires (a quarter of its lifetime early, 2 s to 30 s).
func (a *Activities) token(ctx context.Context) (string, error) {
	a.tokMu.Lock()
	defer a.tokMu.Unlock()
	now := a.now()
	if a.tok != "" && now.Before(a.tokRenewAt) {
		return a.tok, nil
	}
	cctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	what := fmt.Sprintf("POST realms/%s/protocol/openid-connect/token (service account %s login)", a.cfg.tokenRealm(), a.cfg.ClientID)
	j, err := a.gc.LoginClient(cctx, a.cfg.ClientID, a.cfg.ClientSecret, a.cfg.tokenRealm())
	if err != nil {
		code := statusOf(err)
		if code == 400 || code == 401 || code == 403 {
			return "", activities.NewFinalError(activities.ErrTypePermission,
				fmt.Sprintf("keycloak %s: rejected (%d): check IRU_KEYCLOAK_CLIENT_ID/IRU_KEYCLOAK_CLIENT_SECRET/IRU_KEYCLOAK_TOKEN_REALM", what, code), nil)
		}
		return "", classify(ctx, cctx, what, err)
	}
	if j == nil || j.AccessToken == "" {
		return "", temporal.NewApplicationError(fmt.Sprintf("keycloak %s: empty token in response", what), ErrTypeUnavailable)
	}
	life := time.Duration(j.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Minute
	}
	margin := min(max(life/4, 2*time.Second), 30*time.Second)
	if margin >= life {
		margin = life / 2
	}
	a.tok, a.tokRenewAt = j.AccessToken, now.Add(life-margin)
	return a.tok, nil
}

// dropToken forgets tok if it is still the cached token (after a 401).
func (a *Activities) dropToken(tok string) {
	a.tokMu.Lock()
	if a.tok == tok {
		a.tok = ""
	}
	a.tokMu.Unlock()
}

// call runs one Admin API call with a token and the per-call timeout. A 401
// (token expired or revoked server-side) drops the token and retries once.
// Errors come back classified; what names the API call and its target.
func (a *Activities) call(ctx context.Context, what string, fn func(ctx context.Context, token string) error) error {
	for try := 0; ; try++ {
		tok, err := a.token(ctx)
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
		err = fn(cctx, tok)
		if err == nil {
			cancel()
			return nil
		}
		if statusOf(err) == 401 && try == 0 {
			cancel()
			a.dropToken(tok)
			continue
		}
		err = classify(ctx, cctx, what, err)
		cancel()
		return err
	}
}

// roles returns the realm-management roles the service account holds on
// realm, read from its own access token, and whether it is a realm admin.
func (a *Activities) roles(ctx context.Context, realm string) (map[string]bool, bool, error) {
	tok, err := a.token(ctx)
	if err != nil {
		return nil, false, err
	}
	var claims struct {
		jwt.RegisteredClaims
		RealmAccess struct {
			Roles []string `json:"roles"`
		} `json:"realm_access"`
		ResourceAccess map[string]struct {
			Roles []string `json:"roles"`
		} `json:"resource_access"`
	}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
		// An opaque token: let Keycloak decide at call time.
		return nil, true, nil
	}
	mgmt := "realm-management"
	if a.cfg.tokenRealm() != realm {
		if slices.Contains(claims.RealmAccess.Roles, "admin") {
			return nil, true, nil
		}
		mgmt = realm + "-realm"
	}
	out := map[string]bool{}
	for _, r := range claims.ResourceAccess[mgmt].Roles {
		out[r] = true
	}
	return out, out["realm-admin"], nil
}

// requireRole fails with ErrTypePermission unless the service account holds
// one of want on realm.
func (a *Activities) requireRole(ctx context.Context, realm, action string, want ...string) error {
	roles, admin, err := a.roles(ctx, realm)
	if err != nil {
		return err
	}
	if admin {
		return nil
	}
	for _, w := range want {
		if roles[w] {
			return nil
		}
	}
	return activities.NewFinalError(activities.ErrTypePermission,
		fmt.Sprintf("keycloak %s in realm %s: service account %s lacks realm-management role %s", action, realm, a.cfg.ClientID, strings.Join(want, " or ")), nil)
}

// ---- errors ----

// statusOf returns the HTTP status of a gocloak error (0 for transport errors).
func statusOf(err error) int {
	var ae *gocloak.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// classify turns a failed call into a stable error. parent is the activity
// context, cctx the call's own (timeout) context.
func classify(parent, cctx context.Context, what string, err error) error {
	code := statusOf(err)
	msg := err.Error()
	switch {
	case code == 0 && parent.Err() != nil:
		return temporal.NewApplicationErrorWithCause(fmt.Sprintf("keycloak %s: activity context done: %v", what, parent.Err()), ErrTypeUnavailable, err)
	case code == 0 && cctx.Err() != nil:
		return temporal.NewApplicationErrorWithCause(fmt.Sprintf("keycloak %s: timed out", what), ErrTypeUnavailable, err)
	case code == 0, code == 429, code >= 500, code == 401:
		return temporal.NewApplicationErrorWithCause(fmt.Sprintf("keycloak %s: %s", what, msg), ErrTypeUnavailable, err)
	case code == 404:
		return activities.NewFinalError(activities.ErrTypeNotFound, fmt.Sprintf("keycloak %s: not found: %s", what, msg), err)
	case code == 403:
		return activities.NewFinalError(activities.ErrTypePermission, fmt.Sprintf("keycloak %s: permission denied: %s", what, msg), err)
	case code == 400:
		return activities.NewFinalError(activities.ErrTypeBadParams, fmt.Sprintf("keycloak %s: rejected: %s", what, msg), err)
	case code == 409:
		return activities.NewFinalError(activities.ErrTypeConflict, fmt.Sprintf("keycloak %s: conflict: %s", what, msg), err)
	default:
		return activities.NewFinalError(activities.ErrTypePrecondition, fmt.Sprintf("keycloak %s: unexpected status: %s", what, msg), err)
	}
}

func badParams(format string, args ...any) error {
	return activities.NewFinalError(activities.ErrTypeBadParams, fmt.Sprintf(format, args...), nil)
}

func precondition(format string, args ...any) error {
	return activities.NewFinalError(activities.ErrTypePrecondition, fmt.Sprintf(format, args...), nil)
}

// ---- raw requests ----

// rawError reproduces gocloak's unexported checkForError for raw requests.
func rawError(status int, statusText string, transport error, body any) error {
	if transport != nil {
		return &gocloak.APIError{Message: transport.Error()}
	}
	if status >= 400 {
		msg := statusText
		if e, ok := body.(*gocloak.HTTPErrorResponse); ok && e.NotEmpty() {
			msg = fmt.Sprintf("%s: %s", statusText, e)
		}
		return &gocloak.APIError{Code: status, Message: msg}
	}
	return nil
}

// adminURL builds an Admin API URL from path segments (validated by the caller).
func (a *Activities) adminURL(segs ...string) string {
	return strings.TrimRight(a.cfg.URL, "/") + "/admin/realms/" + strings.Join(segs, "/")
}

// ---- parameters ----

var segmentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$`)

// validSegment reports whether s is safe as a URL path segment (gocloak does
// not escape path segments).
func validSegment(s string) bool { return segmentRE.MatchString(s) }

// segment checks a parameter that ends up in a URL path.
func segment(action, name, v string) (string, error) {
	if !validSegment(v) {
		return "", badParams("%s: parameter %s=%q is not a valid Keycloak id", action, name, v)
	}
	return v, nil
}

// checkRealm checks the realm parameter. A realm outside the allowed list is
// refused (Precondition) before any call reaches Keycloak.
func checkRealm(action string, p activities.RealmParams, cfg Config) (string, error) {
	v := p.Realm
	if !validSegment(v) {
		return "", badParams("%s: parameter realm=%q is not a realm name", action, v)
	}
	if !cfg.realmAllowed(v) {
		return "", precondition("%s: realm %q is not one the platform may act in (IRU_KEYCLOAK_ALLOWED_REALMS: %s); refused", action, v, strings.Join(cfg.allowedRealms(), ", "))
	}
	return v, nil
}

// ---- drills, logging, heartbeats ----

func isDrillTarget(attrs map[string][]string) bool {
	for _, v := range attrs[DrillAttribute] {
		if strings.EqualFold(strings.TrimSpace(v), "true") {
			return true
		}
	}
	return false
}

func userAttrs(u *gocloak.User) map[string][]string {
	if u == nil || u.Attributes == nil {
		return nil
	}
	return *u.Attributes
}

func (a *Activities) drillRealm(realm string) bool { return slices.Contains(a.cfg.DrillRealms, realm) }

func logger(ctx context.Context) log.Logger { return activity.GetLogger(ctx) }

func heartbeat(ctx context.Context, details ...any) { activity.RecordHeartbeat(ctx, details...) }

// Ping checks that the service account can log in and read its realm; the
// worker's self-test uses it.
func (a *Activities) Ping(ctx context.Context) error {
	return a.call(ctx, "get realm "+a.cfg.Realm, func(ctx context.Context, token string) error {
		_, err := a.gc.GetRealm(ctx, token, a.cfg.Realm)
		return err
	})
}
