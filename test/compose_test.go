//go:build integration

package test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/joho/godotenv"

	"github.com/iru-responder/responder/internal/gctune"
	"github.com/iru-responder/responder/internal/testenv"
)

// composeStack is docker-compose.yml as `docker compose` itself loads it (compose-go: schema
// validation, interpolation from the environment, merge keys, normalisation), with the secrets
// and .env that scripts/compose-secrets.sh writes.
type composeStack struct {
	root    string
	proj    *types.Project
	env     map[string]string // the .env the script wrote
	secrets string            // where the script wrote the secret files
}

// loadCompose runs scripts/compose-secrets.sh --lab into a temporary folder and loads the
// compose file with its .env, all profiles on.
func loadCompose(t *testing.T) *composeStack {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	envFile := filepath.Join(out, ".env")
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "compose-secrets.sh"), "--lab")
	cmd.Env = append(os.Environ(), "IRU_SECRETS_OUT="+out, "IRU_ENV_OUT="+envFile)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compose-secrets.sh: %v\n%s", err, b)
	}
	env, err := godotenv.Read(envFile)
	if err != nil {
		t.Fatal(err)
	}
	proj, err := loadComposeWithEnv(root, env)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load as docker compose loads it: %v", err)
	}
	return &composeStack{root: root, proj: proj, env: env, secrets: out}
}

func loadComposeWithEnv(root string, env map[string]string) (*types.Project, error) {
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnv(list), cli.WithProfiles([]string{"*"}),
		cli.WithInterpolation(true), cli.WithNormalization(true), cli.WithConsistency(true),
		cli.WithResolvedPaths(true))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func (c *composeStack) service(t *testing.T, name string) types.ServiceConfig {
	t.Helper()
	s, ok := c.proj.Services[name]
	if !ok {
		t.Fatalf("no service %s", name)
	}
	return s
}

func envOf(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

func secretNames(s types.ServiceConfig) []string {
	var out []string
	for _, sec := range s.Secrets {
		out = append(out, sec.Source)
	}
	sort.Strings(out)
	return out
}

// mountedSecret reports whether path is /run/secrets/<a secret the service mounts>.
func mountedSecret(s types.ServiceConfig, path string) bool {
	name, ok := strings.CutPrefix(path, "/run/secrets/")
	return ok && slices.Contains(secretNames(s), name)
}

// secretFile returns what compose-secrets.sh wrote for the declared secret name.
func (c *composeStack) secretFile(t *testing.T, name string) string {
	t.Helper()
	sec, ok := c.proj.Secrets[name]
	if !ok {
		t.Fatalf("secret %s is not declared", name)
	}
	rel, err := filepath.Rel(filepath.Join(c.root, "deploy", "secrets"), sec.File)
	if err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("secret %s: file %s is not under deploy/secrets", name, sec.File)
	}
	b, err := os.ReadFile(filepath.Join(c.secrets, rel))
	if err != nil {
		t.Fatalf("secret %s: compose-secrets.sh does not write %s: %v", name, rel, err)
	}
	return string(b)
}

// TestComposeLoads: without the .env that holds the passwords the file does not load (no
// password has a default), and with it it loads as docker compose loads it.
func TestComposeLoads(t *testing.T) {
	c := loadCompose(t)
	if len(c.proj.Services) < 12 {
		t.Fatalf("only %d services", len(c.proj.Services))
	}
	for _, v := range []string{"TEMPORAL_DB_PASSWORD", "KEYCLOAK_DB_PASSWORD", "KEYCLOAK_ADMIN_PASSWORD", "IRU_KC_WORKER_SECRET", "IRU_KC_API_SECRET", "IRU_KC_OPERATOR_SECRET", "IRU_KC_TEMPORAL_UI_SECRET"} {
		env := map[string]string{}
		for k, val := range c.env {
			if k != v {
				env[k] = val
			}
		}
		if _, err := loadComposeWithEnv(c.root, env); err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("without %s: load error %v, want one naming it", v, err)
		}
	}
}

// TestComposeHardening checks every service of the loaded model: pinned images, the seed's
// container controls, published ports, networks, volume sources, secrets written 0600.
func TestComposeHardening(t *testing.T) {
	c := loadCompose(t)
	dockerfile, err := os.ReadFile(filepath.Join(c.root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	readmeAll, err := os.ReadFile(filepath.Join(c.root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, readme, ok := strings.Cut(string(readmeAll), "## Deploying with docker compose")
	if !ok {
		t.Fatal("README has no \"Deploying with docker compose\" section")
	}
	readme, _, _ = strings.Cut(readme, "\n## ")
	// A version tag, or MinIO's dated release tags (RELEASE.2025-04-22T22-12-26Z).
	pinned := regexp.MustCompile(`^[a-z0-9./_-]+:([0-9][0-9A-Za-z.+_-]*|RELEASE\.[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z)$`)
	wantPublished := map[string]bool{"api": true, "temporal-ui": true, "codec": true, "keycloak": true}
	// Variables that hold a secret in the environment because the image reads it from nowhere
	// else; each must come from .env, never from the file.
	fromEnvFile := map[string]string{
		"temporal/POSTGRES_PWD": "TEMPORAL_DB_PASSWORD", "temporal-schema/SQL_PASSWORD": "TEMPORAL_DB_PASSWORD",
		"keycloak/KC_DB_PASSWORD": "KEYCLOAK_DB_PASSWORD", "keycloak/KEYCLOAK_ADMIN_PASSWORD": "KEYCLOAK_ADMIN_PASSWORD",
		"keycloak/IRU_KC_WORKER_SECRET": "IRU_KC_WORKER_SECRET", "keycloak/IRU_KC_API_SECRET": "IRU_KC_API_SECRET",
		"keycloak/IRU_KC_OPERATOR_SECRET": "IRU_KC_OPERATOR_SECRET", "keycloak/IRU_KC_TEMPORAL_UI_SECRET": "IRU_KC_TEMPORAL_UI_SECRET",
		"temporal-ui/TEMPORAL_AUTH_CLIENT_SECRET": "IRU_KC_TEMPORAL_UI_SECRET",
	}
	secretish := regexp.MustCompile(`(?i)(PASSWORD|SECRET|PWD|_DSN)$`)
	for name, s := range c.proj.Services {
		t.Run(name, func(t *testing.T) {
			switch {
			case s.Build != nil:
				if !strings.Contains(string(dockerfile), " AS "+s.Build.Target+"\n") {
					t.Errorf("build target %q is not a stage of the Dockerfile", s.Build.Target)
				}
			case !pinned.MatchString(s.Image):
				t.Errorf("image %q is not pinned to a version", s.Image)
			}
			if !s.ReadOnly {
				t.Error("root filesystem is not read-only")
			}
			if !slices.Contains(s.CapDrop, "ALL") {
				t.Error("capabilities not dropped (cap_drop: [ALL])")
			}
			if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Error("no-new-privileges is not set")
			}
			if s.User == "" || s.User == "root" || s.User == "0" || strings.HasPrefix(s.User, "0:") {
				t.Errorf("runs as root (user %q)", s.User)
			}
			if s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.MemoryBytes <= 0 || s.Deploy.Resources.Limits.NanoCPUs <= 0 {
				t.Error("no CPU and memory limits")
			}
			if len(s.Ports) > 0 != wantPublished[name] {
				t.Errorf("publishes %v; only %v may publish ports", s.Ports, wantPublished)
			}
			for _, p := range s.Ports {
				if !strings.Contains(readme, "`"+p.Published+"`") && !strings.Contains(readme, ":"+p.Published+"`") {
					t.Errorf("published port %s is not in the README", p.Published)
				}
				if name != "api" && p.HostIP != "127.0.0.1" {
					t.Errorf("publishes %s on %q beyond loopback", p.Published, p.HostIP)
				}
			}
			if _, onEdge := s.Networks["edge"]; len(s.Ports) > 0 && !onEdge {
				t.Error("publishes ports but is not on the edge network")
			}
			if len(s.Networks) == 0 {
				t.Error("on no network")
			}
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeBind {
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("volume source %s: %v", v.Source, err)
					}
					if !v.ReadOnly {
						t.Errorf("bind mount %s is writable", v.Source)
					}
				}
			}
			for k := range s.Environment {
				if !secretish.MatchString(k) || strings.HasSuffix(k, "_FILE") {
					continue
				}
				envVar, ok := fromEnvFile[name+"/"+k]
				if !ok {
					t.Errorf("%s holds a secret in the environment; mount a secret and use %s_FILE", k, k)
					continue
				}
				if got := envOf(s, k); got == "" || got != c.env[envVar] {
					t.Errorf("%s is not the .env's %s", k, envVar)
				}
			}
		})
	}
	if !c.proj.Networks["core"].Internal {
		t.Error("the core network is not internal")
	}
	for name, sec := range c.proj.Secrets {
		rel, err := filepath.Rel(filepath.Join(c.root, "deploy", "secrets"), sec.File)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("secret %s: %s is not under deploy/secrets", name, sec.File)
			continue
		}
		fi, err := os.Stat(filepath.Join(c.secrets, rel))
		if err != nil {
			t.Errorf("secret %s: compose-secrets.sh does not write %s", name, rel)
			continue
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("secret %s is readable by others (%v)", name, fi.Mode())
		}
	}
}

// TestComposeSecretsLeastPrivilege: each secret is mounted into exactly the services that use it.
func TestComposeSecretsLeastPrivilege(t *testing.T) {
	c := loadCompose(t)
	want := map[string][]string{
		"postgres_password":        {"postgres"},
		"pg_temporal_password":     {"postgres"},
		"pg_keycloak_password":     {"postgres"},
		"pg_ledger_owner_password": {"postgres"},
		"pg_ledger_app_password":   {"postgres"},
		"postgres_tls_cert":        {"postgres"},
		"postgres_tls_key":         {"postgres"},
		"postgres_ca":              {"api", "keycloak", "ledger-migrate", "temporal", "temporal-schema", "worker"},
		"ledger_owner_dsn":         {"ledger-migrate"},
		"ledger_app_dsn":           {"api", "worker"},
		"hsm_pin":                  {"api", "codec", "hsm-init", "worker"},
		"hsm_so_pin":               {"hsm-init"},
		"pve_token_secret":         {"api", "worker"},
		"keycloak_worker_secret":   {"worker"},
		"keycloak_api_secret":      {"api"},
		"keycloak_operator_secret": {"temporal-setup"},
		"minio_root_password":      {"minio", "minio-setup"},
		"minio_evidence_secret":    {"api", "minio-setup", "worker"},
		"api_tls_cert":             {"api"},
		"api_tls_key":              {"api"},
		"temporal_ca":              {"api", "temporal", "temporal-setup", "temporal-ui", "worker"},
		"temporal_frontend_cert":   {"temporal"},
		"temporal_frontend_key":    {"temporal"},
		"temporal_internode_cert":  {"temporal"},
		"temporal_internode_key":   {"temporal"},
		"temporal_worker_cert":     {"worker"},
		"temporal_worker_key":      {"worker"},
		"temporal_api_cert":        {"api"},
		"temporal_api_key":         {"api"},
		"temporal_operator_cert":   {"temporal-setup"},
		"temporal_operator_key":    {"temporal-setup"},
		"temporal_ui_cert":         {"temporal-ui"},
		"temporal_ui_key":          {"temporal-ui"},
	}
	got := map[string][]string{}
	for name, s := range c.proj.Services {
		for _, sec := range secretNames(s) {
			got[sec] = append(got[sec], name)
		}
	}
	for name := range c.proj.Secrets {
		if _, ok := want[name]; !ok {
			t.Errorf("secret %s is declared but this test does not say who may use it", name)
		}
	}
	for name, users := range want {
		sort.Strings(got[name])
		if !slices.Equal(got[name], users) {
			t.Errorf("secret %s is mounted into %v, want %v", name, got[name], users)
		}
	}
	// And what a service points at under /run/secrets is one of its own.
	for name, s := range c.proj.Services {
		for k := range s.Environment {
			if v := envOf(s, k); strings.HasPrefix(v, "/run/secrets/") && !mountedSecret(s, v) {
				t.Errorf("%s: %s=%s is not a secret the service mounts", name, k, v)
			}
		}
	}
}

// TestComposeTemporal: the server runs the cluster mode's configuration and certificate layout,
// with TLS and client certificates on the frontend and authorization from the realm's keys; the
// clients present their own certificates and tokens; the Web UI cannot write.
func TestComposeTemporal(t *testing.T) {
	c := loadCompose(t)
	server := c.service(t, "temporal")
	issuer := c.issuer(t)

	t.Run("the cluster mode's server configuration", func(t *testing.T) {
		cfgDir := filepath.Join(c.root, "deploy", "temporal", "config")
		var mounted bool
		for _, v := range server.Volumes {
			if v.Source == cfgDir && v.Target == "/etc/temporal/config" && v.ReadOnly {
				mounted = true
			}
		}
		if !mounted {
			t.Fatalf("deploy/temporal/config is not mounted read-only at /etc/temporal/config: %+v", server.Volumes)
		}
		if got := strings.Join(server.Entrypoint, " "); got != "temporal-server --root /etc/temporal --config config --env iru start" {
			t.Errorf("entrypoint %q does not run config/iru.yaml", got)
		}
		raw, err := os.ReadFile(filepath.Join(cfgDir, "iru.yaml"))
		if err != nil {
			t.Fatalf("the server configuration (the cluster branch's deploy/temporal/config/iru.yaml): %v", err)
		}
		for _, want := range []string{"requireClientAuth: true", "jwtKeyProvider:", "permissionsClaimName: permissions", "authorizer: default", "claimMapper: default"} {
			if !strings.Contains(string(raw), want) {
				t.Errorf("server configuration lacks %q", want)
			}
		}
		// Every variable the template requires is set, each file is a secret the server mounts.
		for _, v := range []string{"TEMPORAL_TLS_CA", "TEMPORAL_TLS_FRONTEND_CERT", "TEMPORAL_TLS_FRONTEND_KEY", "TEMPORAL_TLS_INTERNODE_CERT", "TEMPORAL_TLS_INTERNODE_KEY"} {
			if !strings.Contains(string(raw), `"`+v+`"`) {
				t.Errorf("the server configuration no longer reads %s", v)
			}
			if !mountedSecret(server, envOf(server, v)) {
				t.Errorf("%s=%q is not a secret the server mounts", v, envOf(server, v))
			}
		}
		if got := envOf(server, "TEMPORAL_JWKS_URL"); got != issuer+"/protocol/openid-connect/certs" {
			t.Errorf("TEMPORAL_JWKS_URL = %q, want the realm's JWKS at the issuer %s", got, issuer)
		}
		if ip := envOf(server, "BIND_ON_IP"); server.Networks["core"] == nil || server.Networks["core"].Ipv4Address != ip {
			t.Errorf("BIND_ON_IP %q is not the server's fixed address on core", ip)
		}
	})

	t.Run("certificates in internal/pki's layout", func(t *testing.T) {
		layout := map[string]string{
			"temporal_ca": "ca.pem", "temporal_frontend_cert": "frontend.pem", "temporal_frontend_key": "frontend-key.pem",
			"temporal_internode_cert": "internode.pem", "temporal_internode_key": "internode-key.pem",
			"temporal_worker_cert": "worker.pem", "temporal_worker_key": "worker-key.pem",
			"temporal_api_cert": "api.pem", "temporal_api_key": "api-key.pem",
			"temporal_operator_cert": "operator.pem", "temporal_operator_key": "operator-key.pem",
		}
		for sec, file := range layout {
			if got := c.proj.Secrets[sec].File; got != filepath.Join(c.root, "deploy", "secrets", "temporal-pki", file) {
				t.Errorf("secret %s is %s, want deploy/secrets/temporal-pki/%s", sec, got, file)
			}
			if !strings.Contains(c.secretFile(t, sec), "-----BEGIN ") {
				t.Errorf("secret %s is not PEM", sec)
			}
		}
	})

	for _, tt := range []struct{ service, cert, key, client, secret string }{
		{"worker", "temporal_worker_cert", "temporal_worker_key", "iru-worker", "keycloak_worker_secret"},
		{"api", "temporal_api_cert", "temporal_api_key", "iru-api", "keycloak_api_secret"},
	} {
		t.Run(tt.service+" presents its own certificate and token", func(t *testing.T) {
			s := c.service(t, tt.service)
			checks := map[string]string{
				"IRU_TEMPORAL_ADDRESS": "temporal:7233", "IRU_TEMPORAL_NAMESPACE": "default",
				"IRU_TEMPORAL_TLS_CA": "/run/secrets/temporal_ca", "IRU_TEMPORAL_TLS_SERVER_NAME": "frontend.temporal.iru",
				"IRU_TEMPORAL_TLS_CERT": "/run/secrets/" + tt.cert, "IRU_TEMPORAL_TLS_KEY": "/run/secrets/" + tt.key,
				"IRU_TEMPORAL_TOKEN_URL": issuer + "/protocol/openid-connect/token", "IRU_TEMPORAL_CLIENT_ID": tt.client,
				"IRU_TEMPORAL_CLIENT_SECRET_FILE": "/run/secrets/" + tt.secret,
			}
			for k, want := range checks {
				if got := envOf(s, k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}

	t.Run("namespace set up by the operator", func(t *testing.T) {
		s := c.service(t, "temporal-setup")
		script := strings.Join(s.Command, " ")
		for _, want := range []string{"iru-operator:", "keycloak_operator_secret", "authorization=Bearer", "namespace create -n default"} {
			if !strings.Contains(script, want) {
				t.Errorf("setup script lacks %q", want)
			}
		}
		if envOf(s, "TEMPORAL_TLS_CERT") != "/run/secrets/temporal_operator_cert" || envOf(s, "TOKEN_URL") != issuer+"/protocol/openid-connect/token" {
			t.Errorf("setup does not present the operator's certificate and token")
		}
		for _, sa := range []string{"IruSeverity=Keyword", "IruPhase=Keyword", "IruPlaybook=Keyword", "IruAsset=Keyword", "IruDrill=Bool"} {
			if !strings.Contains(script, sa) {
				t.Errorf("setup does not register %s", sa)
			}
		}
	})

	t.Run("Web UI: read only, the user's own login, mTLS", func(t *testing.T) {
		ui := c.service(t, "temporal-ui")
		checks := map[string]string{
			"TEMPORAL_DISABLE_WRITE_ACTIONS": "true", "TEMPORAL_AUTH_ENABLED": "true",
			"TEMPORAL_AUTH_PROVIDER_URL": issuer, "TEMPORAL_AUTH_CLIENT_ID": "temporal-ui",
			"TEMPORAL_TLS_CA": "/run/secrets/temporal_ca", "TEMPORAL_TLS_CERT": "/run/secrets/temporal_ui_cert",
			"TEMPORAL_TLS_KEY": "/run/secrets/temporal_ui_key", "TEMPORAL_DEFAULT_NAMESPACE": "default",
		}
		for k, want := range checks {
			if got := envOf(ui, k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	})
}

// issuer is the one issuer URL of the stack, checked to be what every verifier expects.
func (c *composeStack) issuer(t *testing.T) string {
	t.Helper()
	kc := c.service(t, "keycloak")
	base := envOf(kc, "KC_HOSTNAME_URL")
	return strings.TrimRight(base, "/") + "/realms/iru"
}

// TestComposeIssuer: Keycloak's hostname fixes the tokens' issuer to one URL, the one the API
// server, the codec server, the Web UI and Temporal verify, reachable by that same URL from the
// host (published port) and inside the stack (service name and listening port).
func TestComposeIssuer(t *testing.T) {
	c := loadCompose(t)
	kc := c.service(t, "keycloak")
	issuer := c.issuer(t)
	u, err := url.Parse(envOf(kc, "KC_HOSTNAME_URL"))
	if err != nil || u.Host == "" {
		t.Fatalf("KC_HOSTNAME_URL %q", envOf(kc, "KC_HOSTNAME_URL"))
	}
	if u.Hostname() != "keycloak" {
		t.Errorf("issuer host %q is not the keycloak service's name", u.Hostname())
	}
	if envOf(kc, "KC_HTTP_PORT") != u.Port() {
		t.Errorf("Keycloak listens on %s, the issuer names port %s", envOf(kc, "KC_HTTP_PORT"), u.Port())
	}
	var published bool
	for _, p := range kc.Ports {
		if p.Published == u.Port() && p.Target == mustPort(t, u.Port()) && p.HostIP == "127.0.0.1" {
			published = true
		}
	}
	if !published {
		t.Errorf("Keycloak is not published on 127.0.0.1:%s→%s, so the host cannot use the issuer URL: %+v", u.Port(), u.Port(), kc.Ports)
	}
	for _, name := range []string{"api", "worker", "codec"} {
		if got := envOf(c.service(t, name), "IRU_OIDC_ISSUER"); got != issuer {
			t.Errorf("%s verifies issuer %q, tokens carry %q", name, got, issuer)
		}
	}
	if got := envOf(c.service(t, "worker"), "IRU_KEYCLOAK_URL"); got != strings.TrimSuffix(issuer, "/realms/iru") {
		t.Errorf("worker's IRU_KEYCLOAK_URL %q is not the issuer's base", got)
	}
	// The realm the stack imports, and a value for each of its placeholders.
	var imported bool
	for _, v := range kc.Volumes {
		if v.Source == filepath.Join(c.root, "deploy", "keycloak", "iru-realm.json") && v.Target == "/opt/keycloak/data/import/iru-realm.json" {
			imported = true
		}
	}
	if !imported {
		t.Error("Keycloak does not import deploy/keycloak/iru-realm.json")
	}
	realm, err := os.ReadFile(filepath.Join(c.root, "deploy", "keycloak", "iru-realm.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`).FindAllStringSubmatch(string(realm), -1) {
		if envOf(kc, m[1]) == "" {
			t.Errorf("the realm file's %s is not given to Keycloak", m[1])
		}
	}
}

func mustPort(t *testing.T, p string) uint32 {
	t.Helper()
	var n uint32
	for _, r := range p {
		if r < '0' || r > '9' {
			t.Fatalf("port %q", p)
		}
		n = n*10 + uint32(r-'0')
	}
	return n
}

// TestComposePostgres: one database and role per user, the ledger migrated by its owner and
// used through the append-only role, TLS on every connection.
func TestComposePostgres(t *testing.T) {
	c := loadCompose(t)
	pg := c.service(t, "postgres")
	cmd := strings.Join(pg.Command, " ")
	for _, want := range []string{"ssl=on", "ssl_cert_file=/run/secrets/postgres_tls_cert", "hba_file=/etc/iru/pg_hba.conf", "password_encryption=scram-sha-256"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("postgres command lacks %s", want)
		}
	}
	hba, err := os.ReadFile(filepath.Join(c.root, "deploy", "postgres", "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// Over the network only hostssl lines accept; everything else is refused.
	var sawReject bool
	for _, line := range strings.Split(string(hba), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "host", "hostnossl":
			if f[len(f)-1] != "reject" {
				t.Errorf("pg_hba.conf accepts a connection without TLS: %q", line)
			}
			sawReject = true
		case "hostssl":
			if f[len(f)-1] != "scram-sha-256" || f[1] == "all" || f[2] == "all" {
				t.Errorf("pg_hba.conf: %q is not one role's own database with SCRAM", line)
			}
		}
	}
	if !sawReject {
		t.Error("pg_hba.conf does not end with a reject for other connections")
	}
	initdb, err := os.ReadFile(filepath.Join(c.root, "deploy", "postgres", "initdb.d", "10-roles.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"CREATE DATABASE temporal OWNER temporal", "CREATE DATABASE temporal_visibility OWNER temporal",
		"CREATE DATABASE keycloak OWNER keycloak", "CREATE DATABASE iru_ledger OWNER iru_ledger_owner",
		"CREATE ROLE iru_ledger_app LOGIN", "FROM PUBLIC",
	} {
		if !strings.Contains(string(initdb), want) {
			t.Errorf("initdb script lacks %q", want)
		}
	}

	dsnUser := func(secret string) (user, db string, q url.Values) {
		u, err := url.Parse(strings.TrimSpace(c.secretFile(t, secret)))
		if err != nil {
			t.Fatalf("%s: %v", secret, err)
		}
		return u.User.Username(), strings.TrimPrefix(u.Path, "/"), u.Query()
	}
	t.Run("ledger", func(t *testing.T) {
		mig := c.service(t, "ledger-migrate")
		if strings.Join(mig.Command, " ") != "ledger migrate" || envOf(mig, "IRU_LEDGER_DSN_FILE") != "/run/secrets/ledger_owner_dsn" {
			t.Errorf("ledger-migrate does not run 'ledger migrate' with the owner's DSN")
		}
		owner, db, q := dsnUser("ledger_owner_dsn")
		if owner != "iru_ledger_owner" || db != "iru_ledger" || q.Get("sslmode") != "verify-full" || q.Get("sslrootcert") != "/run/secrets/postgres_ca" {
			t.Errorf("owner DSN: user %s db %s query %v", owner, db, q)
		}
		app, db, q := dsnUser("ledger_app_dsn")
		if app != "iru_ledger_app" || db != "iru_ledger" || q.Get("sslmode") != "verify-full" {
			t.Errorf("app DSN: user %s db %s query %v", app, db, q)
		}
		for _, name := range []string{"worker", "api"} {
			s := c.service(t, name)
			if envOf(s, "IRU_LEDGER_DSN_FILE") != "/run/secrets/ledger_app_dsn" || envOf(s, "IRU_LEDGER_APP_ROLE") != app || envOf(s, "IRU_LEDGER_DRIVER") != "postgres" {
				t.Errorf("%s does not log in to the ledger as %s", name, app)
			}
			if d, ok := s.DependsOn["ledger-migrate"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s does not wait for the ledger migration", name)
			}
		}
	})
	t.Run("temporal", func(t *testing.T) {
		s := c.service(t, "temporal")
		if envOf(s, "POSTGRES_USER") != "temporal" || envOf(s, "SQL_TLS_ENABLED") != "true" || !mountedSecret(s, envOf(s, "SQL_CA")) {
			t.Errorf("temporal: user %q, TLS %q, CA %q", envOf(s, "POSTGRES_USER"), envOf(s, "SQL_TLS_ENABLED"), envOf(s, "SQL_CA"))
		}
		schema := strings.Join(c.service(t, "temporal-schema").Command, " ")
		if !strings.Contains(schema, "-u temporal") || !strings.Contains(schema, "--tls --tls-ca-file /run/secrets/postgres_ca") {
			t.Errorf("schema job does not connect as temporal over TLS: %s", schema)
		}
	})
	t.Run("keycloak", func(t *testing.T) {
		s := c.service(t, "keycloak")
		u := envOf(s, "KC_DB_URL")
		if envOf(s, "KC_DB_USERNAME") != "keycloak" || !strings.Contains(u, "/keycloak?") || !strings.Contains(u, "sslmode=verify-full") || !strings.Contains(u, "sslrootcert=/run/secrets/postgres_ca") {
			t.Errorf("keycloak: user %q url %q", envOf(s, "KC_DB_USERNAME"), u)
		}
	})
	t.Run("no application uses the superuser", func(t *testing.T) {
		for name, s := range c.proj.Services {
			if name == "postgres" {
				continue
			}
			for k := range s.Environment {
				if v := envOf(s, k); strings.Contains(k, "USER") && v == "postgres" {
					t.Errorf("%s: %s=postgres", name, k)
				}
			}
		}
	})
}

// TestComposeKeycloakSupportsRealm: the realm file's protocol mappers must exist in the
// Keycloak the compose file runs. The amr mapper (oidc-amr-mapper) arrived in Keycloak 24;
// an older server imports the realm but issues tokens without amr, and every approval of a
// risky step is then refused with mfa_required.
func TestComposeKeycloakSupportsRealm(t *testing.T) {
	c := loadCompose(t)
	kc := c.service(t, "keycloak")
	_, tag, ok := strings.Cut(kc.Image, ":")
	if !ok {
		t.Fatalf("keycloak image %q has no tag", kc.Image)
	}
	major, err := strconv.Atoi(strings.SplitN(tag, ".", 2)[0])
	if err != nil {
		t.Fatalf("keycloak image tag %q: %v", tag, err)
	}
	realm, err := os.ReadFile(filepath.Join(c.root, "deploy", "keycloak", "iru-realm.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(realm), `"oidc-amr-mapper"`) && major < 24 {
		t.Errorf("the realm uses oidc-amr-mapper (Keycloak 24+), compose runs %s", kc.Image)
	}
}

// TestComposeEvidenceStore: the worker and the API server keep evidence on the MinIO service, as the
// platform's own S3 user, after the one-shot setup made the bucket with Object Lock and that user.
func TestComposeEvidenceStore(t *testing.T) {
	c := loadCompose(t)
	setup := c.service(t, "minio-setup")
	script, err := os.ReadFile(filepath.Join(c.root, "deploy", "minio", "setup.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mc mb --ignore-existing --with-lock iru/iru-evidence", "mc admin user add iru iru-evidence", "/etc/iru/evidence-policy.json"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("deploy/minio/setup.sh lacks %q", want)
		}
	}
	if _, ok := c.service(t, "minio").DependsOn["minio-setup"]; ok {
		t.Error("minio depends on its own setup")
	}
	if _, ok := setup.DependsOn["minio"]; !ok {
		t.Error("minio-setup does not wait for minio")
	}
	for _, name := range []string{"worker", "api"} {
		s := c.service(t, name)
		for k, want := range map[string]string{
			"IRU_EVIDENCE_BACKEND": "s3", "IRU_EVIDENCE_S3_ENDPOINT": "minio:9000", "IRU_EVIDENCE_S3_BUCKET": "iru-evidence",
			"IRU_EVIDENCE_S3_ACCESS_KEY": "iru-evidence", "IRU_EVIDENCE_S3_SECRET_KEY_FILE": "/run/secrets/minio_evidence_secret",
		} {
			if got := envOf(s, k); got != want {
				t.Errorf("%s: %s=%q, want %q", name, k, got, want)
			}
		}
		if d, ok := s.DependsOn["minio-setup"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s does not wait for minio-setup to complete", name)
		}
	}
	if c.secretFile(t, "minio_evidence_secret") == "" || c.secretFile(t, "minio_root_password") == "" {
		t.Error("compose-secrets.sh writes empty MinIO secrets")
	}
}

// TestComposeMemoryLimits: the Go runtime does not read a container's
// memory limit. The worker holds every waiting incident's workflow state in
// its cache; the API server and the Temporal server grow with their load.
// Each one's GOMEMLIMIT must be under its container's limit (the collector
// works harder as it nears it, instead of the container being killed) and
// not far under it (memory it may not use). Under that limit the worker and
// the API server raise GOGC themselves (internal/gctune); the Temporal
// server, a stock image, gets the setting the platform gives every server
// it starts (gctune.ServerEnv).
func TestComposeMemoryLimits(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"worker", "api", "temporal"} {
		t.Run(name, func(t *testing.T) {
			s := c.service(t, name)
			if s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.MemoryBytes == 0 {
				t.Fatalf("%s: no memory limit in deploy.resources.limits", name)
			}
			container := int64(s.Deploy.Resources.Limits.MemoryBytes)
			v := envOf(s, "GOMEMLIMIT")
			m := regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB)?$`).FindStringSubmatch(v)
			if m == nil {
				t.Fatalf("%s: GOMEMLIMIT=%q: want a size as the Go runtime reads it (such as 900MiB)", name, v)
			}
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			n <<= map[string]int{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30}[m[2]]
			if n >= container || n < container*3/4 {
				t.Errorf("%s: GOMEMLIMIT=%s (%d MiB) against a container limit of %d MiB: want between 75%% and 100%% of it", name, v, n>>20, container>>20)
			}
		})
	}
	temporal := c.service(t, "temporal")
	for _, kv := range gctune.ServerEnv() {
		k, want, _ := strings.Cut(kv, "=")
		if got := envOf(temporal, k); got != want {
			t.Errorf("temporal: %s=%q, want %q as every Temporal server the platform starts (gctune.ServerEnv)", k, got, want)
		}
	}
}
