//go:build integration

package keycloak

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	kclab "github.com/iru-responder/responder/internal/lab/keycloak"
)

// serviceAccountAPI is the lab's service-account user of the iru-api client
// (internal/lab/keycloak/realms/iru.json); searches do not list it.
const serviceAccountAPI = "3d6f7a10-5b2c-4e8d-9a01-0000000005a2"

// refusal checks that err is the protected-account refusal and returns its details.
func refusal(t *testing.T, err error) activities.ProtectedRefusal {
	t.Helper()
	wantErr(t, err, activities.ErrTypeProtected, true)
	var ae *temporal.ApplicationError
	errors.As(err, &ae)
	var r activities.ProtectedRefusal
	if derr := ae.Details(&r); derr != nil {
		t.Fatalf("refusal details: %v", derr)
	}
	return r
}

func admins(step string, who ...string) *activities.Override {
	o := &activities.Override{StepID: step}
	for _, w := range who {
		o.Approvers = append(o.Approvers, activities.OverrideApprover{Subject: "keycloak:iru/" + w, Username: w, Roles: []string{"ir-admin", "ir-lead"}})
	}
	return o
}

// TestProtectedAccounts attacks the kc.* actions with the accounts an alert
// could name: responders, administrators, service accounts, listed
// accounts. Each is refused with the typed error (and left as it was)
// unless the step carries the override of two ir-admins.
func TestProtectedAccounts(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ProtectedUsers = []string{"iru/asmith"} })
	for _, tc := range []struct {
		user   string
		id     string
		reason string
	}{
		{"bob", "", "holds realm role ir-lead"},
		{"carol", "", "holds realm role ir-admin"},
		{"alice", "", "holds realm role ir-responder"},
		{"asmith", "", "listed in IRU_KEYCLOAK_PROTECTED_USERS"},
		{"service-account-iru-api", serviceAccountAPI, "is a service account"},
		{"service-account-iru-worker", "3d6f7a10-5b2c-4e8d-9a01-0000000005a1", "realm-management client roles"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			id := tc.id
			if id == "" {
				id = e.userID(tc.user)
				e.login(tc.user)
			}
			before := e.snapshot(false)
			for _, run := range []struct {
				action string
				fn     func() error
			}{
				{activities.KCDisableUser, func() error {
					_, err := e.run(e.acts.DisableUser, input(activities.KCDisableUser, map[string]string{"user_id": id}))
					return err
				}},
				{activities.KCLogoutUser, func() error {
					_, err := e.run(e.acts.LogoutUser, input(activities.KCLogoutUser, map[string]string{"user_id": id}))
					return err
				}},
			} {
				r := refusal(t, run.fn())
				if r.UserID != id || r.Realm != kclab.Realm || !slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.Contains(s, tc.reason) }) {
					t.Fatalf("%s refusal = %+v, want a reason containing %q", run.action, r, tc.reason)
				}
			}
			if after := e.snapshot(false); after != before {
				t.Fatalf("a refused action changed the lab:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}

	t.Run("delete one session of a lead", func(t *testing.T) {
		sid := e.login("bob").SessionState
		n := len(e.sessions("bob"))
		_, err := e.run(e.acts.DeleteSession, input(activities.KCDeleteSession, map[string]string{"session_id": sid}))
		refusal(t, err)
		if len(e.sessions("bob")) != n {
			t.Fatal("bob's session ended without approval")
		}
	})

	t.Run("override", func(t *testing.T) {
		bob := e.userID("bob")
		e.login("bob")
		in := input(activities.KCLogoutUser, map[string]string{"user_id": bob})
		for _, bad := range []struct {
			name string
			o    *activities.Override
		}{
			{"one admin", admins(in.StepID, "carol")},
			{"the same admin twice", admins(in.StepID, "carol", "carol")},
			{"another step's approval", admins("other-step", "carol", "dave")},
			{"two approvers without ir-admin", &activities.Override{StepID: in.StepID, Approvers: []activities.OverrideApprover{
				{Subject: "a", Roles: []string{"ir-lead"}}, {Subject: "b", Roles: []string{"ir-lead"}}}}},
		} {
			in.Override = bad.o
			_, err := e.run(e.acts.LogoutUser, in)
			refusal(t, err)
			if len(e.sessions("bob")) == 0 {
				t.Fatalf("%s: bob logged out", bad.name)
			}
		}
		in.Override = admins(in.StepID, "carol", "dave")
		if _, err := e.run(e.acts.LogoutUser, in); err != nil {
			t.Fatalf("logout with two ir-admins' approval: %v", err)
		}
		if n := len(e.sessions("bob")); n != 0 {
			t.Fatalf("bob still has %d sessions after the approved logout", n)
		}
	})

	t.Run("ordinary account runs on its own", func(t *testing.T) {
		e.login("jdoe")
		if _, err := e.run(e.acts.DisableUser, input(activities.KCDisableUser, map[string]string{"user_id": e.userID("jdoe")})); err != nil {
			t.Fatalf("disable jdoe: %v", err)
		}
		if e.enabled("jdoe") {
			t.Fatal("jdoe still enabled")
		}
	})

	t.Run("dry run plans the approval", func(t *testing.T) {
		in := input(activities.KCDisableUser, map[string]string{"user_id": e.userID("carol")})
		in.DryRun = true
		res, err := e.run(e.acts.DisableUser, in)
		if err != nil || len(res.Plan) < 2 || !strings.Contains(res.Plan[0], "protected") {
			t.Fatalf("dry run = %+v, %v; want a plan that names the protection", res, err)
		}
	})
}

// TestRealmsOutsideTheAllowList attacks with realms an alert may name: the
// master realm and any realm not configured are refused before any call,
// and master's admin stays as it was.
func TestRealmsOutsideTheAllowList(t *testing.T) {
	e := newEnv(t)
	calls := e.tr.tokens.Load()
	for _, realm := range []string{kclab.MasterRealm, "other"} {
		for name, run := range map[string]func() error{
			"resolve": func() error {
				_, err := e.run(e.acts.ResolveUser, input(activities.KCResolveUser, map[string]string{"realm": realm, "username": "admin"}))
				return err
			},
			"disable": func() error {
				_, err := e.run(e.acts.DisableUser, input(activities.KCDisableUser, map[string]string{"realm": realm, "user_id": "admin"}))
				return err
			},
			"logout": func() error {
				_, err := e.run(e.acts.LogoutUser, input(activities.KCLogoutUser, map[string]string{"realm": realm, "user_id": "admin"}))
				return err
			},
			"revoke": func() error {
				_, err := e.run(e.acts.RevokeRealm, input(activities.KCRevokeRealm, map[string]string{"realm": realm}))
				return err
			},
		} {
			err := run()
			wantErr(t, err, activities.ErrTypePrecondition, true)
			if !strings.Contains(err.Error(), "not one the platform may act in") {
				t.Fatalf("%s in %s: %v", name, realm, err)
			}
		}
	}
	if e.tr.tokens.Load() != calls {
		t.Fatal("a refused realm still reached Keycloak")
	}
	if on, err := e.lab.UserEnabled(kclab.MasterRealm, kclab.AdminUsername); err != nil || !on {
		t.Fatalf("master admin enabled=%t (%v)", on, err)
	}

}
