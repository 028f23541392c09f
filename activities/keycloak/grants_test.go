//go:build integration

package keycloak

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/iru-responder/responder/activities"
	kclab "github.com/iru-responder/responder/internal/lab/keycloak"
)

// fixStore is a content-addressed evidence store that reads back, as the
// locker does.
type fixStore struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (f *fixStore) PutEvidence(_ context.Context, it activities.EvidenceItem) (string, error) {
	b, err := io.ReadAll(it.Body)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	ref := "evidence://" + it.IncidentID + "/sha256:" + hex.EncodeToString(sum[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.data == nil {
		f.data = map[string][]byte{}
	}
	f.data[ref] = b
	return ref, nil
}

func (f *fixStore) ReadEvidence(_ context.Context, ref, _, _ string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.data[ref]; ok {
		return b, nil
	}
	return nil, activities.NewFinalError(activities.ErrTypeNotFound, "no evidence "+ref, nil)
}

// failing stores a failing result of control id whose finding names
// kc.disable_direct_grants for clientID.
func (f *fixStore) failing(t *testing.T, id, clientID string) string {
	t.Helper()
	doc, _ := json.Marshal(activities.NewControlEvidence(activities.ControlCheckResult{
		Control: activities.ControlSummary{ID: id}, Status: activities.ControlFail, Targets: 1, CheckedAt: time.Now(),
		Findings: []activities.ControlFinding{{Target: "keycloak/iru/" + clientID, Setting: "directAccessGrantsEnabled", Observed: "true", Expected: "false",
			Fix: activities.KCDisableDirectGrants, FixParams: map[string]string{"realm": kclab.Realm, "client_id": clientID}}},
	}, "test"))
	ref, err := f.PutEvidence(context.Background(), activities.EvidenceItem{IncidentID: activities.ControlEvidenceIncident(id), Body: bytes.NewReader(doc)})
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestDisableDirectGrants: drift turns on the password grant of the
// confidential client iru-api (through the admin API), and a password
// login through it works — the attack. A dry run plans the change and
// leaves the client as it is (the login still works); the action turns the
// grant off, the same login is refused, and a second run changes nothing.
// Realms outside the allowed list and drills on non-drill clients are
// refused; so is a step naming a client the control's check did not find
// (an incident's labels are not enough): the console's password grant,
// which `starter login` needs, stays on.
func TestDisableDirectGrants(t *testing.T) {
	e := newEnv(t)
	store := &fixStore{}
	e.acts.evidence = store
	ev := store.failing(t, "id-no-direct-grants", kclab.APIClientID)
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
	in := input(activities.KCDisableDirectGrants, map[string]string{"client_id": kclab.APIClientID, "evidence": ev})

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

	_, err = e.run(e.acts.DisableDirectGrants, input(activities.KCDisableDirectGrants, map[string]string{"client_id": kclab.ConsoleClientID, "evidence": ev}))
	wantErr(t, err, activities.ErrTypePrecondition, true)
	if !gocloak.PBool(e.client(kclab.ConsoleClientID).DirectAccessGrantsEnabled) {
		t.Fatal("a step naming a client the check did not find turned its direct grants off")
	}
	_, err = e.run(e.acts.DisableDirectGrants, input(activities.KCDisableDirectGrants, map[string]string{"realm": "master", "client_id": "admin-cli", "evidence": store.failing(t, "x", "admin-cli")}))
	wantErr(t, err, activities.ErrTypePrecondition, true)
	drill := in
	drill.Drill = true
	_, err = e.run(e.acts.DisableDirectGrants, drill)
	wantErr(t, err, activities.ErrTypePrecondition, true)
}
