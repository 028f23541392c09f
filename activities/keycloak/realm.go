package keycloak

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
)

// getRealm reads a realm's representation.
func (a *Activities) getRealm(ctx context.Context, realm, purpose string) (*gocloak.RealmRepresentation, error) {
	var r *gocloak.RealmRepresentation
	err := a.call(ctx, fmt.Sprintf("GET realm %s (%s)", realm, purpose), func(ctx context.Context, tok string) error {
		var err error
		r, err = a.gc.GetRealm(ctx, tok, realm)
		return err
	})
	return r, err
}

// globalRequestResult is Keycloak's GlobalRequestResult.
type globalRequestResult struct {
	SuccessRequests []string `json:"successRequests"`
	FailedRequests  []string `json:"failedRequests"`
}

// RevokeRealm implements kc.revoke_realm: the realm's not-before moves to
// now, so every token issued before is rejected (introspection, refresh,
// admin API), then, when push is true, the not-before is pushed to the
// clients that have an admin URL. A retry reuses the not-before chosen by
// the first attempt (kept in the heartbeat details) and skips the update
// when the realm already has it. Outputs not_before (RFC 3339), pushed and
// push_failed (counts of client admin URLs).
func (a *Activities) RevokeRealm(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.KCRevokeRealmParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	realm, err := checkRealm(activities.KCRevokeRealm, p.RealmParams, a.cfg)
	if err != nil {
		return activities.ActionResult{}, err
	}
	push := p.Push
	if in.Drill && !a.drillRealm(realm) {
		return activities.ActionResult{}, precondition("drill: realm %s is not a drill realm (IRU_KEYCLOAK_DRILL_REALMS)", realm)
	}
	r, err := a.getRealm(ctx, realm, "read not-before")
	if err != nil {
		return activities.ActionResult{}, err
	}
	if err := a.requireRole(ctx, realm, "set not-before", "manage-realm"); err != nil {
		return activities.ActionResult{}, err
	}
	cur := int64(gocloak.PInt(r.NotBefore))
	if in.DryRun {
		plan := []string{fmt.Sprintf("set the not-before of realm %s to now (currently %s): every token issued before is rejected", realm, unixString(cur))}
		if push {
			plan = append(plan, fmt.Sprintf("push the not-before of realm %s to its clients' admin URLs", realm))
		}
		return activities.ActionResult{Plan: plan}, nil
	}
	nb := a.now().Unix()
	if activity.HasHeartbeatDetails(ctx) {
		var prev int64
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil && prev > 0 {
			nb = prev
		}
	}
	if cur < nb {
		heartbeat(ctx, nb)
		nbInt := int(nb)
		err := a.call(ctx, fmt.Sprintf("PUT realm %s (set not-before)", realm), func(ctx context.Context, tok string) error {
			return a.gc.UpdateRealm(ctx, tok, gocloak.RealmRepresentation{Realm: gocloak.StringP(realm), NotBefore: &nbInt})
		})
		if err != nil {
			return activities.ActionResult{}, err
		}
		logger(ctx).Info("keycloak realm not-before set", "realm", realm, "notBefore", nb)
	} else {
		nb = cur
	}
	res := activities.ActionResult{Outputs: map[string]string{"not_before": unixString(nb), "pushed": "0", "push_failed": "0"}}
	res.Summary = fmt.Sprintf("realm %s rejects tokens issued before %s", realm, unixString(nb))
	if push {
		var gr globalRequestResult
		err := a.call(ctx, fmt.Sprintf("POST realm %s push-revocation", realm), func(ctx context.Context, tok string) error {
			gr = globalRequestResult{}
			resp, err := a.gc.GetRequestWithBearerAuth(ctx, tok).SetResult(&gr).Post(a.adminURL(realm, "push-revocation"))
			if err != nil {
				return rawError(0, "", err, nil)
			}
			return rawError(resp.StatusCode(), resp.Status(), nil, resp.Error())
		})
		if err != nil {
			return activities.ActionResult{}, err
		}
		res.Outputs["pushed"] = strconv.Itoa(len(gr.SuccessRequests))
		res.Outputs["push_failed"] = strconv.Itoa(len(gr.FailedRequests))
		res.Summary += fmt.Sprintf("; pushed to %d clients, %d unreachable", len(gr.SuccessRequests), len(gr.FailedRequests))
		if len(gr.FailedRequests) > 0 {
			res.Summary += " (" + strings.Join(gr.FailedRequests, ", ") + ")"
		}
	}
	return res, nil
}

func unixString(sec int64) string {
	if sec <= 0 {
		return "never"
	}
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}

// rotationRecord is what kc.rotate_client_secret keeps in the client
// attribute [RotationAttribute]. Digests are salted with the key, truncated
// SHA-256 values that only tell secrets apart.
type rotationRecord struct {
	Key    string `json:"key"`
	State  string `json:"state"` // "pending" before regenerating, "done" once the sink has the secret
	Before string `json:"before"`
	After  string `json:"after,omitempty"`
	Ref    string `json:"ref,omitempty"`
}

func digest(key, secret string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + secret))
	return hex.EncodeToString(sum[:8])
}

// RotateClientSecret implements kc.rotate_client_secret. The new secret goes
// only to the secret sink; Outputs secret_ref is the sink's reference.
//
// Crash safety: before regenerating, the step writes {key, state:pending,
// digest of the current secret} to the client attribute iru_secret_rotation;
// after the sink stored the new secret it writes state done with the
// reference. A retry with the same IdempotencyKey then
//   - returns the recorded reference when the rotation is done;
//   - when pending and the current secret differs from the recorded digest,
//     knows the regeneration happened and stores the current secret (read back
//     with GET client-secret) instead of rotating again;
//   - when pending and the secret is unchanged, regenerates.
//
// Limits: if someone else rotates the secret between a crash and the retry,
// the retry stores that (current, valid) secret; the marker needs
// manage-clients (already needed to rotate) and view-clients to read the
// secret back; Keycloak's optional secret-rotation policy (old secret kept
// valid for a while) is not handled. Rotating the worker's own client is
// refused: it would lock the worker out.
func (a *Activities) RotateClientSecret(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.KCRotateClientSecretParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	realm, err := checkRealm(activities.KCRotateClientSecret, p.RealmParams, a.cfg)
	if err != nil {
		return activities.ActionResult{}, err
	}
	clientID := p.ClientID
	if clientID == a.cfg.ClientID && realm == a.cfg.tokenRealm() {
		return activities.ActionResult{}, precondition("%s: client %s is the worker's own service account; rotate it by the operator procedure", activities.KCRotateClientSecret, clientID)
	}
	c, err := a.findClient(ctx, realm, clientID)
	if err != nil {
		return activities.ActionResult{}, err
	}
	id := gocloak.PString(c.ID)
	if !validSegment(id) {
		return activities.ActionResult{}, precondition("keycloak: client %s in realm %s has an unexpected id %q", clientID, realm, id)
	}
	var attrs map[string]string
	if c.Attributes != nil {
		attrs = *c.Attributes
	}
	if in.Drill && !strings.EqualFold(attrs[DrillAttribute], "true") {
		return activities.ActionResult{}, precondition("drill: client %s in realm %s is not a drill target (attribute %s=true)", clientID, realm, DrillAttribute)
	}
	if gocloak.PBool(c.PublicClient) || gocloak.PBool(c.BearerOnly) {
		return activities.ActionResult{}, precondition("%s: client %s in realm %s is public or bearer-only and has no secret", activities.KCRotateClientSecret, clientID, realm)
	}
	if c.Access != nil {
		if m, ok := (*c.Access)["manage"].(bool); ok && !m {
			return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypePermission,
				fmt.Sprintf("%s: service account %s may not manage client %s in realm %s", activities.KCRotateClientSecret, a.cfg.ClientID, clientID, realm), nil)
		}
	}
	var rec rotationRecord
	if v := attrs[RotationAttribute]; v != "" {
		_ = json.Unmarshal([]byte(v), &rec) // a damaged record is treated as absent
	}
	key := strings.TrimSpace(in.IdempotencyKey)
	if in.DryRun {
		plan := fmt.Sprintf("regenerate the secret of client %s in realm %s (the old secret stops working at once) and store the new one in the secret sink", clientID, realm)
		if key != "" && rec.Key == key && rec.State == "done" {
			plan = fmt.Sprintf("no change: the secret of client %s in realm %s was already rotated by this step", clientID, realm)
		}
		return activities.ActionResult{Plan: []string{plan}}, nil
	}
	if key, err = idemKey(activities.KCRotateClientSecret, in); err != nil {
		return activities.ActionResult{}, err
	}
	if rec.Key == key && rec.State == "done" && rec.Ref != "" {
		return activities.ActionResult{
			Outputs: map[string]string{"secret_ref": rec.Ref},
			Summary: fmt.Sprintf("secret of client %s in realm %s already rotated by this step; new secret at %s", clientID, realm, rec.Ref),
		}, nil
	}
	cur, err := a.clientSecret(ctx, realm, clientID, id, "GET", func(ctx context.Context, tok string) (*gocloak.CredentialRepresentation, error) {
		return a.gc.GetClientSecret(ctx, tok, realm, id)
	})
	if err != nil {
		return activities.ActionResult{}, err
	}
	newSecret := cur
	regenerated := false
	if rec.Key != key || rec.State != "pending" || rec.Before == digest(key, cur) {
		rec = rotationRecord{Key: key, State: "pending", Before: digest(key, cur)}
		if err := a.writeRotation(ctx, realm, c, attrs, rec); err != nil {
			return activities.ActionResult{}, err
		}
		newSecret, err = a.clientSecret(ctx, realm, clientID, id, "POST", func(ctx context.Context, tok string) (*gocloak.CredentialRepresentation, error) {
			return a.gc.RegenerateClientSecret(ctx, tok, realm, id)
		})
		if err != nil {
			return activities.ActionResult{}, err
		}
		regenerated = true
		logger(ctx).Info("keycloak client secret regenerated", "realm", realm, "client", clientID)
	}
	name := fmt.Sprintf("keycloak/%s/%s/client-secret", realm, clientID)
	ref, err := a.secrets.StoreSecret(ctx, activities.SecretItem{Name: name, Value: []byte(newSecret)})
	if err != nil {
		// Never let a sink that echoes its input put the value into history.
		msg := strings.ReplaceAll(err.Error(), newSecret, "[redacted]")
		return activities.ActionResult{}, temporal.NewApplicationError(
			fmt.Sprintf("%s: store the new secret of client %s in realm %s in the secret sink: %s; a retry stores it without rotating again", activities.KCRotateClientSecret, clientID, realm, msg), "SecretSink")
	}
	rec.State, rec.After, rec.Ref = "done", digest(key, newSecret), ref
	if err := a.writeRotation(ctx, realm, c, attrs, rec); err != nil {
		return activities.ActionResult{}, err
	}
	summary := fmt.Sprintf("rotated the secret of client %s in realm %s; new secret at %s", clientID, realm, ref)
	if !regenerated {
		summary = fmt.Sprintf("secret of client %s in realm %s was regenerated by an earlier attempt; stored it at %s", clientID, realm, ref)
	}
	return activities.ActionResult{Outputs: map[string]string{"secret_ref": ref}, Summary: summary}, nil
}

// clientSecret runs a GET or POST client-secret call and returns the value.
func (a *Activities) clientSecret(ctx context.Context, realm, clientID, id, method string,
	fn func(ctx context.Context, tok string) (*gocloak.CredentialRepresentation, error)) (string, error) {
	var cred *gocloak.CredentialRepresentation
	what := fmt.Sprintf("%s clients/%s/client-secret (client %s in realm %s)", method, id, clientID, realm)
	err := a.call(ctx, what, func(ctx context.Context, tok string) error {
		var err error
		cred, err = fn(ctx, tok)
		return err
	})
	if err != nil {
		return "", err
	}
	if cred == nil || gocloak.PString(cred.Value) == "" {
		return "", temporal.NewApplicationError(fmt.Sprintf("keycloak %s: empty secret in response", what), ErrTypeUnavailable)
	}
	return gocloak.PString(cred.Value), nil
}

// writeRotation stores rec in the client's attributes, keeping the others.
func (a *Activities) writeRotation(ctx context.Context, realm string, c *gocloak.Client, attrs map[string]string, rec rotationRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode rotation record: %w", err)
	}
	next := maps.Clone(attrs)
	if next == nil {
		next = map[string]string{}
	}
	next[RotationAttribute] = string(b)
	body := gocloak.Client{ID: c.ID, ClientID: c.ClientID, Attributes: &next}
	return a.call(ctx, fmt.Sprintf("PUT clients/%s (record secret rotation of client %s in realm %s)", gocloak.PString(c.ID), gocloak.PString(c.ClientID), realm),
		func(ctx context.Context, tok string) error { return a.gc.UpdateClient(ctx, tok, realm, body) })
}

// findClient looks a client up by clientId.
func (a *Activities) findClient(ctx context.Context, realm, clientID string) (*gocloak.Client, error) {
	var list []*gocloak.Client
	what := fmt.Sprintf("GET clients?clientId=%s (realm %s)", clientID, realm)
	err := a.call(ctx, what, func(ctx context.Context, tok string) error {
		var err error
		list, err = a.gc.GetClients(ctx, tok, realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(clientID)})
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if gocloak.PString(c.ClientID) == clientID {
			return c, nil
		}
	}
	return nil, activities.NewFinalError(activities.ErrTypeNotFound, fmt.Sprintf("keycloak %s: no client %s in realm %s", what, clientID, realm), nil)
}

// rawEvent keeps an event exactly as Keycloak sent it.
type rawEvent map[string]json.RawMessage

func (e rawEvent) time() int64 {
	n, _ := strconv.ParseInt(string(e["time"]), 10, 64)
	return n
}

func (e rawEvent) str(k string) string {
	var s string
	_ = json.Unmarshal(e[k], &s)
	return s
}

// maxEvents bounds how many events of each kind one collection stores.
const maxEvents = 50000

// eventsPageSize is the page size of event queries.
const eventsPageSize = 200

// redactedPaths are admin-event resource paths whose representation holds
// credentials (a regenerated client secret, a new password).
var redactedPaths = []string{"/client-secret", "/reset-password", "/credentials"}

// CollectEvents implements kc.collect_events: the realm's user events and
// admin events of the window (optionally about one user) go to the
// evidence locker, with representations that carry credentials redacted.
// Outputs manifest (reference of the manifest item) and failed_logins
// (LOGIN_ERROR events in the window). It heartbeats once per page.
func (a *Activities) CollectEvents(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.KCCollectEventsParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	realm, err := checkRealm(activities.KCCollectEvents, p.RealmParams, a.cfg)
	if err != nil {
		return activities.ActionResult{}, err
	}
	window := p.Window
	userID := ""
	subject := "realm " + realm
	if p.UserID != "" {
		if userID, err = segment(activities.KCCollectEvents, "user_id", p.UserID); err != nil {
			return activities.ActionResult{}, err
		}
		u, err := a.getUser(ctx, realm, userID, "collect events")
		if err != nil {
			return activities.ActionResult{}, err
		}
		if err := a.checkDrillUser(in, realm, u); err != nil {
			return activities.ActionResult{}, err
		}
		subject = fmt.Sprintf("user %s in realm %s", userName(u), realm)
	} else if in.Drill && !a.drillRealm(realm) {
		return activities.ActionResult{}, precondition("drill: realm %s is not a drill realm (IRU_KEYCLOAK_DRILL_REALMS); name a drill user", realm)
	}
	if err := a.requireRole(ctx, realm, "read events", "view-events", "manage-events"); err != nil {
		return activities.ActionResult{}, err
	}
	end := a.now().UTC()
	start := end.Add(-window)
	if in.DryRun {
		return activities.ActionResult{Plan: []string{fmt.Sprintf("no change: copy the user and admin events of %s from %s to %s into the evidence locker",
			subject, start.Format(time.RFC3339), end.Format(time.RFC3339))}}, nil
	}
	userQ := map[string]string{}
	adminQ := map[string]string{}
	if userID != "" {
		userQ["user"] = userID
		adminQ["resourcePath"] = "users/" + userID + "*"
	}
	events, evTrunc, err := a.pageEvents(ctx, realm, "events", userQ, start, end)
	if err != nil {
		return activities.ActionResult{}, err
	}
	adminEvents, adTrunc, err := a.pageEvents(ctx, realm, "admin-events", adminQ, start, end)
	if err != nil {
		return activities.ActionResult{}, err
	}
	failed := 0
	for _, e := range events {
		if e.str("type") == "LOGIN_ERROR" {
			failed++
		}
	}
	for _, e := range adminEvents {
		path := e.str("resourcePath")
		for _, sfx := range redactedPaths {
			if strings.HasSuffix(path, sfx) || strings.Contains(path, sfx+"/") {
				if _, ok := e["representation"]; ok {
					e["representation"] = json.RawMessage(`"[redacted by iru: credential]"`)
				}
			}
		}
	}
	base := fmt.Sprintf("keycloak/%s/events", realm)
	if userID != "" {
		base = fmt.Sprintf("keycloak/%s/users/%s/events", realm, userID)
	}
	source := "keycloak:" + realm
	window2 := map[string]string{"from": start.Format(time.RFC3339Nano), "to": end.Format(time.RFC3339Nano)}
	evRef, err := a.putJSON(ctx, in, base+"/user-events.json", source+"/events",
		map[string]any{"realm": realm, "userId": userID, "window": window2, "truncated": evTrunc, "events": nonNil(events)})
	if err != nil {
		return activities.ActionResult{}, err
	}
	adRef, err := a.putJSON(ctx, in, base+"/admin-events.json", source+"/admin-events",
		map[string]any{"realm": realm, "userId": userID, "window": window2, "truncated": adTrunc, "adminEvents": nonNil(adminEvents)})
	if err != nil {
		return activities.ActionResult{}, err
	}
	manifest := map[string]any{
		"realm": realm, "userId": userID, "window": window2,
		"items": []map[string]any{
			{"name": base + "/user-events.json", "ref": evRef, "count": len(events), "truncated": evTrunc},
			{"name": base + "/admin-events.json", "ref": adRef, "count": len(adminEvents), "truncated": adTrunc},
		},
		"failedLogins": failed,
	}
	mRef, err := a.putJSON(ctx, in, base+"/manifest.json", source, manifest)
	if err != nil {
		return activities.ActionResult{}, err
	}
	summary := fmt.Sprintf("collected %d user events and %d admin events of %s over %s (%d failed logins)", len(events), len(adminEvents), subject, window, failed)
	if evTrunc || adTrunc {
		summary += fmt.Sprintf("; truncated at %d events per kind", maxEvents)
	}
	return activities.ActionResult{
		Outputs:      map[string]string{"manifest": mRef, "failed_logins": strconv.Itoa(failed)},
		EvidenceRefs: []string{mRef, evRef, adRef},
		Summary:      summary,
	}, nil
}

// pageEvents reads kind ("events" or "admin-events") newest first, page by
// page, keeping events in [start, end]. The date bounds sent are whole days
// widened by one on each side (Keycloak 23 reads yyyy-MM-dd in the server's
// time zone); the exact window is applied here.
func (a *Activities) pageEvents(ctx context.Context, realm, kind string, extra map[string]string, start, end time.Time) ([]rawEvent, bool, error) {
	from, to := start.UnixMilli(), end.UnixMilli()
	var out []rawEvent
	for first := 0; ; first += eventsPageSize {
		heartbeat(ctx, kind, first)
		q := map[string]string{
			"dateFrom": start.Add(-24 * time.Hour).Format("2006-01-02"),
			"dateTo":   end.Add(24 * time.Hour).Format("2006-01-02"),
			"first":    strconv.Itoa(first),
			"max":      strconv.Itoa(eventsPageSize),
		}
		maps.Copy(q, extra)
		var page []rawEvent
		err := a.call(ctx, fmt.Sprintf("GET realm %s %s (collect events)", realm, kind), func(ctx context.Context, tok string) error {
			page = nil
			resp, err := a.gc.GetRequestWithBearerAuth(ctx, tok).SetQueryParams(q).SetResult(&page).Get(a.adminURL(realm, kind))
			if err != nil {
				return rawError(0, "", err, nil)
			}
			return rawError(resp.StatusCode(), resp.Status(), nil, resp.Error())
		})
		if err != nil {
			return nil, false, err
		}
		older := false
		for _, e := range page {
			t := e.time()
			if t < from {
				older = true
				continue
			}
			if t > to {
				continue
			}
			if len(out) == maxEvents {
				return out, true, nil
			}
			out = append(out, e)
		}
		if len(page) < eventsPageSize || older {
			return out, false, nil
		}
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
