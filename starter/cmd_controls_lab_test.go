//go:build integration

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	goprox "github.com/luthermonson/go-proxmox"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/lab"
)

// TestControlsCheckAgainstLab runs `starter controls check` with the
// worker's configuration against the lab: the Proxmox VE controls pass
// on the seeded state (exit 0); once port 22 is opened to the world on
// the gateway through the Proxmox API, the check exits 1 and names the
// rule, with its fix.
func TestControlsCheckAgainstLab(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	l, err := lab.Start(ctx, lab.Options{PVEAddr: "127.0.0.1:0", KeycloakAddr: "127.0.0.1:0", StateDir: filepath.Join(dir, "lab")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env := map[string]string{}
	for _, kv := range l.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	kcfg := hsmtest.Config(t)
	// A closed port: Temporal is not reachable, only the checks of what ran are unknown.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	for k, v := range map[string]string{
		config.EnvFileVar: "", "IRU_HSM_MODULE": kcfg.Module, "IRU_HSM_TOKEN_LABEL": kcfg.TokenLabel, "IRU_HSM_PIN": kcfg.PIN,
		"IRU_LEDGER_DRIVER": "sqlite", "IRU_LEDGER_SQLITE_PATH": filepath.Join(dir, "ledger.db"), "IRU_EVIDENCE_DIR": filepath.Join(dir, "evidence"),
		"IRU_CODEC_KEY_DIR": filepath.Join(dir, "codec"), "IRU_SECRETS_DIR": filepath.Join(dir, "secrets"), "IRU_TEMPORAL_ADDRESS": closed,
		"IRU_CONTROLS_FILE": "",
		"IRU_PVE_URL":       env["IRU_PVE_URL"], "IRU_PVE_TOKEN_ID": env["IRU_PVE_TOKEN_ID"], "IRU_PVE_TOKEN_SECRET": env["IRU_PVE_TOKEN_SECRET"],
		"IRU_PVE_CA_FILE": env["IRU_PVE_CA_FILE"], "IRU_KEYCLOAK_URL": env["IRU_KEYCLOAK_URL"], "IRU_KEYCLOAK_REALM": env["IRU_KEYCLOAK_REALM"],
		"IRU_KEYCLOAK_CLIENT_ID": env["IRU_KEYCLOAK_CLIENT_ID"], "IRU_KEYCLOAK_CLIENT_SECRET": env["IRU_KEYCLOAK_CLIENT_SECRET"],
	} {
		t.Setenv(k, v)
	}
	results := filepath.Join(dir, "results.json")
	ids := []string{"net-datacenter-firewall", "net-ingress-ports", "net-lateral-movement", "net-egress", "net-management-isolated",
		"idm-mfa-admins", "idm-token-lifespan", "idm-brute-force", "idm-no-direct-grants", "idm-password-policy"}
	out, err := runCLI(t, append([]string{"controls", "check", "--json", "--results", results}, ids...)...)
	wantExit(t, err, 0, out)
	var res []activities.ControlCheckResult
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &res); err != nil || len(res) != len(ids) {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	for _, r := range res {
		if r.Status != activities.ControlPass {
			t.Errorf("%s: %s %+v", r.Control.ID, r.Status, r.Findings)
		}
	}

	pem, err := os.ReadFile(env["IRU_PVE_CA_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	pc := goprox.NewClient(env["IRU_PVE_URL"], goprox.WithAPIToken(env["IRU_PVE_TOKEN_ID"], env["IRU_PVE_TOKEN_SECRET"]),
		goprox.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}))
	if err := pc.Post(ctx, "/nodes/pve1/lxc/100/firewall/rules", map[string]any{"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22",
		"source": "0.0.0.0/0", "enable": 1}, nil); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "controls", "check", "--results", results, "net-ingress-ports")
	wantExit(t, err, 1, out)
	for _, want := range []string{"net-ingress-ports", "FAIL", "pve/pve1/lxc/100 firewall rule pos 0: api-gateway: ACCEPT in tcp dport 22 from 0.0.0.0/0",
		`[fix: pve.firewall_restore {"node":"pve1","vmid":"100"}]`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
