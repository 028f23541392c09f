//go:build integration

package controls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/ThalesGroup/crypto11"
	goprox "github.com/luthermonson/go-proxmox"

	"github.com/iru-responder/responder/activities"
	controlsact "github.com/iru-responder/responder/activities/controls"
	"github.com/iru-responder/responder/activities/housekeeping"
	kcact "github.com/iru-responder/responder/activities/keycloak"
	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/controls"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/lab"
	kclab "github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/stores"
)

// env is a running lab with the control checks wired to it through the
// platform's real clients (go-proxmox, gocloak), a SQLite ledger and a
// SoftHSM2 token.
type env struct {
	ctx    context.Context
	lab    *lab.Lab
	cfg    map[string]string
	acts   *controlsact.Activities
	file   *controls.File
	ledger *ledger.Ledger
	now    time.Time
	hsm    keys.Config
	signer stores.Signer
}

// managed are the keys the test platform manages.
var managed = []controlsact.ManagedKey{
	{Kind: controls.KeyIntake, ID: "intake:falco"},
	{Kind: controls.KeyPVEToken, ID: "pve-token:iru@pve!responder"},
	{Kind: controls.KeyKCClientSecret, ID: "kc-client-secret:iru/iru-worker"},
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l, err := lab.Start(ctx, lab.Options{PVEAddr: "127.0.0.1:0", KeycloakAddr: "127.0.0.1:0", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	e := &env{ctx: ctx, lab: l, cfg: map[string]string{}, now: time.Now().UTC()}
	for _, kv := range l.Env() {
		k, v, _ := strings.Cut(kv, "=")
		e.cfg[k] = v
	}
	pve, err := pveact.NewInventory(pveact.Config{URL: e.cfg["IRU_PVE_URL"], TokenID: e.cfg["IRU_PVE_TOKEN_ID"],
		TokenSecret: e.cfg["IRU_PVE_TOKEN_SECRET"], CAFile: e.cfg["IRU_PVE_CA_FILE"]})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kcact.New(kcact.Config{URL: e.cfg["IRU_KEYCLOAK_URL"], Realm: kclab.Realm, ClientID: kclab.WorkerClientID,
		ClientSecret: kclab.WorkerClientSecret}, noEvidence{}, noSecrets{})
	if err != nil {
		t.Fatal(err)
	}
	km, kcfg := hsmtest.Manager(t)
	e.hsm = kcfg
	st, err := ledger.OpenSQLite(ctx, t.TempDir()+"/ledger.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e.ledger = ledger.New(st, nil)
	if e.file, err = controls.Embedded(); err != nil {
		t.Fatal(err)
	}
	// The API server's listener as `starter serve` configures it: TLS 1.3 only.
	api := httptest.NewUnstartedServer(http.NotFoundHandler())
	api.TLS = &tls.Config{MinVersion: tls.VersionTLS13}
	api.StartTLS()
	t.Cleanup(api.Close)
	e.signer = stores.Signer{M: km}
	e.acts = &controlsact.Activities{File: e.file, PVE: pve, Keycloak: kc, Ledger: e.ledger, Verifier: e.signer,
		KEKs: km, APIAddr: api.Listener.Addr().String(),
		ManagedKeys: func(context.Context) ([]controlsact.ManagedKey, error) { return managed, nil }}
	for _, k := range managed {
		e.keyChange(t, k.ID, e.now.AddDate(0, 0, -10))
	}
	return e
}

// keyChange appends a key-change record of key at time at, in that day's
// chain, as the worker's audit interceptor records a rotation.
func (e *env) keyChange(t *testing.T, key string, at time.Time) {
	t.Helper()
	rec := accesslog.Record{Time: at, Action: accesslog.ActionKeyChange, Actor: "system:worker", Path: "test.rotate", Keys: []string{key}}
	if _, err := housekeeping.AppendNext(e.ctx, e.ledger, ledger.AppendRequest{Incident: accesslog.Chain(at), Time: at, Actor: "system:worker",
		Action: accesslog.ActionKeyChange, Target: "test.rotate", Params: rec, Outcome: ledger.Outcome{Status: ledger.StatusOK, Detail: "rotated"},
		IdempotencyKey: "key/" + key + "/" + at.Format(time.RFC3339Nano)}); err != nil {
		t.Fatal(err)
	}
}

// check runs one control through the registered controls.check activity's code path.
func (e *env) check(t *testing.T, id string) activities.ControlCheckResult {
	t.Helper()
	res, err := e.acts.Check(e.ctx, activities.ControlCheckInput{ID: id})
	if err != nil {
		t.Fatalf("check %s: %v", id, err)
	}
	return res
}

// pveClient is a go-proxmox client with the lab's token, as an operator's tooling would use.
func (e *env) pveClient(t *testing.T) *goprox.Client {
	t.Helper()
	pem, err := os.ReadFile(e.cfg["IRU_PVE_CA_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return goprox.NewClient(e.cfg["IRU_PVE_URL"], goprox.WithAPIToken(e.cfg["IRU_PVE_TOKEN_ID"], e.cfg["IRU_PVE_TOKEN_SECRET"]), goprox.WithHTTPClient(hc))
}

// realm changes the iru realm through the admin API, as an administrator would.
func (e *env) realm(t *testing.T, change func(*gocloak.RealmRepresentation)) {
	t.Helper()
	gc, tok := e.kcAdmin(t)
	r, err := gc.GetRealm(e.ctx, tok, kclab.Realm)
	if err != nil {
		t.Fatal(err)
	}
	change(r)
	if err := gc.UpdateRealm(e.ctx, tok, *r); err != nil {
		t.Fatal(err)
	}
}

func (e *env) kcAdmin(t *testing.T) (*gocloak.GoCloak, string) {
	t.Helper()
	gc := gocloak.NewClient(e.cfg["IRU_KEYCLOAK_URL"])
	jwt, err := gc.LoginAdmin(e.ctx, kclab.AdminUsername, kclab.AdminPassword, kclab.MasterRealm)
	if err != nil {
		t.Fatal(err)
	}
	return gc, jwt.AccessToken
}

// labControls are the controls whose state the lab and the test platform
// hold (the retention sweep and drills read Temporal: see workerhost's test).
func labControls(f *controls.File) []controls.Control {
	return slices.DeleteFunc(slices.Clone(f.Controls), func(c controls.Control) bool {
		return c.Check == controls.KindPlatformRetention || c.Check == controls.KindPlatformDrills
	})
}

// TestSeededLabPasses proves every control the lab models passes on the
// lab's seeded state, and that each result carries what was read.
func TestSeededLabPasses(t *testing.T) {
	e := newEnv(t)
	for _, c := range labControls(e.file) {
		res := e.check(t, c.ID)
		if res.Status != activities.ControlPass || res.Targets == 0 || len(res.Observed) == 0 {
			t.Errorf("%s: status %s, %d targets, findings %+v", c.ID, res.Status, res.Targets, res.Findings)
		}
	}
}

// TestDrift introduces each drift through the real APIs and checks the
// control fails naming the exact rule or setting, with the safe fix where
// one exists; a key without any record is unknown, never a pass.
func TestDrift(t *testing.T) {
	for _, tc := range []struct {
		name    string
		drift   func(t *testing.T, e *env)
		control string
		status  string
		// want are substrings of one finding: target, setting, observed.
		target, setting, observed string
		fix                       string
		fixParams                 map[string]string
	}{
		{"port 22 open to the world", func(t *testing.T, e *env) {
			if err := e.pveClient(t).Post(e.ctx, "/nodes/pve1/lxc/100/firewall/rules", map[string]any{
				"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22", "source": "0.0.0.0/0", "enable": 1}, nil); err != nil {
				t.Fatal(err)
			}
		}, "net-ingress-ports", activities.ControlFail, "pve/pve1/lxc/100", "firewall rule pos 0", "ACCEPT in tcp dport 22 from 0.0.0.0/0",
			activities.PVEFirewallRestore, map[string]string{"node": "pve1", "vmid": "100"}},
		{"container to container", func(t *testing.T, e *env) {
			if err := e.pveClient(t).Post(e.ctx, "/nodes/pve2/lxc/103/firewall/rules", map[string]any{
				"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22", "source": "10.20.10.10", "enable": 1}, nil); err != nil {
				t.Fatal(err)
			}
		}, "net-lateral-movement", activities.ControlFail, "pve/pve2/lxc/103", "firewall rule pos 0", "opens api-gateway -> database:22",
			activities.PVEFirewallRestore, map[string]string{"node": "pve2", "vmid": "103"}},
		{"datacenter firewall off", func(t *testing.T, e *env) {
			if err := e.pveClient(t).Put(e.ctx, "/cluster/firewall/options", map[string]any{"enable": 0}, nil); err != nil {
				t.Fatal(err)
			}
		}, "net-datacenter-firewall", activities.ControlFail, "pve/cluster", "datacenter firewall option enable", "enable=0",
			activities.PVEFirewallEnable, map[string]string{"scope": "datacenter"}},
		{"database egress opened", func(t *testing.T, e *env) {
			if err := e.pveClient(t).Put(e.ctx, "/nodes/pve2/lxc/103/firewall/options", map[string]any{"policy_out": "ACCEPT"}, nil); err != nil {
				t.Fatal(err)
			}
		}, "net-egress", activities.ControlFail, "pve/pve2/lxc/103", "firewall option policy_out", "policy_out=ACCEPT",
			activities.PVEFirewallRestore, map[string]string{"node": "pve2", "vmid": "103"}},
		{"token lifespan an hour", func(t *testing.T, e *env) {
			e.realm(t, func(r *gocloak.RealmRepresentation) { r.AccessTokenLifespan = gocloak.IntP(3600) })
		}, "idm-token-lifespan", activities.ControlFail, "keycloak/iru", "accessTokenLifespan", "3600 s", "", nil},
		{"brute force off", func(t *testing.T, e *env) {
			e.realm(t, func(r *gocloak.RealmRepresentation) { r.BruteForceProtected = gocloak.BoolP(false) })
		}, "idm-brute-force", activities.ControlFail, "keycloak/iru", "bruteForceProtected", "false", "", nil},
		{"password policy removed", func(t *testing.T, e *env) {
			e.realm(t, func(r *gocloak.RealmRepresentation) { r.PasswordPolicy = gocloak.StringP("") })
		}, "idm-password-policy", activities.ControlFail, "keycloak/iru", "passwordPolicy", `""`, "", nil},
		{"direct grants on a confidential client", func(t *testing.T, e *env) {
			gc, tok := e.kcAdmin(t)
			cs, err := gc.GetClients(e.ctx, tok, kclab.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(kclab.APIClientID)})
			if err != nil || len(cs) != 1 {
				t.Fatalf("clients: %v %d", err, len(cs))
			}
			cs[0].DirectAccessGrantsEnabled = gocloak.BoolP(true)
			if err := gc.UpdateClient(e.ctx, tok, kclab.Realm, *cs[0]); err != nil {
				t.Fatal(err)
			}
		}, "idm-no-direct-grants", activities.ControlFail, "keycloak/iru/client/iru-api", "directAccessGrantsEnabled", "directAccessGrantsEnabled=true",
			activities.KCDisableDirectGrants, map[string]string{"realm": "iru", "client_id": "iru-api"}},
		{"OTP subflow disabled", func(t *testing.T, e *env) {
			gc, tok := e.kcAdmin(t)
			flow := url.PathEscape("iru browser")
			rows, err := gc.GetAuthenticationExecutions(e.ctx, tok, kclab.Realm, flow)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(rows, func(r *gocloak.ModifyAuthenticationExecutionRepresentation) bool {
				return gocloak.PString(r.DisplayName) == "iru browser - OTP by role"
			})
			if i < 0 {
				t.Fatal("no OTP-by-role subflow")
			}
			if err := gc.UpdateAuthenticationExecution(e.ctx, tok, kclab.Realm, flow, gocloak.ModifyAuthenticationExecutionRepresentation{
				ID: rows[i].ID, Requirement: gocloak.StringP("DISABLED")}); err != nil {
				t.Fatal(err)
			}
		}, "idm-mfa-admins", activities.ControlFail, "keycloak/iru/user/bob", "authentication flows", `flow "iru browser" asks an OTP only of holders of (no role)`, "", nil},
		{"key record aged past 90 days", func(t *testing.T, e *env) {
			// Only a 91-day-old rotation of the Proxmox token is on record.
			e.ledger = nil
			st, err := ledger.OpenSQLite(e.ctx, t.TempDir()+"/ledger.db")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			e.ledger = ledger.New(st, nil)
			e.acts.Ledger = e.ledger
			e.keyChange(t, "pve-token:iru@pve!responder", e.now.AddDate(0, 0, -91))
			e.keyChange(t, "intake:falco", e.now.AddDate(0, 0, -1))
			e.keyChange(t, "kc-client-secret:iru/iru-worker", e.now.AddDate(0, 0, -1))
		}, "keys-rotated-90d", activities.ControlFail, "key/pve-token:iru@pve!responder", "last key-change record", "(91 days ago", "", nil},
		{"key without any record", func(t *testing.T, e *env) {
			st, err := ledger.OpenSQLite(e.ctx, t.TempDir()+"/ledger.db")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			e.ledger = ledger.New(st, nil)
			e.acts.Ledger = e.ledger
			e.keyChange(t, "pve-token:iru@pve!responder", e.now.AddDate(0, 0, -1))
			e.keyChange(t, "kc-client-secret:iru/iru-worker", e.now.AddDate(0, 0, -1))
		}, "keys-rotated-90d", activities.ControlUnknown, "key/intake:falco", "last key-change record", "no key-change record of intake:falco", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if res := e.check(t, tc.control); res.Status != activities.ControlPass {
				t.Fatalf("before the drift: %s %+v", res.Status, res.Findings)
			}
			tc.drift(t, e)
			res := e.check(t, tc.control)
			if res.Status != tc.status {
				t.Fatalf("after the drift: status %s, want %s; findings %+v", res.Status, tc.status, res.Findings)
			}
			i := slices.IndexFunc(res.Findings, func(f activities.ControlFinding) bool {
				return f.Target == tc.target && strings.Contains(f.Setting, tc.setting) && strings.Contains(f.Observed, tc.observed)
			})
			if i < 0 {
				t.Fatalf("no finding on %s %q observing %q; findings %+v", tc.target, tc.setting, tc.observed, res.Findings)
			}
			f := res.Findings[i]
			t.Logf("%s: %s %s: %s; expected %s; fix %s %v", res.Status, f.Target, f.Setting, f.Observed, f.Expected, f.Fix, f.FixParams)
			if f.Fix != tc.fix || !mapsEqual(f.FixParams, tc.fixParams) {
				t.Errorf("fix %s %v, want %s %v", f.Fix, f.FixParams, tc.fix, tc.fixParams)
			}
			if f.Expected == "" {
				t.Error("the finding does not say what is expected")
			}
		})
	}
}

// TestTLS12Refused proves the TLS control fails against a listener that
// still accepts TLS 1.2, naming the protocol versions.
func TestTLS12Refused(t *testing.T) {
	e := newEnv(t)
	old := httptest.NewUnstartedServer(http.NotFoundHandler())
	old.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	old.StartTLS()
	t.Cleanup(old.Close)
	e.acts.APIAddr = old.Listener.Addr().String()
	res := e.check(t, "data-tls13")
	if res.Status != activities.ControlFail || len(res.Findings) != 1 || res.Findings[0].Setting != "TLS protocol versions" ||
		!strings.Contains(res.Findings[0].Observed, "TLS 1.2 handshake was accepted") {
		t.Fatalf("%s %+v", res.Status, res.Findings)
	}
}

// TestNotConfiguredIsUnknown proves a check whose component is not
// configured is unknown, never a pass.
func TestNotConfiguredIsUnknown(t *testing.T) {
	f, err := controls.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	a := &controlsact.Activities{File: f}
	for _, c := range f.Controls {
		res, err := a.Check(context.Background(), activities.ControlCheckInput{ID: c.ID})
		if err != nil || res.Status != activities.ControlUnknown {
			t.Errorf("%s: %s %v", c.ID, res.Status, err)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

type noEvidence struct{}

func (noEvidence) PutEvidence(context.Context, activities.EvidenceItem) (string, error) {
	return "", os.ErrPermission
}

type noSecrets struct{}

func (noSecrets) StoreSecret(context.Context, activities.SecretItem) (string, error) {
	return "", os.ErrPermission
}

// TestExtractableKEK puts an extractable AES key under the next KEK label
// into the token (as someone with the token PIN could), which the key
// manager would then wrap with: the KEK control fails naming the key and
// CKA_EXTRACTABLE.
func TestExtractableKEK(t *testing.T) {
	e := newEnv(t)
	if res := e.check(t, "data-kek-hsm"); res.Status != activities.ControlPass {
		t.Fatalf("before: %s %+v", res.Status, res.Findings)
	}
	hsm, err := crypto11.Configure(&crypto11.Config{Path: e.hsm.Module, TokenLabel: e.hsm.TokenLabel, Pin: e.hsm.PIN})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hsm.Close() }()
	tmpl, err := crypto11.NewAttributeSetWithIDAndLabel([]byte("weak-kek"), []byte(keys.KEKLabelPrefix+"9"))
	if err != nil {
		t.Fatal(err)
	}
	for typ, v := range map[crypto11.AttributeType]bool{crypto11.CkaToken: true, crypto11.CkaSensitive: false, crypto11.CkaExtractable: true,
		crypto11.CkaEncrypt: true, crypto11.CkaDecrypt: true} {
		if err := tmpl.Set(typ, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hsm.GenerateSecretKeyWithAttributes(tmpl, 256, crypto11.CipherAES); err != nil {
		t.Fatal(err)
	}
	res := e.check(t, "data-kek-hsm")
	if res.Status != activities.ControlFail || !slices.ContainsFunc(res.Findings, func(f activities.ControlFinding) bool {
		return f.Target == "hsm/kek/"+keys.KEKLabelPrefix+"9" && f.Setting == "CKA_EXTRACTABLE" && f.Observed == "true"
	}) {
		t.Fatalf("after: %s %+v", res.Status, res.Findings)
	}
}

// TestLedgerControl checks yesterday's daily chain must be signed up to its
// head, and that a changed entry fails the control naming its seq.
func TestLedgerControl(t *testing.T) {
	e := newEnv(t)
	yesterday := e.now.AddDate(0, 0, -1)
	e.keyChange(t, "pve-token:iru@pve!responder", yesterday)
	res := e.check(t, "audit-ledger")
	chain := accesslog.Chain(yesterday)
	if res.Status != activities.ControlFail || res.Findings[0].Setting != "signed checkpoint of "+chain {
		t.Fatalf("unsigned yesterday: %s %+v", res.Status, res.Findings)
	}
	if _, err := e.ledger.Checkpoint(e.ctx, chain, e.signer); err != nil {
		t.Fatal(err)
	}
	if res := e.check(t, "audit-ledger"); res.Status != activities.ControlPass {
		t.Fatalf("signed yesterday: %s %+v", res.Status, res.Findings)
	}
}
