package keycloak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	"github.com/Nerzal/gocloak/v13"
	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
)

// collector is the actor recorded on evidence this package stores.
const collector = "system:worker"

// ResolveUser implements kc.resolve_user: the username parameter may hold a
// username, an e-mail address or a user id. Outputs user_id and enabled.
func (a *Activities) ResolveUser(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.KCResolveUserParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	realm, err := checkRealm(activities.KCResolveUser, p.RealmParams, a.cfg)
	if err != nil {
		return activities.ActionResult{}, err
	}
	ident := p.Username
	u, err := a.findUser(ctx, realm, ident)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if err := a.checkDrillUser(in, realm, u); err != nil {
		return activities.ActionResult{}, err
	}
	id, name, enabled := gocloak.PString(u.ID), userName(u), gocloak.PBool(u.Enabled)
	res := activities.ActionResult{
		Outputs: map[string]string{"user_id": id, "enabled": strconv.FormatBool(enabled), "username": name},
		Summary: fmt.Sprintf("resolved %q to user %s (%s) in realm %s, enabled=%t", ident, name, id, realm, enabled),
	}
	if in.DryRun {
		res.Plan = []string{fmt.Sprintf("no change: read-only lookup of %q in realm %s", ident, realm)}
	}
	return res, nil
}

// findUser resolves a username, e-mail address or user id.
func (a *Activities) findUser(ctx context.Context, realm, ident string) (*gocloak.User, error) {
	if _, err := uuid.Parse(ident); err == nil && validSegment(ident) {
		u, err := a.getUser(ctx, realm, ident, "resolve user")
		if err == nil {
			return u, nil
		}
		if errType(err) != activities.ErrTypeNotFound {
			return nil, err
		}
		// Not an id after all: try it as a username below.
	}
	params := gocloak.GetUsersParams{Exact: gocloak.BoolP(true), BriefRepresentation: gocloak.BoolP(false)}
	field := "username"
	if strings.Contains(ident, "@") {
		params.Email, field = gocloak.StringP(ident), "email"
	} else {
		params.Username = gocloak.StringP(ident)
	}
	var users []*gocloak.User
	what := fmt.Sprintf("GET users?%s=%s&exact=true (resolve user in realm %s)", field, ident, realm)
	err := a.call(ctx, what, func(ctx context.Context, tok string) error {
		var err error
		users, err = a.gc.GetUsers(ctx, tok, realm, params)
		return err
	})
	if err != nil {
		return nil, err
	}
	var match []*gocloak.User
	for _, u := range users {
		v := gocloak.PString(u.Username)
		if field == "email" {
			v = gocloak.PString(u.Email)
		}
		if strings.EqualFold(v, ident) {
			match = append(match, u)
		}
	}
	switch len(match) {
	case 0:
		return nil, activities.NewFinalError(activities.ErrTypeNotFound,
			fmt.Sprintf("keycloak %s: no user with %s %q in realm %s (or the service account may not view it)", what, field, ident, realm), nil)
	case 1:
		return match[0], nil
	default:
		return nil, precondition("keycloak %s: %d users match %s %q in realm %s", what, len(match), field, ident, realm)
	}
}

// getUser reads one user by id.
func (a *Activities) getUser(ctx context.Context, realm, id, purpose string) (*gocloak.User, error) {
	var u *gocloak.User
	err := a.call(ctx, fmt.Sprintf("GET users/%s (%s in realm %s)", id, purpose, realm), func(ctx context.Context, tok string) error {
		var err error
		u, err = a.gc.GetUserByID(ctx, tok, realm, id)
		return err
	})
	return u, err
}

// updateUser writes u back (the full representation read before, as the
// gocloak notes recommend, so profile fields are not lost).
func (a *Activities) updateUser(ctx context.Context, realm string, u *gocloak.User, purpose string) error {
	body := *u
	body.Access, body.DisableableCredentialTypes, body.Credentials = nil, nil, nil
	return a.call(ctx, fmt.Sprintf("PUT users/%s (%s %s in realm %s)", gocloak.PString(u.ID), purpose, userName(u), realm),
		func(ctx context.Context, tok string) error { return a.gc.UpdateUser(ctx, tok, realm, body) })
}

func (a *Activities) userSessions(ctx context.Context, realm string, u *gocloak.User) ([]*gocloak.UserSessionRepresentation, error) {
	var out []*gocloak.UserSessionRepresentation
	id := gocloak.PString(u.ID)
	err := a.call(ctx, fmt.Sprintf("GET users/%s/sessions (sessions of %s in realm %s)", id, userName(u), realm), func(ctx context.Context, tok string) error {
		var err error
		out, err = a.gc.GetUserSessions(ctx, tok, realm, id)
		return err
	})
	return out, err
}

// targetUser reads the user_id parameter's user and applies the drill rule.
func (a *Activities) targetUser(ctx context.Context, action string, in activities.ActionInput, p activities.UserParams) (string, *gocloak.User, error) {
	realm, err := checkRealm(action, p.RealmParams, a.cfg)
	if err != nil {
		return "", nil, err
	}
	id, err := segment(action, "user_id", p.UserID)
	if err != nil {
		return "", nil, err
	}
	u, err := a.getUser(ctx, realm, id, action)
	if err != nil {
		return "", nil, err
	}
	if err := a.checkDrillUser(in, realm, u); err != nil {
		return "", nil, err
	}
	return realm, u, nil
}

func (a *Activities) checkDrillUser(in activities.ActionInput, realm string, u *gocloak.User) error {
	if in.Drill && !isDrillTarget(userAttrs(u)) {
		return precondition("drill: user %s in realm %s is not a drill target (attribute %s=true)", userName(u), realm, DrillAttribute)
	}
	return nil
}

// requireManage fails with ErrTypePermission when Keycloak says the service
// account may not manage u (the representation's access map).
func (a *Activities) requireManage(realm string, u *gocloak.User, action string) error {
	if u.Access != nil {
		if manage, ok := (*u.Access)["manage"]; ok && !manage {
			return activities.NewFinalError(activities.ErrTypePermission,
				fmt.Sprintf("keycloak %s: service account %s may not manage user %s in realm %s", action, a.cfg.ClientID, userName(u), realm), nil)
		}
	}
	return nil
}

// ListSessions implements kc.list_sessions: the user's sessions go to the
// evidence locker; Outputs count.
func (a *Activities) ListSessions(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.KCListSessionsParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	realm, u, err := a.targetUser(ctx, activities.KCListSessions, in, p.UserParams)
	if err != nil {
		return activities.ActionResult{}, err
	}
	sessions, err := a.userSessions(ctx, realm, u)
	if err != nil {
		return activities.ActionResult{}, err
	}
	n := strconv.Itoa(len(sessions))
	if in.DryRun {
		return activities.ActionResult{
			Outputs: map[string]string{"count": n},
			Plan:    []string{fmt.Sprintf("store %d sessions of user %s (realm %s) as evidence", len(sessions), userName(u), realm)},
		}, nil
	}
	doc := map[string]any{
		"realm": realm, "userId": gocloak.PString(u.ID), "username": userName(u),
		"collectedAt": a.now().UTC(), "sessions": sessions,
	}
	ref, err := a.putJSON(ctx, in, fmt.Sprintf("keycloak/%s/users/%s/sessions.json", realm, userName(u)),
		fmt.Sprintf("keycloak:%s/users/%s/sessions", realm, gocloak.PString(u.ID)), doc)
	if err != nil {
		return activities.ActionResult{}, err
	}
	return activities.ActionResult{
		Outputs:      map[string]string{"count": n},
		EvidenceRefs: []string{ref},
		Summary:      fmt.Sprintf("stored %d sessions of user %s (realm %s) as evidence", len(sessions), userName(u), realm),
	}, nil
}

// putJSON stores v as PII-class JSON evidence.
func (a *Activities) putJSON(ctx context.Context, in activities.ActionInput, name, source string, v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode evidence %s: %w", name, err)
	}
	ref, err := a.evidence.PutEvidence(ctx, activities.EvidenceItem{
		IncidentID: in.IncidentID, Name: name, Class: activities.ClassPII, MediaType: "application/json",
		CollectedBy: collector, Source: source, Body: bytes.NewReader(b),
	})
	if err != nil {
		return "", temporal.NewApplicationErrorWithCause(fmt.Sprintf("store evidence %s: %v", name, err), "EvidenceStore", err)
	}
	return ref, nil
}

// idemKey is the step's idempotency key (falling back to incident/step).
func idemKey(action string, in activities.ActionInput) (string, error) {
	if k := strings.TrimSpace(in.IdempotencyKey); k != "" {
		return k, nil
	}
	if in.IncidentID != "" && in.StepID != "" {
		return in.IncidentID + "/" + in.StepID, nil
	}
	return "", badParams("%s: an idempotency key is required", action)
}

// DisableUser implements kc.disable_user. When the user is enabled it is
// disabled in one update that also sets iru_disabled_by=<IdempotencyKey>, so
// a retry finds its own earlier effect and still reports was_enabled=true.
// Undo carries user_id, realm, was_enabled and disabled_by for kc.enable_user.
func (a *Activities) DisableUser(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.KCDisableUserParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	realm, u, err := a.targetUser(ctx, activities.KCDisableUser, in, p.UserParams)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if err := a.requireManage(realm, u, activities.KCDisableUser); err != nil {
		return activities.ActionResult{}, err
	}
	note, err := a.guard(ctx, activities.KCDisableUser, in, realm, u)
	if err != nil {
		return activities.ActionResult{}, err
	}
	id, name := gocloak.PString(u.ID), userName(u)
	attrs := userAttrs(u)
	marker := first(attrs[DisabledByAttribute])
	enabled := gocloak.PBool(u.Enabled)
	if in.DryRun {
		plan := fmt.Sprintf("disable user %s (%s) in realm %s; existing tokens stay valid for offline verifiers until they expire", name, id, realm)
		if !enabled {
			plan = fmt.Sprintf("no change: user %s (%s) in realm %s is already disabled", name, id, realm)
		}
		return withNote(note, activities.ActionResult{Plan: []string{plan}, Outputs: map[string]string{"was_enabled": strconv.FormatBool(enabled)}}), nil
	}
	key, err := idemKey(activities.KCDisableUser, in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	wasEnabled := enabled
	switch {
	case marker == key:
		// An earlier attempt of this step disabled the user.
		wasEnabled = true
		if enabled { // re-enabled since: converge on disabled again
			u.Enabled = gocloak.BoolP(false)
			if err := a.updateUser(ctx, realm, u, "disable user"); err != nil {
				return activities.ActionResult{}, err
			}
		}
	case enabled:
		next := maps.Clone(attrs)
		if next == nil {
			next = map[string][]string{}
		}
		next[DisabledByAttribute] = []string{key}
		u.Attributes, u.Enabled = &next, gocloak.BoolP(false)
		if err := a.updateUser(ctx, realm, u, "disable user"); err != nil {
			return activities.ActionResult{}, err
		}
		logger(ctx).Info("keycloak user disabled", "realm", realm, "user", name, "userID", id)
	}
	undo := map[string]string{"realm": realm, "user_id": id, "was_enabled": strconv.FormatBool(wasEnabled)}
	summary := fmt.Sprintf("disabled user %s in realm %s", name, realm)
	if wasEnabled {
		undo["disabled_by"] = key
	} else {
		summary = fmt.Sprintf("user %s in realm %s was already disabled; nothing changed", name, realm)
	}
	return activities.ActionResult{
		Outputs: map[string]string{"was_enabled": strconv.FormatBool(wasEnabled)},
		Undo:    undo,
		Summary: summary,
	}, nil
}

// EnableUser implements kc.enable_user. As a compensation (Undo set by
// kc.disable_user) it restores the recorded prior state: it re-enables only
// a user that was enabled before, and refuses when the user was disabled
// again by someone else since. As a plain recovery step it re-enables the
// user (a user disabled by a platform step carries that step's marker).
// Enabling also clears Keycloak's brute-force lockout.
func (a *Activities) EnableUser(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.KCEnableUserParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	realm, u, err := a.targetUser(ctx, activities.KCEnableUser, in, p.UserParams)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if err := a.requireManage(realm, u, activities.KCEnableUser); err != nil {
		return activities.ActionResult{}, err
	}
	id, name := gocloak.PString(u.ID), userName(u)
	attrs := userAttrs(u)
	marker := first(attrs[DisabledByAttribute])
	enabled := gocloak.PBool(u.Enabled)

	want := true
	if len(in.Undo) > 0 {
		if r := in.Undo["realm"]; r != "" && r != realm {
			return activities.ActionResult{}, badParams("%s: undo is for realm %s, not %s", activities.KCEnableUser, r, realm)
		}
		if uid := in.Undo["user_id"]; uid != "" && uid != id {
			return activities.ActionResult{}, badParams("%s: undo is for user %s, not %s", activities.KCEnableUser, uid, id)
		}
		was, err := strconv.ParseBool(in.Undo["was_enabled"])
		if err != nil {
			return activities.ActionResult{}, badParams("%s: undo was_enabled=%q is not a boolean", activities.KCEnableUser, in.Undo["was_enabled"])
		}
		want = was
		by := in.Undo["disabled_by"]
		switch {
		case !was:
			// The user was disabled before the forward step: leave it so.
		case marker != "" && marker != by:
			return activities.ActionResult{}, precondition("%s: user %s in realm %s was disabled again by step %q since; not re-enabling", activities.KCEnableUser, name, realm, marker)
		case marker == "" && !enabled:
			return activities.ActionResult{}, precondition("%s: user %s in realm %s was disabled outside the platform since; not re-enabling", activities.KCEnableUser, name, realm)
		}
	}
	change := want && (!enabled || marker != "")
	if in.DryRun {
		plan := fmt.Sprintf("no change: user %s in realm %s stays enabled=%t", name, realm, enabled)
		if change {
			plan = fmt.Sprintf("enable user %s (%s) in realm %s and remove the %s marker", name, id, realm, DisabledByAttribute)
		}
		return activities.ActionResult{Plan: []string{plan}, Outputs: map[string]string{"enabled": strconv.FormatBool(enabled || change)}}, nil
	}
	if change {
		next := maps.Clone(attrs)
		if next == nil {
			next = map[string][]string{}
		}
		delete(next, DisabledByAttribute)
		u.Attributes, u.Enabled = &next, gocloak.BoolP(true)
		if err := a.updateUser(ctx, realm, u, "enable user"); err != nil {
			return activities.ActionResult{}, err
		}
		enabled = true
		logger(ctx).Info("keycloak user enabled", "realm", realm, "user", name, "userID", id)
	}
	summary := fmt.Sprintf("user %s in realm %s enabled", name, realm)
	if !change {
		summary = fmt.Sprintf("user %s in realm %s left as it was (enabled=%t)", name, realm, enabled)
	}
	return activities.ActionResult{Outputs: map[string]string{"enabled": strconv.FormatBool(enabled)}, Summary: summary}, nil
}

// LogoutUser implements kc.logout_user: every online session of the user
// ends and the user's not-before moves to now (POST users/{id}/logout).
// Outputs sessions_ended. Disable the user first, or the user may log in again.
func (a *Activities) LogoutUser(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.KCLogoutUserParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	realm, u, g, before, err := a.logoutTarget(ctx, in, p.UserParams)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if err := a.requireManage(realm, u, activities.KCLogoutUser); err != nil {
		return activities.ActionResult{}, err
	}
	note, err := a.judge(ctx, activities.KCLogoutUser, in, realm, u, a.protectedBy(realm, u, g))
	if err != nil {
		return activities.ActionResult{}, err
	}
	id, name := gocloak.PString(u.ID), userName(u)
	if in.DryRun {
		return withNote(note, activities.ActionResult{Plan: []string{fmt.Sprintf("log out user %s (%s) in realm %s: end %d sessions and revoke earlier tokens (user not-before)", name, id, realm, len(before))}}), nil
	}
	err = a.call(ctx, fmt.Sprintf("POST users/%s/logout (log out %s in realm %s)", id, name, realm), func(ctx context.Context, tok string) error {
		return a.gc.LogoutAllSessions(ctx, tok, realm, id)
	})
	if err != nil {
		return activities.ActionResult{}, err
	}
	after, err := a.userSessions(ctx, realm, u)
	if err != nil {
		return activities.ActionResult{}, err
	}
	summary := fmt.Sprintf("logged out user %s in realm %s: %d sessions ended", name, realm, len(before))
	if len(after) > 0 {
		summary += fmt.Sprintf("; %d new sessions started since (user enabled=%t)", len(after), gocloak.PBool(u.Enabled))
	}
	logger(ctx).Info("keycloak user logged out", "realm", realm, "user", name, "sessions", len(before))
	return activities.ActionResult{Outputs: map[string]string{"sessions_ended": strconv.Itoa(len(before))}, Summary: summary}, nil
}

// logoutTarget reads what kc.logout_user decides on, all at once (the
// reads are independent: each needs only the user id): the user (the
// drill rule applied), its grants and its sessions. Nothing is changed
// before every check on them has passed.
func (a *Activities) logoutTarget(ctx context.Context, in activities.ActionInput, p activities.UserParams) (string, *gocloak.User, grants, []*gocloak.UserSessionRepresentation, error) {
	action := activities.KCLogoutUser
	realm, err := checkRealm(action, p.RealmParams, a.cfg)
	if err != nil {
		return "", nil, grants{}, nil, err
	}
	id, err := segment(action, "user_id", p.UserID)
	if err != nil {
		return "", nil, grants{}, nil, err
	}
	var (
		u                   *gocloak.User
		g                   grants
		sessions            []*gocloak.UserSessionRepresentation
		userErr, gErr, sErr error
		wg                  sync.WaitGroup
	)
	wg.Go(func() { u, userErr = a.getUser(ctx, realm, id, action) })
	wg.Go(func() { g, gErr = a.readGrants(ctx, realm, id, id) })
	wg.Go(func() { sessions, sErr = a.userSessions(ctx, realm, &gocloak.User{ID: &id, Username: &id}) })
	wg.Wait()
	// The user's own read decides first: a user that does not exist is
	// reported as such, not as a failed read of its roles.
	if userErr != nil {
		return "", nil, grants{}, nil, userErr
	}
	if err := a.checkDrillUser(in, realm, u); err != nil {
		return "", nil, grants{}, nil, err
	}
	if gErr != nil {
		return "", nil, grants{}, nil, gErr
	}
	if sErr != nil {
		return "", nil, grants{}, nil, sErr
	}
	return realm, u, g, sessions, nil
}

// DeleteSession implements kc.delete_session. The session is looked up
// first (through the clients' session lists) to check its user: a drill
// target in a drill, and not a protected account without the approval. A
// missing session on the first attempt is a final NotFound; on a retried
// attempt it means an earlier attempt already removed the session, and is
// success once the realm is confirmed to exist.
func (a *Activities) DeleteSession(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.KCDeleteSessionParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	realm, err := checkRealm(activities.KCDeleteSession, p.RealmParams, a.cfg)
	if err != nil {
		return activities.ActionResult{}, err
	}
	sid, err := segment(activities.KCDeleteSession, "session_id", p.SessionID)
	if err != nil {
		return activities.ActionResult{}, err
	}
	// The session's owner decides: a drill target only in a drill, and a
	// protected account only with the protected-account approval.
	s, err := a.findSession(ctx, realm, sid)
	if err != nil {
		if errType(err) == activities.ErrTypeNotFound && a.attempt(ctx) > 1 && !in.DryRun {
			return a.sessionGone(ctx, realm, sid)
		}
		return activities.ActionResult{}, err
	}
	u, err := a.getUser(ctx, realm, gocloak.PString(s.UserID), "session owner")
	if err != nil {
		return activities.ActionResult{}, err
	}
	if err := a.checkDrillUser(in, realm, u); err != nil {
		return activities.ActionResult{}, err
	}
	if err := a.requireManage(realm, u, activities.KCDeleteSession); err != nil {
		return activities.ActionResult{}, err
	}
	note, err := a.guard(ctx, activities.KCDeleteSession, in, realm, u)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if in.DryRun {
		return withNote(note, activities.ActionResult{Plan: []string{fmt.Sprintf("end session %s of user %s in realm %s", sid, userName(u), realm)}}), nil
	}
	err = a.call(ctx, fmt.Sprintf("DELETE sessions/%s (end session in realm %s)", sid, realm), func(ctx context.Context, tok string) error {
		return a.gc.LogoutUserSession(ctx, tok, realm, sid)
	})
	if err == nil {
		logger(ctx).Info("keycloak session deleted", "realm", realm, "session", sid)
		return activities.ActionResult{Summary: fmt.Sprintf("ended session %s in realm %s", sid, realm)}, nil
	}
	if errType(err) != activities.ErrTypeNotFound || a.attempt(ctx) <= 1 {
		return activities.ActionResult{}, err
	}
	return a.sessionGone(ctx, realm, sid)
}

// sessionGone is the success of a retried kc.delete_session whose session
// is missing: only if it is the session that is missing, not the realm.
func (a *Activities) sessionGone(ctx context.Context, realm, sid string) (activities.ActionResult, error) {
	if _, rerr := a.getRealm(ctx, realm, "confirm realm of deleted session"); rerr != nil {
		return activities.ActionResult{}, rerr
	}
	return activities.ActionResult{Summary: fmt.Sprintf("session %s in realm %s is gone (ended by an earlier attempt or already over)", sid, realm)}, nil
}

// findSession looks a session up through every client's session list.
func (a *Activities) findSession(ctx context.Context, realm, sid string) (*gocloak.UserSessionRepresentation, error) {
	var clients []*gocloak.Client
	err := a.call(ctx, fmt.Sprintf("GET clients (find session %s in realm %s)", sid, realm), func(ctx context.Context, tok string) error {
		var err error
		clients, err = a.gc.GetClients(ctx, tok, realm, gocloak.GetClientsParams{})
		return err
	})
	if err != nil {
		return nil, err
	}
	const pageSize = 100
	for _, c := range clients {
		cid := gocloak.PString(c.ID)
		if !validSegment(cid) {
			continue
		}
		for first := 0; ; first += pageSize {
			heartbeat(ctx, "find session", cid, first)
			var page []*gocloak.UserSessionRepresentation
			err := a.call(ctx, fmt.Sprintf("GET clients/%s/user-sessions (find session %s in realm %s)", cid, sid, realm), func(ctx context.Context, tok string) error {
				var err error
				page, err = a.gc.GetClientUserSessions(ctx, tok, realm, cid, gocloak.GetClientUserSessionsParams{First: gocloak.IntP(first), Max: gocloak.IntP(pageSize)})
				return err
			})
			if err != nil {
				return nil, err
			}
			for _, s := range page {
				if gocloak.PString(s.ID) == sid {
					return s, nil
				}
			}
			if len(page) < pageSize {
				break
			}
		}
	}
	return nil, activities.NewFinalError(activities.ErrTypeNotFound, fmt.Sprintf("keycloak: session %s not found in realm %s", sid, realm), nil)
}

// errType returns the application error type of err ("" if none).
func errType(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type()
	}
	return ""
}

func userName(u *gocloak.User) string {
	if n := gocloak.PString(u.Username); n != "" {
		return n
	}
	return gocloak.PString(u.ID)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
