//go:build integration

package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	temporaldeploy "github.com/iru-responder/responder/deploy/temporal"
	"github.com/iru-responder/responder/internal/cluster"
	"github.com/iru-responder/responder/internal/testenv"
)

func tool(t *testing.T, env, name string) string {
	t.Helper()
	p, err := testenv.ToolPath(env, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing (run scripts/tools.sh): %v", name, err)
	}
	return p
}

// renderEnv is a complete environment for the configuration template.
func renderEnv() map[string]string {
	return map[string]string{
		"TEMPORAL_TLS_CA": "/pki/ca.pem", "TEMPORAL_TLS_FRONTEND_CERT": "/pki/frontend.pem", "TEMPORAL_TLS_FRONTEND_KEY": "/pki/frontend-key.pem",
		"TEMPORAL_TLS_INTERNODE_CERT": "/pki/internode.pem", "TEMPORAL_TLS_INTERNODE_KEY": "/pki/internode-key.pem",
		"TEMPORAL_JWKS_URL": "http://keycloak:8080/realms/iru/protocol/openid-connect/certs",
		"POSTGRES_SEEDS":    "postgres", "POSTGRES_USER": "iru", "POSTGRES_PWD": "pw",
	}
}

func render(t *testing.T, env map[string]string) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "config")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, temporaldeploy.Env+".yaml"), temporaldeploy.ServerConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool(t, "IRU_TEMPORAL_SERVER_BIN", "temporal-server"), "--config", dir, "--env", temporaldeploy.Env, "render-config")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// TestServerConfigRendersHardened renders deploy/temporal/config/iru.yaml
// with the server's own loader (render-config) and checks the security
// settings in the result, and that a missing certificate or key set is a
// start-up error naming the variable rather than a server without it.
func TestServerConfigRendersHardened(t *testing.T) {
	out, err := render(t, renderEnv())
	if err != nil {
		t.Fatalf("render: %v\n%s", err, out)
	}
	var cfg struct {
		Global struct {
			TLS struct {
				Internode, Frontend struct {
					Server struct {
						RequireClientAuth bool     `yaml:"requireClientAuth"`
						ClientCAFiles     []string `yaml:"clientCaFiles"`
						CertFile          string   `yaml:"certFile"`
					} `yaml:"server"`
				}
			} `yaml:"tls"`
			Authorization struct {
				JWTKeyProvider struct {
					KeySourceURIs []string `yaml:"keySourceURIs"`
				} `yaml:"jwtKeyProvider"`
				PermissionsClaimName string `yaml:"permissionsClaimName"`
				Authorizer           string `yaml:"authorizer"`
				ClaimMapper          string `yaml:"claimMapper"`
			} `yaml:"authorization"`
		} `yaml:"global"`
		Services map[string]struct {
			RPC struct {
				BindOnIP string `yaml:"bindOnIP"`
				GRPCPort int    `yaml:"grpcPort"`
			} `yaml:"rpc"`
		} `yaml:"services"`
		PublicClient struct {
			HostPort string `yaml:"hostPort"`
		} `yaml:"publicClient"`
	}
	body := out // render-config prints the loaded configuration as YAML
	if err := yaml.Unmarshal([]byte(body), &cfg); err != nil {
		t.Fatalf("parse rendered config: %v\n%s", err, out)
	}
	g := cfg.Global
	checks := []struct {
		what string
		ok   bool
	}{
		{"frontend requires client certificates", g.TLS.Frontend.Server.RequireClientAuth},
		{"frontend trusts the CA", len(g.TLS.Frontend.Server.ClientCAFiles) == 1 && g.TLS.Frontend.Server.ClientCAFiles[0] == "/pki/ca.pem"},
		{"internode requires client certificates", g.TLS.Internode.Server.RequireClientAuth},
		{"internode certificate", g.TLS.Internode.Server.CertFile == "/pki/internode.pem"},
		{"JWKS", len(g.Authorization.JWTKeyProvider.KeySourceURIs) == 1 && g.Authorization.JWTKeyProvider.KeySourceURIs[0] == renderEnv()["TEMPORAL_JWKS_URL"]},
		{"permissions claim", g.Authorization.PermissionsClaimName == "permissions"},
		{"default authorizer", g.Authorization.Authorizer == "default"},
		{"default claim mapper", g.Authorization.ClaimMapper == "default"},
		{"internal-frontend for the system worker", cfg.Services["internal-frontend"].RPC.GRPCPort != 0},
		{"no public client (it would bypass internal-frontend)", cfg.PublicClient.HostPort == ""},
	}
	for name, svc := range cfg.Services {
		checks = append(checks, struct {
			what string
			ok   bool
		}{name + " binds 127.0.0.1 by default", svc.RPC.BindOnIP == "127.0.0.1"})
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("rendered config: %s: no\n%s", c.what, body)
		}
	}
	if len(cfg.Services) != 5 {
		t.Errorf("services: %d, want frontend, internal-frontend, history, matching, worker", len(cfg.Services))
	}

	for _, missing := range []string{"TEMPORAL_TLS_CA", "TEMPORAL_TLS_FRONTEND_KEY", "TEMPORAL_TLS_INTERNODE_CERT", "TEMPORAL_JWKS_URL"} {
		t.Run("without "+missing, func(t *testing.T) {
			env := renderEnv()
			delete(env, missing)
			out, err := render(t, env)
			if err == nil || !strings.Contains(out, missing+" is required") {
				t.Fatalf("rendered without %s (err %v):\n%s", missing, err, out)
			}
		})
	}
}

// TestMigrateIsIdempotent creates and migrates two fresh databases on the
// local PostgreSQL, then runs again: the second run creates nothing and
// succeeds. Both durations are logged (cold and warm schema).
func TestMigrateIsIdempotent(t *testing.T) {
	sqlTool := tool(t, "IRU_TEMPORAL_SQL_TOOL", "temporal-sql-tool")
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	db := cluster.DB{Name: "iru_migrate_" + id, VisibilityName: "iru_migrate_vis_" + id}
	t.Cleanup(func() {
		if err := cluster.DropDatabases(context.Background(), db); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	t0 := time.Now()
	res, err := cluster.Migrate(ctx, sqlTool, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	cold := time.Since(t0)
	if len(res.Created) != 2 {
		t.Fatalf("first run created %v, want both databases", res.Created)
	}
	t0 = time.Now()
	res, err = cluster.Migrate(ctx, sqlTool, db, nil)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if len(res.Created) != 0 {
		t.Fatalf("second run created %v", res.Created)
	}
	t.Logf("migrate: cold %s, warm %s", cold.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}
