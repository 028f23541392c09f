//go:build integration

package keycloak

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/iru-responder/responder/activities"
	kclab "github.com/iru-responder/responder/internal/lab/keycloak"
)

func TestRevokeRealm(t *testing.T) {
	e := newEnv(t)
	old := e.login("alice")
	e.clock.Advance(2 * time.Second) // not-before rejects iat < not-before
	in := input(activities.KCRevokeRealm, map[string]string{"push": "true"})
	var first string
	for i := range 2 {
		res, err := e.run(e.acts.RevokeRealm, in)
		if err != nil {
			t.Fatalf("RevokeRealm #%d: %v", i, err)
		}
		want := time.Unix(e.clock.Now().Unix(), 0).UTC().Format(time.RFC3339)
		if res.Outputs["not_before"] != want || res.Outputs["push_failed"] != "0" {
			t.Fatalf("RevokeRealm #%d outputs = %v, want not_before %s", i, res.Outputs, want)
		}
		if i == 0 {
			first = res.Outputs["not_before"]
		} else if res.Outputs["not_before"] != first {
			t.Fatalf("retry moved not-before: %s then %s", first, res.Outputs["not_before"])
		}
	}
	r, err := e.gc.GetRealm(e.ctx, e.adminToken(), kclab.Realm)
	if err != nil || int64(gocloak.PInt(r.NotBefore)) != e.clock.Now().Unix() {
		t.Fatalf("realm not-before = %v (%v), want %d", gocloak.PInt(r.NotBefore), err, e.clock.Now().Unix())
	}
	if e.active(old.AccessToken) {
		t.Fatal("token issued before not-before is still active")
	}
	if _, err := e.gc.RefreshToken(e.ctx, old.RefreshToken, kclab.ConsoleClientID, "", kclab.Realm); err == nil {
		t.Fatal("refresh token issued before not-before still works")
	}
	e.clock.Advance(time.Second)
	if fresh := e.login("alice"); !e.active(fresh.AccessToken) {
		t.Fatal("token issued after not-before is inactive")
	}
	pushes := 0
	ad, _ := e.lab.AdminEvents(kclab.Realm)
	for _, ev := range ad {
		if ev.OperationType == "ACTION" && ev.ResourceType == "REALM" {
			pushes++
		}
	}
	if pushes != 2 {
		t.Fatalf("push-revocation admin events = %d, want 2", pushes)
	}
}

func TestRotateClientSecret(t *testing.T) {
	e := newEnv(t)
	oldSecret := e.clientSecret(kclab.APIClientID)
	in := input(activities.KCRotateClientSecret, map[string]string{"client_id": kclab.APIClientID})
	res, err := e.run(e.acts.RotateClientSecret, in)
	if err != nil {
		t.Fatalf("RotateClientSecret: %v", err)
	}
	ref := res.Outputs["secret_ref"]
	newSecret, ok := e.secrets.read(ref)
	if !ok || newSecret == "" || newSecret == oldSecret {
		t.Fatalf("sink holds %q at %q (old %q)", newSecret, ref, oldSecret)
	}
	if cur := e.clientSecret(kclab.APIClientID); cur != newSecret {
		t.Fatal("sink secret is not Keycloak's current secret")
	}
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), newSecret) || strings.Contains(string(b), oldSecret) {
		t.Fatalf("result carries a secret: %s", b)
	}
	if _, err := e.gc.LoginClient(e.ctx, kclab.APIClientID, oldSecret, kclab.Realm); err == nil {
		t.Fatal("old secret still works")
	}
	if _, err := e.gc.LoginClient(e.ctx, kclab.APIClientID, newSecret, kclab.Realm); err != nil {
		t.Fatalf("new secret fails: %v", err)
	}

	t.Run("same step again does not rotate twice", func(t *testing.T) {
		again, err := e.run(e.acts.RotateClientSecret, in)
		if err != nil {
			t.Fatalf("RotateClientSecret again: %v", err)
		}
		if again.Outputs["secret_ref"] != ref || e.clientSecret(kclab.APIClientID) != newSecret {
			t.Fatalf("second call rotated again: %v", again.Outputs)
		}
	})
	t.Run("crash after regenerating, before storing", func(t *testing.T) {
		in2 := in
		in2.IdempotencyKey = "inc-1/rotate-2"
		before := e.clientSecret(kclab.APIClientID)
		e.secrets.failNext = true
		_, err := e.run(e.acts.RotateClientSecret, in2)
		wantErr(t, err, "SecretSink", false)
		regenerated := e.clientSecret(kclab.APIClientID)
		if regenerated == before {
			t.Fatal("secret not regenerated before the sink failed")
		}
		if strings.Contains(err.Error(), regenerated) {
			t.Fatalf("error carries the secret: %v", err)
		}
		res, err := e.run(e.acts.RotateClientSecret, in2) // the retry
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		stored, _ := e.secrets.read(res.Outputs["secret_ref"])
		if cur := e.clientSecret(kclab.APIClientID); cur != regenerated || stored != regenerated {
			t.Fatalf("retry rotated again or stored another secret (current changed=%t, stored matches=%t)", cur != regenerated, stored == regenerated)
		}
		if !strings.Contains(res.Summary, "earlier attempt") {
			t.Fatalf("summary = %q", res.Summary)
		}
	})
	t.Run("regenerate fails with 503, retry rotates", func(t *testing.T) {
		in3 := in
		in3.IdempotencyKey = "inc-1/rotate-3"
		before := e.clientSecret(kclab.APIClientID)
		e.faults(kclab.Fault{Method: "POST", Path: "/admin/realms/iru/clients/*", Status: 503, Times: 1})
		_, err := e.run(e.acts.RotateClientSecret, in3)
		wantErr(t, err, ErrTypeUnavailable, false)
		if e.clientSecret(kclab.APIClientID) != before {
			t.Fatal("secret changed although the regenerate call failed")
		}
		res, err := e.run(e.acts.RotateClientSecret, in3)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		stored, _ := e.secrets.read(res.Outputs["secret_ref"])
		if stored == before || stored != e.clientSecret(kclab.APIClientID) {
			t.Fatal("retry after a failed regenerate did not rotate")
		}
	})
	t.Run("refusals", func(t *testing.T) {
		_, err := e.run(e.acts.RotateClientSecret, input(activities.KCRotateClientSecret, map[string]string{"client_id": kclab.WorkerClientID}))
		wantErr(t, err, activities.ErrTypePrecondition, true)
		_, err = e.run(e.acts.RotateClientSecret, input(activities.KCRotateClientSecret, map[string]string{"client_id": kclab.ConsoleClientID}))
		wantErr(t, err, activities.ErrTypePrecondition, true)
		_, err = e.run(e.acts.RotateClientSecret, input(activities.KCRotateClientSecret, map[string]string{"client_id": "nope"}))
		wantErr(t, err, activities.ErrTypeNotFound, true)
	})
	t.Run("events evidence redacts the secret", func(t *testing.T) {
		res, err := e.run(e.acts.CollectEvents, input(activities.KCCollectEvents, map[string]string{"window": "1h"}))
		if err != nil {
			t.Fatalf("CollectEvents: %v", err)
		}
		ad, _ := e.lab.AdminEvents(kclab.Realm)
		raw, _ := json.Marshal(ad)
		if !strings.Contains(string(raw), e.clientSecret(kclab.APIClientID)) {
			t.Fatal("precondition: the lab's admin events should hold the regenerated secret")
		}
		all := e.evidence.all()
		for _, s := range []string{oldSecret, newSecret, e.clientSecret(kclab.APIClientID)} {
			if strings.Contains(all, s) {
				t.Fatal("evidence carries a client secret")
			}
		}
		if !strings.Contains(all, "redacted") || len(res.EvidenceRefs) != 3 {
			t.Fatalf("no redaction marker or wrong refs: %v", res.EvidenceRefs)
		}
	})
}

func TestCollectEvents(t *testing.T) {
	e := newEnv(t)
	alice := e.userID("alice")
	const failures = 230 // more than one page of 200
	for i := range failures {
		if _, err := e.gc.Login(e.ctx, kclab.ConsoleClientID, "", kclab.Realm, "alice", fmt.Sprintf("wrong-%d", i)); err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
	}
	e.clock.Advance(16 * time.Minute) // past the realm's brute-force lockout (maxFailureWaitSeconds)
	e.login("alice")
	e.login("bob")
	if _, err := e.gc.Login(e.ctx, kclab.ConsoleClientID, "", kclab.Realm, "bob", "wrong"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	e.setEnabled("bob", false) // an admin event about bob
	e.clock.Advance(2 * time.Hour)
	e.login("alice") // the only event of the last hour
	tests := []struct {
		name       string
		params     map[string]string
		wantFailed int
		wantAdmin  bool
	}{
		{"realm, 3h window", map[string]string{"window": "3h"}, failures + 1, true},
		{"alice, 3h window", map[string]string{"window": "3h", "user_id": alice}, failures, false},
		{"realm, 1h window", map[string]string{"window": "1h"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.run(e.acts.CollectEvents, input(activities.KCCollectEvents, tt.params))
			if err != nil {
				t.Fatalf("CollectEvents: %v", err)
			}
			if res.Outputs["failed_logins"] != fmt.Sprint(tt.wantFailed) {
				t.Fatalf("failed_logins = %s, want %d", res.Outputs["failed_logins"], tt.wantFailed)
			}
			m, ok := e.evidence.get(res.Outputs["manifest"])
			if !ok || len(res.EvidenceRefs) != 3 {
				t.Fatalf("manifest %q missing or refs %v", res.Outputs["manifest"], res.EvidenceRefs)
			}
			var manifest struct {
				Items []struct {
					Ref   string
					Count int
				}
			}
			if err := json.Unmarshal(m.body, &manifest); err != nil || len(manifest.Items) != 2 {
				t.Fatalf("manifest = %s (%v)", m.body, err)
			}
			if got := manifest.Items[1].Count > 0; got != tt.wantAdmin {
				t.Fatalf("admin events count = %d, want some=%t", manifest.Items[1].Count, tt.wantAdmin)
			}
			for _, it := range manifest.Items {
				if _, ok := e.evidence.get(it.Ref); !ok {
					t.Fatalf("manifest item %s not stored", it.Ref)
				}
			}
		})
	}
	_, err := e.run(e.acts.CollectEvents, input(activities.KCCollectEvents, map[string]string{"window": "-1h"}))
	wantErr(t, err, activities.ErrTypeBadParams, true)
}
