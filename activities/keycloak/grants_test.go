//go:build integration

package keycloak

import (
	"testing"

	"github.com/Nerzal/gocloak/v13"

	"github.com/iru-responder/responder/activities"
	kclab "github.com/iru-responder/responder/internal/lab/keycloak"
)

// TestDisableDirectGrants: drift turns on the password grant of the
// confidential client iru-api (through the admin API), and a password
// login through it works — the attack. A dry run plans the change and
// leaves the client as it is (the login still works); the action turns the
// grant off, the same login is refused, and a second run changes nothing.
// Realms outside the allowed list and drills on non-drill clients are
// refused.
func TestDisableDirectGrants(t *testing.T) {
	e := newEnv(t)
	c := e.client(kclab.APIClientID)
	c.DirectAccessGrantsEnabled = gocloak.BoolP(true)
	if err := e.gc.UpdateClient(e.ctx, e.adminToken(), kclab.Realm, gocloak.Client{ID: c.ID, ClientID: c.ClientID, DirectAccessGrantsEnabled: gocloak.BoolP(true)}); err != nil {
		t.Fatal(err)
	}
	login := func() error {
		_, err := e.gc.Login(e.ctx, kclab.APIClientID, kclab.APIClientSecret, kclab.Realm, "jdoe", kclab.UserPassword)
		return err
	}
	if err := login(); err != nil {
		t.Fatalf("the drifted client refuses the password grant already: %v", err)
	}
	in := input(activities.KCDisableDirectGrants, map[string]string{"client_id": kclab.APIClientID})

	dry := in
	dry.DryRun = true
	res, err := e.run(e.acts.DisableDirectGrants, dry)
	if err != nil || len(res.Plan) != 1 || res.Outputs["changed"] != "true" {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	if !gocloak.PBool(e.client(kclab.APIClientID).DirectAccessGrantsEnabled) || login() != nil {
		t.Fatal("the dry run changed the client")
	}

	res, err = e.run(e.acts.DisableDirectGrants, in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["changed"] != "true" || res.Undo["was_enabled"] != "true" {
		t.Errorf("result %+v", res)
	}
	if gocloak.PBool(e.client(kclab.APIClientID).DirectAccessGrantsEnabled) {
		t.Fatal("direct grants still on")
	}
	if err := login(); err == nil {
		t.Fatal("the password grant through iru-api still works after the fix")
	}
	if res, err := e.run(e.acts.DisableDirectGrants, in); err != nil || res.Outputs["changed"] != "false" {
		t.Errorf("second run: %+v, %v", res, err)
	}

	_, err = e.run(e.acts.DisableDirectGrants, input(activities.KCDisableDirectGrants, map[string]string{"realm": "master", "client_id": "admin-cli"}))
	wantErr(t, err, activities.ErrTypePrecondition, true)
	drill := in
	drill.Drill = true
	_, err = e.run(e.acts.DisableDirectGrants, drill)
	wantErr(t, err, activities.ErrTypePrecondition, true)
}
