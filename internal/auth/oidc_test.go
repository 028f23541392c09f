//go:build integration

package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/iru-responder/responder/internal/lab/keycloak"
)

// TestVerifierAgainstLabKeycloak verifies real tokens from the Keycloak
// simulator through go-oidc: roles and identity come from the token; wrong
// audience, garbage, and tokens signed by a key the JWKS no longer serves
// are refused.
func TestVerifierAgainstLabKeycloak(t *testing.T) {
	kc, err := keycloak.New(keycloak.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := kc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	gc := gocloak.NewClient(kc.URL())
	login := func(user string) string {
		t.Helper()
		// Leads and admins send their one-time code (the lab's TOTP seed); others send none.
		tok, err := gc.LoginOtp(ctx, keycloak.ConsoleClientID, "", keycloak.Realm, user, keycloak.UserPassword, keycloak.TOTPCode(user, time.Now()))
		if err != nil {
			t.Fatalf("login %s: %v", user, err)
		}
		return tok.AccessToken
	}
	v := NewVerifier(OIDCConfig{IssuerURL: kc.URL() + "/realms/iru", Audience: keycloak.APIClientID}, nil)

	tests := []struct {
		name      string
		token     string
		wantUser  string
		wantRoles []string
		wantErr   bool
	}{
		{name: "responder", token: login("alice"), wantUser: "alice", wantRoles: []string{RoleResponder}},
		{name: "lead", token: login("bob"), wantUser: "bob", wantRoles: []string{RoleResponder, RoleLead}},
		{name: "admin", token: login("carol"), wantUser: "carol", wantRoles: []string{RoleAdmin, RoleLead}},
		{name: "garbage", token: "not.a.jwt", wantErr: true},
		{name: "empty", token: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(ctx, tt.token)
			if tt.wantErr {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("err = %v, want ErrUnauthenticated", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Username != tt.wantUser || id.Realm != "iru" || id.Subject == "" || id.SessionID == "" {
				t.Errorf("identity = %+v", id)
			}
			for _, r := range tt.wantRoles {
				if !id.HasRole(r) {
					t.Errorf("%s lacks role %s (roles %v)", tt.wantUser, r, id.Roles)
				}
			}
			if id.Actor() != "keycloak:iru/"+tt.wantUser {
				t.Errorf("actor = %s", id.Actor())
			}
		})
	}

	t.Run("wrong audience", func(t *testing.T) {
		other := NewVerifier(OIDCConfig{IssuerURL: kc.URL() + "/realms/iru", Audience: "some-other-api"}, nil)
		if _, err := other.Verify(ctx, login("alice")); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("err = %v, want ErrUnauthenticated", err)
		}
	})
	t.Run("token from another realm", func(t *testing.T) {
		adm, err := gc.LoginAdmin(ctx, keycloak.AdminUsername, keycloak.AdminPassword, keycloak.MasterRealm)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, adm.AccessToken); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("err = %v, want ErrUnauthenticated", err)
		}
	})
	t.Run("key rotation", func(t *testing.T) {
		before := login("alice")
		if _, err := kc.RotateSigningKey(keycloak.Realm); err != nil {
			t.Fatal(err)
		}
		after := login("alice")
		for _, tok := range []string{before, after} {
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Fatalf("during the overlap both keys verify: %v", err)
			}
		}
	})
}
