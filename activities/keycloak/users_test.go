//go:build integration

package keycloak

import (
	"context"
	"strings"
	"testing"

	"github.com/Nerzal/gocloak/v13"

	"github.com/iru-responder/responder/activities"
	kclab "github.com/iru-responder/responder/internal/lab/keycloak"
)

func TestResolveUser(t *testing.T) {
	e := newEnv(t)
	aliceID := e.userID("alice")
	tests := []struct {
		name, ident, wantID, wantErrType string
	}{
		{"username", "alice", aliceID, ""},
		{"username case-insensitive", "ALICE", aliceID, ""},
		{"email", "alice@iru.example", aliceID, ""},
		{"id", aliceID, aliceID, ""},
		{"unknown username", "mallory", "", activities.ErrTypeNotFound},
		{"unknown email", "mallory@iru.example", "", activities.ErrTypeNotFound},
		{"prefix is not a match", "ali", "", activities.ErrTypeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 { // twice in a row: same answer
				res, err := e.run(e.acts.ResolveUser, input(activities.KCResolveUser, map[string]string{"username": tt.ident}))
				if tt.wantErrType != "" {
					wantErr(t, err, tt.wantErrType, true)
					continue
				}
				if err != nil {
					t.Fatalf("ResolveUser: %v", err)
				}
				if res.Outputs["user_id"] != tt.wantID || res.Outputs["enabled"] != "true" {
					t.Fatalf("outputs = %v, want user_id %s enabled true", res.Outputs, tt.wantID)
				}
			}
		})
	}
	t.Run("missing parameter", func(t *testing.T) {
		_, err := e.run(e.acts.ResolveUser, input(activities.KCResolveUser, map[string]string{}))
		wantErr(t, err, activities.ErrTypeBadParams, true)
	})
}

func TestListSessions(t *testing.T) {
	e := newEnv(t)
	e.login("alice")
	e.login("alice")
	in := input(activities.KCListSessions, map[string]string{"user_id": e.userID("alice")})
	for i := range 2 {
		res, err := e.run(e.acts.ListSessions, in)
		if err != nil {
			t.Fatalf("ListSessions #%d: %v", i, err)
		}
		if res.Outputs["count"] != "2" || len(res.EvidenceRefs) != 1 {
			t.Fatalf("result = %+v, want count 2 and one evidence ref", res)
		}
		ev, ok := e.evidence.get(res.EvidenceRefs[0])
		if !ok {
			t.Fatalf("evidence %s not stored", res.EvidenceRefs[0])
		}
		for _, s := range e.sessions("alice") {
			if !strings.Contains(string(ev.body), s.ID) {
				t.Fatalf("evidence lacks session %s: %s", s.ID, ev.body)
			}
		}
		if ev.item.Class != activities.ClassPII || ev.item.IncidentID != "inc-1" {
			t.Fatalf("evidence item = %+v", ev.item)
		}
	}
	_, err := e.run(e.acts.ListSessions, input(activities.KCListSessions, map[string]string{"user_id": "00000000-0000-0000-0000-000000000000"}))
	wantErr(t, err, activities.ErrTypeNotFound, true)
	_, err = e.run(e.acts.ListSessions, input(activities.KCListSessions, map[string]string{"user_id": "../../master"}))
	wantErr(t, err, activities.ErrTypeBadParams, true)
}

func TestDisableEnableUser(t *testing.T) {
	e := newEnv(t)
	tok := e.login("asmith")
	id := e.userID("asmith")
	in := input(activities.KCDisableUser, map[string]string{"user_id": id, "reason": "test"})

	var undo map[string]string
	for i := range 2 { // the second call is a retry after the first one's effect
		res, err := e.run(e.acts.DisableUser, in)
		if err != nil {
			t.Fatalf("DisableUser #%d: %v", i, err)
		}
		if res.Outputs["was_enabled"] != "true" || res.Undo["was_enabled"] != "true" || res.Undo["disabled_by"] != in.IdempotencyKey {
			t.Fatalf("DisableUser #%d result = %+v", i, res)
		}
		undo = res.Undo
	}
	if e.enabled("asmith") {
		t.Fatal("asmith still enabled")
	}
	if _, err := e.gc.Login(e.ctx, kclab.ConsoleClientID, "", kclab.Realm, "asmith", kclab.UserPassword); err == nil {
		t.Fatal("login of a disabled user succeeded")
	}
	if _, err := e.gc.RefreshToken(e.ctx, tok.RefreshToken, kclab.ConsoleClientID, "", kclab.Realm); err == nil {
		t.Fatal("refresh of a disabled user succeeded")
	}

	enable := input(activities.KCEnableUser, map[string]string{"user_id": id})
	enable.Undo = undo
	for i := range 2 {
		res, err := e.run(e.acts.EnableUser, enable)
		if err != nil {
			t.Fatalf("EnableUser #%d: %v", i, err)
		}
		if res.Outputs["enabled"] != "true" {
			t.Fatalf("EnableUser #%d outputs = %v", i, res.Outputs)
		}
	}
	if !e.enabled("asmith") {
		t.Fatal("asmith not re-enabled")
	}
	if u := e.user("asmith"); u.Attributes != nil && len((*u.Attributes)[DisabledByAttribute]) > 0 {
		t.Fatalf("marker left behind: %v", *u.Attributes)
	}
	e.login("asmith")
}

func TestEnableUserRestoresPriorState(t *testing.T) {
	e := newEnv(t)
	id := e.userID("jdoe")
	disable := input(activities.KCDisableUser, map[string]string{"user_id": id})

	t.Run("already disabled stays disabled", func(t *testing.T) {
		e.setEnabled("jdoe", false)
		res, err := e.run(e.acts.DisableUser, disable)
		if err != nil {
			t.Fatalf("DisableUser: %v", err)
		}
		if res.Undo["was_enabled"] != "false" {
			t.Fatalf("undo = %v, want was_enabled false", res.Undo)
		}
		enable := input(activities.KCEnableUser, map[string]string{"user_id": id})
		enable.Undo = res.Undo
		out, err := e.run(e.acts.EnableUser, enable)
		if err != nil {
			t.Fatalf("EnableUser: %v", err)
		}
		if e.enabled("jdoe") || out.Outputs["enabled"] != "false" {
			t.Fatalf("compensation enabled a user that was disabled before (outputs %v)", out.Outputs)
		}
		e.setEnabled("jdoe", true)
	})
	t.Run("disabled again by another step", func(t *testing.T) {
		res, err := e.run(e.acts.DisableUser, disable)
		if err != nil {
			t.Fatalf("DisableUser: %v", err)
		}
		e.setAttr("jdoe", DisabledByAttribute, "other-incident/step")
		enable := input(activities.KCEnableUser, map[string]string{"user_id": id})
		enable.Undo = res.Undo
		_, err = e.run(e.acts.EnableUser, enable)
		wantErr(t, err, activities.ErrTypePrecondition, true)
		if e.enabled("jdoe") {
			t.Fatal("jdoe re-enabled over another step's containment")
		}
		e.setAttr("jdoe", DisabledByAttribute)
		_, err = e.run(e.acts.EnableUser, enable)
		wantErr(t, err, activities.ErrTypePrecondition, true) // disabled outside the platform
		e.setEnabled("jdoe", true)
	})
	t.Run("recovery step without undo uses the marker", func(t *testing.T) {
		if _, err := e.run(e.acts.DisableUser, disable); err != nil {
			t.Fatalf("DisableUser: %v", err)
		}
		res, err := e.run(e.acts.EnableUser, input(activities.KCEnableUser, map[string]string{"user_id": id}))
		if err != nil {
			t.Fatalf("EnableUser: %v", err)
		}
		if !e.enabled("jdoe") || res.Outputs["enabled"] != "true" {
			t.Fatalf("jdoe not enabled: %+v", res)
		}
	})
}

func TestLogoutUser(t *testing.T) {
	e := newEnv(t)
	t1 := e.login("asmith")
	t2 := e.login("asmith")
	if !e.active(t1.AccessToken) {
		t.Fatal("fresh token inactive")
	}
	in := input(activities.KCLogoutUser, map[string]string{"user_id": e.userID("asmith")})
	res, err := e.run(e.acts.LogoutUser, in)
	if err != nil {
		t.Fatalf("LogoutUser: %v", err)
	}
	if res.Outputs["sessions_ended"] != "2" {
		t.Fatalf("outputs = %v, want sessions_ended 2", res.Outputs)
	}
	if n := len(e.sessions("asmith")); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
	for _, tok := range []*gocloak.JWT{t1, t2} {
		if e.active(tok.AccessToken) {
			t.Fatal("access token still active after logout")
		}
		if _, err := e.gc.RefreshToken(e.ctx, tok.RefreshToken, kclab.ConsoleClientID, "", kclab.Realm); err == nil {
			t.Fatal("refresh token still works after logout")
		}
	}
	res, err = e.run(e.acts.LogoutUser, in)
	if err != nil {
		t.Fatalf("LogoutUser again: %v", err)
	}
	if res.Outputs["sessions_ended"] != "0" {
		t.Fatalf("second logout outputs = %v", res.Outputs)
	}
}

func TestDeleteSession(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedRealms = []string{kclab.Realm, "nosuchrealm"} })
	keep := e.login("jdoe")
	kill := e.login("jdoe")
	in := input(activities.KCDeleteSession, map[string]string{"session_id": kill.SessionState})
	if _, err := e.run(e.acts.DeleteSession, in); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	ss := e.sessions("jdoe")
	if len(ss) != 1 || ss[0].ID != keep.SessionState {
		t.Fatalf("sessions = %+v, want only %s", ss, keep.SessionState)
	}
	if e.active(kill.AccessToken) || !e.active(keep.AccessToken) {
		t.Fatal("wrong tokens revoked")
	}

	t.Run("first attempt: 404 is final", func(t *testing.T) {
		_, err := e.run(e.acts.DeleteSession, in)
		wantErr(t, err, activities.ErrTypeNotFound, true)
	})
	t.Run("retried attempt: 404 means done", func(t *testing.T) {
		prev := e.acts.attempt
		e.acts.attempt = func(context.Context) int32 { return 2 }
		defer func() { e.acts.attempt = prev }()
		res, err := e.run(e.acts.DeleteSession, in)
		if err != nil {
			t.Fatalf("retried DeleteSession: %v", err)
		}
		if !strings.Contains(res.Summary, "gone") {
			t.Fatalf("summary = %q", res.Summary)
		}
		bad := in
		bad.Params = map[string]string{"realm": "nosuchrealm", "session_id": kill.SessionState}
		_, err = e.run(e.acts.DeleteSession, bad)
		wantErr(t, err, activities.ErrTypeNotFound, true)
	})
}

func TestDrillTargets(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DrillRealms = []string{"drillrealm"} })
	e.setAttr("asmith", DrillAttribute, "true")
	drill := func(action string, p map[string]string) activities.ActionInput {
		in := input(action, p)
		in.Drill = true
		return in
	}
	alice, asmith := e.userID("alice"), e.userID("asmith")
	refused := []struct {
		name string
		run  func() error
	}{
		{"resolve", func() error {
			_, err := e.run(e.acts.ResolveUser, drill(activities.KCResolveUser, map[string]string{"username": "alice"}))
			return err
		}},
		{"disable", func() error {
			_, err := e.run(e.acts.DisableUser, drill(activities.KCDisableUser, map[string]string{"user_id": alice}))
			return err
		}},
		{"logout", func() error {
			_, err := e.run(e.acts.LogoutUser, drill(activities.KCLogoutUser, map[string]string{"user_id": alice}))
			return err
		}},
		{"delete session", func() error {
			_, err := e.run(e.acts.DeleteSession, drill(activities.KCDeleteSession, map[string]string{"session_id": e.login("alice").SessionState}))
			return err
		}},
		{"revoke realm", func() error {
			_, err := e.run(e.acts.RevokeRealm, drill(activities.KCRevokeRealm, map[string]string{}))
			return err
		}},
		{"rotate client", func() error {
			_, err := e.run(e.acts.RotateClientSecret, drill(activities.KCRotateClientSecret, map[string]string{"client_id": kclab.APIClientID}))
			return err
		}},
		{"collect realm events", func() error {
			_, err := e.run(e.acts.CollectEvents, drill(activities.KCCollectEvents, map[string]string{}))
			return err
		}},
	}
	for _, tt := range refused {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			wantErr(t, tt.run(), activities.ErrTypePrecondition, true)
		})
	}
	if !e.enabled("alice") || len(e.sessions("alice")) != 1 {
		t.Fatal("a refused drill action changed alice")
	}
	t.Run("acts on a drill target", func(t *testing.T) {
		res, err := e.run(e.acts.DisableUser, drill(activities.KCDisableUser, map[string]string{"user_id": asmith}))
		if err != nil {
			t.Fatalf("DisableUser: %v", err)
		}
		if e.enabled("asmith") || res.Undo["was_enabled"] != "true" {
			t.Fatalf("asmith not disabled: %+v", res)
		}
		e.setClientAttr(kclab.APIClientID, DrillAttribute, "true")
		rot, err := e.run(e.acts.RotateClientSecret, drill(activities.KCRotateClientSecret, map[string]string{"client_id": kclab.APIClientID}))
		if err != nil || rot.Outputs["secret_ref"] == "" {
			t.Fatalf("RotateClientSecret on a drill client: %v (%+v)", err, rot)
		}
		sid := e.login("jdoe").SessionState // jdoe is no target
		_, err = e.run(e.acts.DeleteSession, drill(activities.KCDeleteSession, map[string]string{"session_id": sid}))
		wantErr(t, err, activities.ErrTypePrecondition, true)
	})
}

func TestDryRunChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.login("alice")
	sid := e.login("bob").SessionState
	alice, bob := e.userID("alice"), e.userID("bob")
	e.setEnabled("carol", false)
	if _, err := e.acts.token(e.ctx); err != nil { // warm the token: a login is an event
		t.Fatalf("token: %v", err)
	}
	before := e.snapshot(true)
	dry := func(action string, p map[string]string) activities.ActionInput {
		in := input(action, p)
		in.DryRun = true
		return in
	}
	steps := []struct {
		name string
		run  func() (activities.ActionResult, error)
	}{
		{"disable", func() (activities.ActionResult, error) {
			return e.run(e.acts.DisableUser, dry(activities.KCDisableUser, map[string]string{"user_id": alice}))
		}},
		{"enable", func() (activities.ActionResult, error) {
			return e.run(e.acts.EnableUser, dry(activities.KCEnableUser, map[string]string{"user_id": e.userID("carol")}))
		}},
		{"logout", func() (activities.ActionResult, error) {
			return e.run(e.acts.LogoutUser, dry(activities.KCLogoutUser, map[string]string{"user_id": bob}))
		}},
		{"delete session", func() (activities.ActionResult, error) {
			return e.run(e.acts.DeleteSession, dry(activities.KCDeleteSession, map[string]string{"session_id": sid}))
		}},
		{"list sessions", func() (activities.ActionResult, error) {
			return e.run(e.acts.ListSessions, dry(activities.KCListSessions, map[string]string{"user_id": alice}))
		}},
		{"revoke realm", func() (activities.ActionResult, error) {
			return e.run(e.acts.RevokeRealm, dry(activities.KCRevokeRealm, map[string]string{}))
		}},
		{"rotate secret", func() (activities.ActionResult, error) {
			return e.run(e.acts.RotateClientSecret, dry(activities.KCRotateClientSecret, map[string]string{"client_id": kclab.APIClientID}))
		}},
		{"collect events", func() (activities.ActionResult, error) {
			return e.run(e.acts.CollectEvents, dry(activities.KCCollectEvents, map[string]string{"window": "1h"}))
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			res, err := s.run()
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if len(res.Plan) == 0 {
				t.Fatalf("no plan: %+v", res)
			}
			if after := e.snapshot(true); after != before {
				t.Fatalf("dry run changed the lab:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	if e.evidence.count() != 0 || e.secrets.stores != 0 {
		t.Fatal("dry run stored evidence or secrets")
	}
}
