//go:build integration

package test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/iru-responder/responder/internal/accesslog"
	intakeauth "github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// TestPlaybooksEndToEnd runs the other shipped playbooks to completion on
// the dev server against the lab, approving every gated step, and checks
// each one's effect in the lab and its proof (ledger and report).
func TestPlaybooksEndToEnd(t *testing.T) {
	tests := []struct {
		playbook string
		asset    string
		severity string
		labels   map[string]string
		env      func(t *testing.T) []string
		check    func(t *testing.T, p *testplatform.Platform, before pve.StateSnapshot)
	}{
		{
			playbook: "credential-compromise", asset: "keycloak", severity: "critical",
			labels: map[string]string{"realm": keycloak.Realm, "username": "asmith"},
			check: func(t *testing.T, p *testplatform.Platform, _ pve.StateSnapshot) {
				if on, err := p.Lab.Keycloak.UserEnabled(keycloak.Realm, "asmith"); err != nil || !on {
					t.Errorf("asmith not re-enabled at recovery: %v %v", on, err)
				}
			},
		},
		{
			playbook: "failed-auth-threshold", asset: "keycloak", severity: "high",
			labels: map[string]string{"realm": keycloak.Realm, "username": "asmith"},
			check: func(t *testing.T, p *testplatform.Platform, _ pve.StateSnapshot) {
				if on, err := p.Lab.Keycloak.UserEnabled(keycloak.Realm, "asmith"); err != nil || !on {
					t.Errorf("asmith not re-enabled at recovery: %v %v", on, err)
				}
			},
		},
		{
			playbook: "data-exfiltration", asset: "database", severity: "critical",
			labels: map[string]string{"realm": keycloak.Realm, "client_id": keycloak.APIClientID, "personal_data": "true"},
			check: func(t *testing.T, p *testplatform.Platform, before pve.StateSnapshot) {
				// The database's own firewall is DROP with one scoped rule: recovery
				// must bring back exactly that, not "no firewall".
				was, now := containerByName(t, before, "database"), containerByName(t, p.Lab.PVE.State(), "database")
				if !equalJSON(was.Firewall, now.Firewall) || was.Config["net0"] != now.Config["net0"] || was.Config["tags"] != now.Config["tags"] {
					t.Errorf("database not restored:\nbefore %s %v\nafter  %s %v", mustJSON(was.Firewall), was.Config, mustJSON(now.Firewall), now.Config)
				}
				gc := gocloak.NewClient(p.Lab.Keycloak.URL())
				if _, err := gc.LoginClient(context.Background(), keycloak.APIClientID, keycloak.APIClientSecret, keycloak.Realm); err == nil {
					t.Errorf("iru-api's old client secret still works after rotation")
				}
			},
		},
		{
			playbook: "key-compromise", asset: "iru-services", severity: "critical",
			labels: map[string]string{"token_id": "iru@pve!responder"},
			env: func(t *testing.T) []string {
				// The intake's detectors file, whose API keys the playbook rotates.
				f := filepath.Join(t.TempDir(), "detectors.yaml")
				err := detectorsfile.Write(f, detectorsfile.File{Detectors: []intakeauth.Detector{{Name: "falco", Format: "falco",
					APIKeys: []intakeauth.APIKey{{ID: "k1", SHA256: intakeauth.HashKey("k1", "iru_old-key")}}}}})
				if err != nil {
					t.Fatal(err)
				}
				return []string{"IRU_INTAKE_DETECTORS_FILE=" + f}
			},
			check: func(t *testing.T, p *testplatform.Platform, before pve.StateSnapshot) {
				kek, err := p.Host.Keys().CurrentKEK(context.Background())
				if err != nil || kek == "iru-kek-v1" {
					t.Errorf("the KEK was not rotated: current %q %v", kek, err)
				}
				var tokens []string
				for _, u := range p.Lab.PVE.State().Users {
					if u.UserID == "iru@pve" {
						tokens = u.Tokens
					}
				}
				if slices.Contains(tokens, "responder") || len(tokens) == 0 {
					t.Errorf("the PVE token was not rotated: tokens %v", tokens)
				}
				// Every key change is also in the ledger's daily chain.
				var changes []string
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
					changes = changes[:0]
					_ = p.Host.Stores().Ledger.Store().Entries(context.Background(), accesslog.Chain(time.Now()), func(e ledger.Entry) error {
						if e.Action == accesslog.ActionKeyChange {
							changes = append(changes, e.Target)
						}
						return nil
					})
					if len(changes) >= 3 {
						break
					}
				}
				for _, want := range []string{"keys.rotate_kek", "pve.rotate_token", "keys.rotate_intake_keys"} {
					if !slices.ContainsFunc(changes, func(c string) bool { return strings.Contains(c, want) }) {
						t.Errorf("no key.change entry for %s in the ledger: %v", want, changes)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.playbook, func(t *testing.T) {
			var env []string
			if tt.env != nil {
				env = tt.env(t)
			}
			p := testplatform.New(t, testplatform.Options{Plain: os.Getenv("IRU_RECORD_HISTORIES") != "", Env: env})
			// The account has a live session the playbook must end.
			if u := tt.labels["username"]; u != "" {
				gc := gocloak.NewClient(p.Lab.Keycloak.URL())
				if _, err := gc.Login(context.Background(), keycloak.ConsoleClientID, "", keycloak.Realm, u, keycloak.UserPassword); err != nil {
					t.Fatal(err)
				}
			}
			before := p.Lab.PVE.State()
			labels := map[string]string{"health_url": p.Lab.HealthURL(tt.asset)}
			for k, v := range tt.labels {
				labels[k] = v
			}
			id := "INC-" + strings.ToUpper(strings.ReplaceAll(tt.playbook, "-", ""))[:8]
			in := workflows.IncidentInput{IncidentID: id, Key: tt.playbook + ":" + tt.asset, Asset: tt.asset, Severity: tt.severity,
				Playbook: tt.playbook, OpenedBy: "system:intake",
				Alerts: []workflows.Alert{{ID: "a1", Fingerprint: "f1", Source: "generic", Rule: tt.playbook, Severity: tt.severity,
					Asset: tt.asset, Summary: tt.playbook + " test", Labels: labels, ObservedAt: time.Now(), ReceivedAt: time.Now()}}}
			wfID := workflows.IncidentWorkflowID(in.Key)
			res := p.RunApprovingAll(t, in)
			if res.State != workflows.StateResolved {
				t.Fatalf("incident ended %s: %s", res.State, res.Reason)
			}
			tt.check(t, p, before)
			rep, err := p.Host.Stores().Ledger.Verify(context.Background(), id, p.Host.Stores().Signer)
			if err != nil || !rep.OK() || rep.CheckpointSeq != rep.HeadSeq {
				t.Fatalf("ledger verify: %+v, %v", rep, err)
			}
			objs, err := p.Host.Stores().Evidence.List(context.Background(), id)
			if err != nil || !hasObject(objs, "report/report.md") {
				t.Fatalf("no report: %v %v", names(objs), err)
			}
			n := len(historyEvents(t, p.Client, wfID))
			t.Logf("%s: %d history events, %d ledger entries, %d evidence objects", tt.playbook, n, rep.Entries, len(objs))
			if os.Getenv("IRU_RECORD_HISTORIES") != "" {
				recordHistory(t, p.Client, wfID, tt.playbook+".json")
			}
		})
	}
}
