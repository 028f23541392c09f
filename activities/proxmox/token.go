package proxmox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"strings"

	"github.com/iru-responder/responder/activities"
)

// rotationMarker starts the part of a token comment where pve.rotate_token
// records its rotation: "iru-rotation key=<key> from=<tokenid> ref=<secret ref>".
const rotationMarker = "iru-rotation"

var (
	reRotatedSuffix = regexp.MustCompile(`-r[0-9a-f]{8}$`)
	reRotationRef   = regexp.MustCompile(`\bref=(\S+)`)
)

// RotatedTokenID is the id of the token that replaces tokenID for the
// rotation with this idempotency key: the base name plus "-r" and 8 hex
// digits of the key's SHA-256 (an earlier rotation suffix is replaced).
func RotatedTokenID(tokenID, key string) string {
	sum := sha256.Sum256([]byte(key))
	return reRotatedSuffix.ReplaceAllString(tokenID, "") + "-r" + hex.EncodeToString(sum[:4])
}

type tokenInfo struct {
	TokenID string `json:"tokenid"`
	Comment string `json:"comment"`
	Privsep int    `json:"privsep"`
	Expire  int64  `json:"expire"`
}

type aclEntry struct {
	Path      string `json:"path"`
	RoleID    string `json:"roleid"`
	Type      string `json:"type"`
	UGID      string `json:"ugid"`
	Propagate int    `json:"propagate"`
}

// secretReader is implemented by secret sinks that can give a stored
// secret back (internal/secretsink.File does); with one, a retried rotation
// can still switch this worker to the new token.
type secretReader interface {
	Read(ref string) ([]byte, error)
}

// RotateToken implements [activities.PVERotateToken] for token_id
// USER@REALM!TOKENID:
//
//  1. create the token USER@REALM!<RotatedTokenID> with the old token's
//     privilege separation, expiry and ACL entries;
//  2. verify it: it authenticates and its effective permissions equal the
//     old token's;
//  3. hand the secret to the secret sink and record the reference in the
//     new token's comment (the secret itself is never returned, logged or
//     put in an error);
//  4. switch this worker to the new token when the old one is its own
//     (IRU_PVE_TOKEN_ID); the result's token_ref is what the deployment
//     must switch to;
//  5. delete the old token.
//
// A retry resumes from the tokens it finds: a new token whose comment has
// a reference is done up to step 3; one without (the secret was lost in a
// crash between steps 1 and 3) is deleted and created again. Two tokens
// exist between steps 1 and 5: if the workflow gives up in between (no
// more retries), both stay, and the operator deletes one. When a retry
// cannot read the secret back (a sink without Read) and the old token is
// this worker's own, the old token is kept, so the worker keeps working,
// and the summary says so.
func (a *Activities) RotateToken(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVERotateTokenParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x := a.call(activities.PVERotateToken)
	full := p.TokenID
	if !reTokenID.MatchString(full) {
		return activities.ActionResult{}, final(activities.ErrTypeBadParams, fmt.Sprintf("%s: parameter token_id: %q is not USER@REALM!TOKENID", x.action, full))
	}
	userID, oldID, _ := strings.Cut(full, "!")
	key := in.IdempotencyKey
	if key == "" {
		key = in.IncidentID + "/" + in.StepID
	}
	newID := RotatedTokenID(oldID, key)
	newFull := userID + "!" + newID
	x.action = fmt.Sprintf("%s %s", activities.PVERotateToken, full)
	tokensPath := "/access/users/" + url.PathEscape(userID) + "/token"
	var tokens []tokenInfo
	if err := x.get(ctx, tokensPath, &tokens); err != nil {
		return activities.ActionResult{}, err
	}
	var old, nw *tokenInfo
	for i := range tokens {
		switch tokens[i].TokenID {
		case newID:
			nw = &tokens[i]
		case oldID:
			old = &tokens[i]
		}
	}
	if in.Drill {
		c := ""
		if old != nil {
			c = old.Comment
		} else if nw != nil {
			c = nw.Comment
		}
		if !hasWord(c, a.cfg.DrillTag) {
			return activities.ActionResult{}, final(activities.ErrTypePrecondition, fmt.Sprintf("%s: drill refused: the token comment does not contain the drill tag %q", x.what(), a.cfg.DrillTag))
		}
	}
	ref := ""
	if nw != nil {
		if _, rec, ok := strings.Cut(nw.Comment, rotationMarker); ok {
			if m := reRotationRef.FindStringSubmatch(rec); m != nil {
				ref = m[1]
			}
		}
	}
	if old == nil && ref == "" {
		return activities.ActionResult{}, final(activities.ErrTypeNotFound, fmt.Sprintf("%s: token %s does not exist", x.what(), full))
	}
	var acls []aclEntry
	if old != nil {
		var all []aclEntry
		if err := x.get(ctx, "/access/acl", &all); err != nil {
			return activities.ActionResult{}, err
		}
		for _, e := range all {
			if e.UGID == full && e.Type == "token" {
				acls = append(acls, e)
			}
		}
	}
	if in.DryRun {
		plan := []string{}
		if ref == "" {
			for _, e := range acls {
				if err := x.requirePrivs(ctx, e.Path, "Permissions.Modify"); err != nil {
					return activities.ActionResult{}, err
				}
			}
			plan = append(plan, fmt.Sprintf("create token %s (privsep %d, %d ACL entries copied), verify it, store its secret in the secret sink", newFull, old.Privsep, len(acls)))
		}
		if old != nil {
			plan = append(plan, "delete token "+full)
		}
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"token_ref": ref}, Summary: "dry run: rotate " + full}, nil
	}
	var secret []byte
	if ref == "" {
		if nw != nil { // created by a crashed attempt whose secret is lost: never handed out
			if err := x.del(ctx, tokensPath+"/"+url.PathEscape(newID), nil); err != nil {
				return activities.ActionResult{}, err
			}
		}
		var created struct {
			FullTokenID string `json:"full-tokenid"`
			Value       string `json:"value"`
		}
		base, _, _ := strings.Cut(old.Comment, rotationMarker) // drop an earlier rotation's record
		comment := strings.TrimSpace(strings.TrimSpace(base) + " " + fmt.Sprintf("%s key=%s from=%s", rotationMarker, key, oldID))
		if err := x.post(ctx, tokensPath+"/"+url.PathEscape(newID), map[string]any{"comment": comment, "privsep": old.Privsep, "expire": old.Expire}, &created); err != nil {
			return activities.ActionResult{}, err
		}
		if created.Value == "" {
			return activities.ActionResult{}, retryable(x.what()+": token "+newFull+" created without a secret in the answer", nil)
		}
		secret = []byte(created.Value)
		for _, e := range acls {
			body := map[string]any{"path": e.Path, "roles": e.RoleID, "tokens": newFull, "propagate": e.Propagate}
			if err := x.put(ctx, "/access/acl", body, nil); err != nil {
				return activities.ActionResult{}, err
			}
		}
		if err := a.verifyToken(ctx, x, full, newFull, string(secret)); err != nil {
			return activities.ActionResult{}, err
		}
		r, err := a.secrets.StoreSecret(ctx, activities.SecretItem{Name: "pve/" + userID + "/" + newID, Value: secret})
		if err != nil {
			return activities.ActionResult{}, retryable(fmt.Sprintf("%s: store the secret of %s: %v", x.what(), newFull, err), nil)
		}
		ref = r
		if err := x.put(ctx, tokensPath+"/"+url.PathEscape(newID), map[string]any{"comment": comment + " ref=" + ref}, nil); err != nil {
			return activities.ActionResult{}, err
		}
	} else if sr, ok := a.secrets.(secretReader); ok {
		if b, err := sr.Read(ref); err == nil {
			secret = b
		}
	}
	summary := fmt.Sprintf("rotated %s to %s; secret at %s", full, newFull, ref)
	if _, cur := a.current(); old != nil && cur == full {
		if secret == nil {
			summary += fmt.Sprintf("; old token kept: this worker still uses it (switch IRU_PVE_TOKEN_ID/IRU_PVE_TOKEN_SECRET to %s, then delete %s)", newFull, full)
			return activities.ActionResult{Outputs: map[string]string{"token_ref": ref, "token_id": newFull}, Summary: summary}, nil
		}
		a.switchToken(newFull, string(secret))
		summary += "; this worker switched to the new token"
	}
	if old != nil {
		y := a.call(x.action)
		if err := y.del(ctx, tokensPath+"/"+url.PathEscape(oldID), nil); err != nil {
			var ae *APIError
			if !(errors.As(err, &ae) && isNotFoundMsg(ae.Message)) {
				return activities.ActionResult{}, err
			}
		}
	}
	if p.Reason != "" {
		summary += " (" + p.Reason + ")"
	}
	return activities.ActionResult{Outputs: map[string]string{"token_ref": ref, "token_id": newFull}, Summary: summary}, nil
}

// verifyToken checks that the new token authenticates and has the same
// effective permissions as the old one.
func (a *Activities) verifyToken(ctx context.Context, x *call, oldFull, newFull, secret string) error {
	y := &call{a: a, c: a.newClient(newFull, secret), token: newFull, action: x.action + " (as " + newFull + ")"}
	var got, want map[string]map[string]int
	if err := y.get(ctx, "/access/permissions", &got); err != nil {
		return err
	}
	if err := x.get(ctx, "/access/permissions?userid="+url.QueryEscape(oldFull), &want); err != nil {
		return err
	}
	for p, privs := range want {
		if !maps.Equal(privs, got[p]) {
			return verifyError(fmt.Sprintf("%s: new token %s has other permissions on %s than %s", x.what(), newFull, p, oldFull))
		}
	}
	return nil
}

// switchToken makes this worker use another API token.
func (a *Activities) switchToken(tokenID, secret string) {
	c := a.newClient(tokenID, secret)
	a.mu.Lock()
	a.tokenID, a.tokenSecret, a.client = tokenID, secret, c
	a.mu.Unlock()
}

// hasWord reports whether s contains w as a whitespace or punctuation
// separated word.
func hasWord(s, w string) bool {
	for _, f := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		if f == strings.ToLower(w) {
			return true
		}
	}
	return false
}
