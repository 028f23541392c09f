package keycloak

import (
	"context"
	"fmt"
	"strings"

	"github.com/Nerzal/gocloak/v13"

	"github.com/iru-responder/responder/activities"
)

// DisableDirectGrants implements [activities.KCDisableDirectGrants]: the
// client's directAccessGrantsEnabled becomes false (the PUT carries that
// field only; Keycloak leaves the others as they are), read back to
// verify. A client whose direct grants are off already is left alone. The
// prior value is in Undo; the action has no compensation (turning the
// password grant on again is not a recovery). In a drill only a client
// marked as a drill target is acted on.
func (a *Activities) DisableDirectGrants(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.KCDisableDirectGrantsParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	realm, err := checkRealm(activities.KCDisableDirectGrants, p.RealmParams, a.cfg)
	if err != nil {
		return activities.ActionResult{}, err
	}
	clientID, err := segment(activities.KCDisableDirectGrants, "client_id", p.ClientID)
	if err != nil {
		return activities.ActionResult{}, err
	}
	// Which client to change comes from the control's failing result, not
	// from the step's parameters alone.
	er, _ := a.evidence.(activities.EvidenceReader)
	if _, err := activities.ReadControlFix(ctx, er, p.Evidence, activities.KCDisableDirectGrants,
		fmt.Sprintf("%s of incident %s: check the fix the control's check named", activities.KCDisableDirectGrants, in.IncidentID),
		map[string]string{"realm": realm, "client_id": clientID}); err != nil {
		return activities.ActionResult{}, err
	}
	c, err := a.findClient(ctx, realm, clientID)
	if err != nil {
		return activities.ActionResult{}, err
	}
	id := gocloak.PString(c.ID)
	if !validSegment(id) {
		return activities.ActionResult{}, precondition("keycloak: client %s in realm %s has an unexpected id %q", clientID, realm, id)
	}
	if in.Drill {
		var attrs map[string]string
		if c.Attributes != nil {
			attrs = *c.Attributes
		}
		if !strings.EqualFold(attrs[DrillAttribute], "true") {
			return activities.ActionResult{}, precondition("drill: client %s in realm %s is not a drill target (attribute %s=true)", clientID, realm, DrillAttribute)
		}
	}
	undo := map[string]string{"realm": realm, "client_id": clientID, "was_enabled": fmt.Sprint(gocloak.PBool(c.DirectAccessGrantsEnabled))}
	if !gocloak.PBool(c.DirectAccessGrantsEnabled) {
		note := fmt.Sprintf("nothing to change: client %s in realm %s has direct access grants off", clientID, realm)
		res := activities.ActionResult{Outputs: map[string]string{"changed": "false"}, Undo: undo, Summary: note}
		if in.DryRun {
			res.Plan = []string{note}
		}
		return res, nil
	}
	if in.DryRun {
		return activities.ActionResult{Outputs: map[string]string{"changed": "true"},
			Plan:    []string{fmt.Sprintf("set directAccessGrantsEnabled=false on client %s in realm %s (the password grant stops working for it)", clientID, realm)},
			Summary: fmt.Sprintf("dry run: would turn off the direct access grants of client %s in realm %s", clientID, realm)}, nil
	}
	body := gocloak.Client{ID: c.ID, ClientID: c.ClientID, DirectAccessGrantsEnabled: gocloak.BoolP(false)}
	if err := a.call(ctx, fmt.Sprintf("PUT clients/%s (direct access grants of client %s in realm %s)", id, clientID, realm),
		func(ctx context.Context, tok string) error { return a.gc.UpdateClient(ctx, tok, realm, body) }); err != nil {
		return activities.ActionResult{}, err
	}
	after, err := a.findClient(ctx, realm, clientID)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if gocloak.PBool(after.DirectAccessGrantsEnabled) {
		return activities.ActionResult{}, fmt.Errorf("%s: read-back of client %s in realm %s still shows direct access grants on", activities.KCDisableDirectGrants, clientID, realm)
	}
	logger(ctx).Info("keycloak client direct access grants disabled", "realm", realm, "client", clientID, "incident", in.IncidentID)
	return activities.ActionResult{Outputs: map[string]string{"changed": "true"}, Undo: undo,
		Summary: fmt.Sprintf("turned off the direct access grants of client %s in realm %s", clientID, realm)}, nil
}
