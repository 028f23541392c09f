//go:build integration

package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/google/uuid"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/workflows"
)

// startPlaybook opens an incident with playbook and alert labels.
func (s *stack) startPlaybook(key, playbook string, labels map[string]string) {
	s.t.Helper()
	in := workflows.IncidentInput{
		IncidentID: "INC-20260101-" + uuid.NewString()[:8], Key: key, Asset: "web-01", Severity: "high", Playbook: playbook, OpenedBy: "detector:test",
		Alerts: []workflows.Alert{{ID: uuid.NewString(), Fingerprint: "fp-" + key, Source: "generic", Rule: "r", Severity: "high",
			Asset: "web-01", Summary: "s", Labels: labels, ReceivedAt: time.Now().UTC()}},
	}
	if _, err := s.temporal.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: workflows.IncidentWorkflowID(key), TaskQueue: s.queue},
		workflows.IncidentWorkflow, in); err != nil {
		s.t.Fatal(err)
	}
}

// TestRevokedSessionRefused: a token whose Keycloak session was logged out
// is refused (403) on every mutating route at once, although the token
// itself has not expired; another user's live session still works.
func TestRevokedSessionRefused(t *testing.T) {
	s := newStack(t)
	key := "revoked-" + uuid.NewString()[:8]
	s.start(key, "detector:falco")
	gc := gocloak.NewClient(s.kc.URL())
	tok, err := gc.Login(context.Background(), keycloak.ConsoleClientID, "", keycloak.Realm, "alice", keycloak.UserPassword)
	if err != nil {
		t.Fatal(err)
	}
	bob := login(t, s.kc, "bob")
	s.waitStatus(tok.AccessToken, key, "the incident to start", func(v IncidentView) bool { return v.Status.Playbook != "" })
	if err := gc.Logout(context.Background(), keycloak.ConsoleClientID, "", keycloak.Realm, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/acknowledge", "/escalate", "/steps/shutdown/approve", "/steps/shutdown/deny", "/notes"} {
		var e apiError
		code, raw := s.call("POST", "/api/v1/incidents/"+key+path, tok.AccessToken, map[string]string{"reason": "r", "text": "t"}, &e)
		if code != http.StatusForbidden || e.Code != "session_revoked" {
			t.Errorf("POST %s with a logged-out session: %d %s, want 403 session_revoked", path, code, raw)
		}
	}
	// Reading stays possible until the token expires; the refusal is about decisions.
	if code, raw := s.call("GET", "/api/v1/incidents/"+key, tok.AccessToken, nil, nil); code != http.StatusOK {
		t.Errorf("GET with the logged-out token: %d %s", code, raw)
	}
	if code, raw := s.call("POST", "/api/v1/incidents/"+key+"/acknowledge", bob, nil, nil); code != http.StatusOK {
		t.Errorf("bob's live session: %d %s", code, raw)
	}
	v := s.waitStatus(bob, key, "the acknowledgement", func(v IncidentView) bool { return !v.Status.Metrics.AcknowledgedAt.IsZero() })
	for _, e := range v.Status.Timeline {
		if e.Actor == "alice" {
			t.Errorf("alice's logged-out session reached the incident: %+v", e)
		}
	}
}

// fakeTokens maps bearer tokens to identities (what a token's amr says
// is what the test is about, independent of the lab's login flows).
type fakeTokens map[string]auth.Identity

func (f fakeTokens) Verify(_ context.Context, raw string) (auth.Identity, error) {
	id, ok := f[raw]
	if !ok {
		return auth.Identity{}, auth.ErrUnauthenticated
	}
	return id, nil
}

func (f fakeTokens) CheckSession(context.Context, string) error { return nil }

// TestHighRiskApprovalNeedsOTP: approving a risk: high step (re-enabling
// the user in credential-compromise) with a password-only token is refused
// by the API with 403 mfa_required and the step still waits; the same lead
// with a one-time code in the token's amr approves it. Denying that step
// and aborting the incident with the password-only token are refused too.
func TestHighRiskApprovalNeedsOTP(t *testing.T) {
	s := newStack(t)
	bob := auth.Identity{Subject: "b-1", Username: "bob", Realm: keycloak.Realm, Roles: []string{"ir-responder", "ir-lead"}, SessionID: "s1", TokenID: "j1"}
	bobOTP := bob
	bobOTP.AMR = []string{"pwd", "otp"}
	bob.AMR = []string{"pwd"}
	toks := fakeTokens{"bob-pwd": bob, "bob-otp": bobOTP}
	rs, err := NewResponder(ResponderOptions{Config: testConfig(s.kc), Temporal: s.temporal, Verifier: toks, Sessions: toks, Signer: testSigner, Log: slogNop()})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer((&Server{Log: slogNop(), Temporal: fakeTemporal{}, Responder: rs}).Handler())
	defer api.Close()
	key := "otp-" + uuid.NewString()[:8]
	s.startPlaybook(key, "credential-compromise", map[string]string{"realm": "iru", "username": "jdoe"})
	alice := login(t, s.kc, "alice")
	s.waitStatus(alice, key, "the enable approval", func(v IncidentView) bool { return stepStatus(v, "enable") == workflows.StepWaitingApproval })
	var e apiError
	code, raw := call(t, api.URL, "POST", "/api/v1/incidents/"+key+"/steps/enable/approve", "bob-pwd", map[string]string{"reason": "cleared"}, &e, nil)
	if code != http.StatusForbidden || e.Code != "mfa_required" {
		t.Fatalf("approval without otp: %d %s, want 403 mfa_required", code, raw)
	}
	// A denial of the same step and an abort of the incident halt the
	// response (the abort undoes containment): a password alone is refused.
	for _, path := range []string{"/steps/enable/deny", "/abort"} {
		e = apiError{}
		code, raw := call(t, api.URL, "POST", "/api/v1/incidents/"+key+path, "bob-pwd", map[string]string{"reason": "false positive"}, &e, nil)
		if code != http.StatusForbidden || e.Code != "mfa_required" {
			t.Fatalf("%s without otp: %d %s, want 403 mfa_required", path, code, raw)
		}
	}
	v := s.waitStatus(alice, key, "the step", func(IncidentView) bool { return true })
	if st := stepStatus(v, "enable"); st != workflows.StepWaitingApproval || v.Status.State != workflows.StateOpen {
		t.Errorf("enable is %s and the incident %s after the refused decisions, want still waiting and open", st, v.Status.State)
	}
	if code, raw := call(t, api.URL, "POST", "/api/v1/incidents/"+key+"/steps/enable/approve", "bob-otp", map[string]string{"reason": "cleared"}, nil, nil); code != http.StatusOK {
		t.Fatalf("approval with otp: %d %s", code, raw)
	}
	s.waitStatus(alice, key, "the enable step to run", func(v IncidentView) bool { return stepStatus(v, "enable") == workflows.StepSucceeded })
}

// TestRotatedKeyRefresh: the API server signs with a key the running
// incident has not loaded yet (the worker's keys were rotated after the
// incident started). The workflow refuses it as unknown; the API server
// sends the refresh signal, the workflow re-reads the worker's keys, and
// the retried decision is accepted.
func TestRotatedKeyRefresh(t *testing.T) {
	s := newStack(t)
	next, err := decision.NewLocalSigner()
	if err != nil {
		t.Fatal(err)
	}
	old := decision.KeySet{Keys: []decision.Key{testSigner.Key(time.Time{}, time.Time{})}}
	workerKeys.Store(&old)
	t.Cleanup(func() { workerKeys.Store(nil) })
	bobID := auth.Identity{Subject: "b-1", Username: "bob", Realm: keycloak.Realm, Roles: []string{"ir-lead"}, AMR: []string{"pwd", "otp"}}
	toks := fakeTokens{"bob": bobID}
	rs, err := NewResponder(ResponderOptions{Config: testConfig(s.kc), Temporal: s.temporal, Verifier: toks, Sessions: toks, Signer: next, Log: slogNop()})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer((&Server{Log: slogNop(), Temporal: fakeTemporal{}, Responder: rs}).Handler())
	defer api.Close()
	key := "rotate-" + uuid.NewString()[:8]
	s.start(key, "detector:falco")
	alice := login(t, s.kc, "alice")
	s.waitStatus(alice, key, "the shutdown approval", func(v IncidentView) bool { return stepStatus(v, "shutdown") == workflows.StepWaitingApproval })
	// Without the rotation on the worker, the refresh finds no new key: refused.
	var e apiError
	if code, raw := call(t, api.URL, "POST", "/api/v1/incidents/"+key+"/steps/shutdown/approve", "bob", map[string]string{"reason": "r"}, &e, nil); code != http.StatusForbidden || e.Code != "bad_statement" {
		t.Fatalf("key the worker does not trust: %d %s, want 403 bad_statement", code, raw)
	}
	rotated := decision.KeySet{Keys: append(old.Keys, next.Key(time.Time{}, time.Time{}))}
	workerKeys.Store(&rotated)
	if code, raw := call(t, api.URL, "POST", "/api/v1/incidents/"+key+"/steps/shutdown/approve", "bob", map[string]string{"reason": "r"}, nil, nil); code != http.StatusOK {
		t.Fatalf("after the worker's rotation: %d %s, want the refresh and retry to succeed", code, raw)
	}
}
