//go:build integration

package keycloak

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/config"
	kclab "github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
)

// actionCalls runs every action once against the lab users of e.
func actionCalls(e *env) map[string]func() error {
	alice := e.userID("alice")
	sid := e.login("jdoe").SessionState
	run := func(fn activities.Func, in activities.ActionInput) func() error {
		return func() error { _, err := e.run(fn, in); return err }
	}
	return map[string]func() error{
		"resolve":  run(e.acts.ResolveUser, input(activities.KCResolveUser, map[string]string{"username": "alice"})),
		"list":     run(e.acts.ListSessions, input(activities.KCListSessions, map[string]string{"user_id": alice})),
		"disable":  run(e.acts.DisableUser, input(activities.KCDisableUser, map[string]string{"user_id": alice})),
		"enable":   run(e.acts.EnableUser, input(activities.KCEnableUser, map[string]string{"user_id": alice})),
		"logout":   run(e.acts.LogoutUser, input(activities.KCLogoutUser, map[string]string{"user_id": alice})),
		"session":  run(e.acts.DeleteSession, input(activities.KCDeleteSession, map[string]string{"session_id": sid})),
		"revoke":   run(e.acts.RevokeRealm, input(activities.KCRevokeRealm, map[string]string{})),
		"rotate":   run(e.acts.RotateClientSecret, input(activities.KCRotateClientSecret, map[string]string{"client_id": kclab.APIClientID})),
		"collect":  run(e.acts.CollectEvents, input(activities.KCCollectEvents, map[string]string{"window": "1h"})),
		"collectU": run(e.acts.CollectEvents, input(activities.KCCollectEvents, map[string]string{"window": "1h", "user_id": alice})),
	}
}

func TestFaultClassification(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	calls := actionCalls(e)
	admin := "/admin/realms/*"
	tests := []struct {
		name         string
		fault        kclab.Fault
		errType      string
		nonRetryable bool
	}{
		{"500", kclab.Fault{Path: admin, Status: 500}, ErrTypeUnavailable, false},
		{"503", kclab.Fault{Path: admin, Status: 503}, ErrTypeUnavailable, false},
		{"429", kclab.Fault{Path: admin, Status: 429}, ErrTypeUnavailable, false},
		{"hang", kclab.Fault{Path: admin, Hang: true}, ErrTypeUnavailable, false},
		{"404", kclab.Fault{Path: admin, Status: 404}, activities.ErrTypeNotFound, true},
		{"403", kclab.Fault{Path: admin, Status: 403}, activities.ErrTypePermission, true},
		{"400", kclab.Fault{Path: admin, Status: 400}, activities.ErrTypeBadParams, true},
		{"401 twice", kclab.Fault{Path: admin, Status: 401}, ErrTypeUnavailable, false},
	}
	before := e.snapshot(false) // failed calls log the service account in again: events grow
	for _, tt := range tests {
		for name, call := range calls {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				e.faults(tt.fault)
				defer e.faults()
				err := call()
				wantErr(t, err, tt.errType, tt.nonRetryable)
				if tt.name == "hang" && !strings.Contains(err.Error(), "timed out") {
					t.Fatalf("hang error = %v, want a timeout", err)
				}
				if !strings.Contains(err.Error(), "keycloak") {
					t.Fatalf("error does not name the API call: %v", err)
				}
			})
		}
	}
	if after := e.snapshot(false); after != before {
		t.Fatalf("failed calls changed the lab:\n%s\n%s", before, after)
	}
}

func TestTokenHandling(t *testing.T) {
	e := newEnv(t)
	resolve := func() error {
		_, err := e.run(e.acts.ResolveUser, input(activities.KCResolveUser, map[string]string{"username": "alice"}))
		return err
	}
	for range 3 {
		if err := resolve(); err != nil {
			t.Fatalf("resolve: %v", err)
		}
	}
	if n := e.tr.tokens.Load(); n != 1 {
		t.Fatalf("token requests = %d, want 1 (cached)", n)
	}
	e.clock.Advance(250 * time.Second) // the iru realm's tokens live 300 s
	if err := resolve(); err != nil || e.tr.tokens.Load() != 1 {
		t.Fatalf("resolve: %v; token requests = %d, want still 1", err, e.tr.tokens.Load())
	}
	e.clock.Advance(25 * time.Second) // within the 30 s renewal margin
	if err := resolve(); err != nil || e.tr.tokens.Load() != 2 {
		t.Fatalf("resolve: %v; token requests = %d, want 2 (renewed before expiry)", err, e.tr.tokens.Load())
	}
	e.faults(kclab.Fault{Path: "/admin/realms/iru/*", Status: 401, Times: 1})
	if err := resolve(); err != nil || e.tr.tokens.Load() != 3 {
		t.Fatalf("resolve after a 401: %v; token requests = %d, want 3 (one retry with a new token)", err, e.tr.tokens.Load())
	}

	tokenPath := "/realms/iru/protocol/openid-connect/token"
	for _, tt := range []struct {
		status       int
		errType      string
		nonRetryable bool
	}{{503, ErrTypeUnavailable, false}, {401, activities.ErrTypePermission, true}} {
		e.acts.dropToken(e.acts.tok)
		e.faults(kclab.Fault{Path: tokenPath, Status: tt.status})
		wantErr(t, resolve(), tt.errType, tt.nonRetryable)
	}
	e.faults()

	t.Run("wrong secret", func(t *testing.T) {
		bad := newEnv(t, func(c *Config) { c.ClientSecret = "wrong-secret-value" })
		_, err := bad.run(bad.acts.ResolveUser, input(activities.KCResolveUser, map[string]string{"username": "alice"}))
		wantErr(t, err, activities.ErrTypePermission, true)
		if strings.Contains(err.Error(), "wrong-secret-value") {
			t.Fatal("error carries the client secret")
		}
	})
}

func TestServiceAccountWithoutRoles(t *testing.T) {
	// iru-api's service account has no realm-management roles: Keycloak answers 403.
	e := newEnv(t, func(c *Config) { c.ClientID, c.ClientSecret = kclab.APIClientID, kclab.APIClientSecret })
	alice := e.userID("alice")
	for name, call := range map[string]func() error{
		"resolve": func() error {
			_, err := e.run(e.acts.ResolveUser, input(activities.KCResolveUser, map[string]string{"username": alice}))
			return err
		},
		"dry-run disable": func() error {
			in := input(activities.KCDisableUser, map[string]string{"user_id": alice})
			in.DryRun = true
			_, err := e.run(e.acts.DisableUser, in)
			return err
		},
		"revoke": func() error {
			_, err := e.run(e.acts.RevokeRealm, input(activities.KCRevokeRealm, map[string]string{}))
			return err
		},
	} {
		t.Run(name, func(t *testing.T) { wantErr(t, call(), activities.ErrTypePermission, true) })
	}
}

func TestActivityEnvironment(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	newTestEnv := func() *testsuite.TestActivityEnvironment {
		te := activitytest.New(nil)
		e.acts.Register(te)
		return te
	}

	t.Run("registered by catalog name, heartbeats while paging", func(t *testing.T) {
		for range 3 {
			_, _ = e.gc.Login(e.ctx, kclab.ConsoleClientID, "", kclab.Realm, "alice", "wrong") // fails: only the LOGIN_ERROR event matters
		}
		te := newTestEnv()
		var beats atomic.Int32
		te.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) { beats.Add(1) })
		v, err := te.ExecuteActivity(activities.KCCollectEvents, input(activities.KCCollectEvents, map[string]string{"window": "1h"}))
		if err != nil {
			t.Fatalf("ExecuteActivity: %v", err)
		}
		var res activities.ActionResult
		if err := v.Get(&res); err != nil {
			t.Fatalf("decode result: %v", err)
		}
		if res.Outputs["failed_logins"] != "3" || beats.Load() == 0 {
			t.Fatalf("outputs = %v, heartbeats = %d", res.Outputs, beats.Load())
		}
	})
	t.Run("classification survives the SDK", func(t *testing.T) {
		for _, tt := range []struct {
			fault        kclab.Fault
			errType      string
			nonRetryable bool
		}{
			{kclab.Fault{Path: "/admin/realms/iru/*", Status: 403}, activities.ErrTypePermission, true},
			{kclab.Fault{Path: "/admin/realms/iru/*", Hang: true}, ErrTypeUnavailable, false},
		} {
			e.faults(tt.fault)
			_, err := newTestEnv().ExecuteActivity(activities.KCResolveUser, input(activities.KCResolveUser, map[string]string{"username": "bob"}))
			e.faults()
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || ae.Type() != tt.errType || ae.NonRetryable() != tt.nonRetryable {
				t.Fatalf("error = %v, want %s nonRetryable=%t", err, tt.errType, tt.nonRetryable)
			}
		}
	})
	t.Run("revoke reuses the not-before of an earlier attempt", func(t *testing.T) {
		te := newTestEnv()
		prev := e.clock.Now().Add(-time.Minute).Unix()
		te.SetHeartbeatDetails(prev)
		v, err := te.ExecuteActivity(activities.KCRevokeRealm, input(activities.KCRevokeRealm, map[string]string{}))
		if err != nil {
			t.Fatalf("ExecuteActivity: %v", err)
		}
		var res activities.ActionResult
		if err := v.Get(&res); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if want := unixString(prev); res.Outputs["not_before"] != want {
			t.Fatalf("not_before = %s, want %s", res.Outputs["not_before"], want)
		}
	})
}

func TestRegisterCoversCatalog(t *testing.T) {
	e := newEnv(t)
	names := map[string]bool{}
	e.acts.Register(registrar(func(_ any, o activity.RegisterOptions) { names[o.Name] = true }))
	for _, a := range activities.Catalog() {
		if strings.HasPrefix(a.Name, "kc.") && !names[a.Name] {
			t.Errorf("catalog action %s is not registered", a.Name)
		}
	}
	for n := range names {
		if _, err := activities.Lookup(n); err != nil {
			t.Errorf("registered %s is not in the catalog", n)
		}
	}
}

type registrar func(any, activity.RegisterOptions)

func (r registrar) RegisterActivityWithOptions(a any, o activity.RegisterOptions) { r(a, o) }

func TestConfig(t *testing.T) {
	base := []string{"IRU_KEYCLOAK_URL=https://sso.example.org", "IRU_KEYCLOAK_CLIENT_SECRET=s3cr3t-value"}
	tests := []struct {
		name    string
		environ []string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{"defaults", base, "", func(t *testing.T, c Config) {
			if c.Realm != "iru" || c.ClientID != "iru-worker" || c.Timeout != 15*time.Second || c.tokenRealm() != "iru" {
				t.Fatalf("defaults = %+v", c)
			}
		}},
		{"token realm and drill realms", append(base, "IRU_KEYCLOAK_TOKEN_REALM=master", "IRU_KEYCLOAK_DRILL_REALMS=drill,lab"), "", func(t *testing.T, c Config) {
			if c.tokenRealm() != "master" || len(c.DrillRealms) != 2 || c.DrillRealms[1] != "lab" {
				t.Fatalf("config = %+v", c)
			}
		}},
		{"no url", base[1:], "IRU_KEYCLOAK_URL", nil},
		{"bad url", append(base[1:], "IRU_KEYCLOAK_URL=sso.example.org"), "IRU_KEYCLOAK_URL", nil},
		{"no secret", base[:1], "IRU_KEYCLOAK_CLIENT_SECRET", nil},
		{"missing CA file", append(base, "IRU_KEYCLOAK_CA_FILE=/nonexistent/ca.pem"), "IRU_KEYCLOAK_CA_FILE", nil},
		{"bad realm", append(base, "IRU_KEYCLOAK_REALM=a/b"), "IRU_KEYCLOAK_REALM", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			err := config.LoadFrom(&c, tt.environ)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadFrom: %v", err)
				}
				tt.check(t, c)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one naming %s", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3t-value") {
				t.Fatal("error carries the secret")
			}
		})
	}
	if _, err := New(Config{URL: "http://127.0.0.1:1", ClientID: "x", ClientSecret: "y"}, nil, nil); err == nil {
		t.Fatal("New without stores succeeded")
	}
}
