package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Temporal is how a binary reaches the Temporal frontend.
type Temporal struct {
	Address       string `env:"IRU_TEMPORAL_ADDRESS" envDefault:"127.0.0.1:7233" doc:"Temporal frontend, host:port."`
	Namespace     string `env:"IRU_TEMPORAL_NAMESPACE" envDefault:"default" doc:"Temporal namespace."`
	TLS           bool   `env:"IRU_TEMPORAL_TLS" envDefault:"false" doc:"Use TLS to the frontend (implied by a CA, client certificate or API key)."`
	TLSCA         string `env:"IRU_TEMPORAL_TLS_CA" doc:"PEM file of the CA that signs the frontend certificate; system roots when empty."`
	TLSCert       string `env:"IRU_TEMPORAL_TLS_CERT" doc:"PEM client certificate for mTLS (with IRU_TEMPORAL_TLS_KEY)."`
	TLSKey        string `env:"IRU_TEMPORAL_TLS_KEY" doc:"PEM private key of the mTLS client certificate."`
	TLSServerName string `env:"IRU_TEMPORAL_TLS_SERVER_NAME" doc:"Server name to verify in the frontend certificate, when it differs from the address host."`
	APIKey        string `env:"IRU_TEMPORAL_API_KEY" secret:"true" doc:"Temporal API key (sent as a bearer token; implies TLS)."`
	// Gzip is the SDK's default; the platform's payloads are encrypted by
	// the codec and do not compress, so it only costs CPU on both ends.
	Gzip bool `env:"IRU_TEMPORAL_GZIP" envDefault:"false" doc:"Compress the gRPC calls to Temporal with gzip (the SDK's default). Off: the payloads are encrypted by the codec and do not compress, and gzip costs processor time on the client and the server for every call."`
	// The process's own OAuth2 client-credentials token for Temporal's
	// authorization (a server with global.authorization): sent as
	// `authorization: Bearer` on every call, renewed before it expires.
	TokenURL     string `env:"IRU_TEMPORAL_TOKEN_URL" doc:"OAuth2 token endpoint (Keycloak: <realm URL>/protocol/openid-connect/token) of the client-credentials token sent to Temporal; empty sends none."`
	ClientID     string `env:"IRU_TEMPORAL_CLIENT_ID" doc:"Client id of the client-credentials token sent to Temporal (with IRU_TEMPORAL_TOKEN_URL)."`
	ClientSecret string `env:"IRU_TEMPORAL_CLIENT_SECRET" secret:"true" doc:"Client secret of the client-credentials token sent to Temporal."`
}

// UseToken reports whether calls to Temporal carry a client-credentials token.
func (t Temporal) UseToken() bool { return t.TokenURL != "" }

// UseTLS reports whether the connection to Temporal uses TLS.
func (t Temporal) UseTLS() bool {
	return t.TLS || t.TLSCA != "" || t.TLSCert != "" || t.APIKey != ""
}

func (t Temporal) validate() []error {
	var p []error
	if _, _, err := net.SplitHostPort(t.Address); err != nil {
		p = append(p, fmt.Errorf("IRU_TEMPORAL_ADDRESS=%q: want host:port: %w", t.Address, err))
	}
	if t.Namespace == "" {
		p = append(p, fmt.Errorf("IRU_TEMPORAL_NAMESPACE: must not be empty"))
	}
	if (t.TLSCert == "") != (t.TLSKey == "") {
		p = append(p, fmt.Errorf("IRU_TEMPORAL_TLS_CERT and IRU_TEMPORAL_TLS_KEY: set both or neither"))
	}
	if t.TokenURL != "" {
		if u, err := url.Parse(t.TokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p = append(p, fmt.Errorf("IRU_TEMPORAL_TOKEN_URL=%q: want an http(s) URL", t.TokenURL))
		}
		if t.ClientID == "" || t.ClientSecret == "" {
			p = append(p, fmt.Errorf("IRU_TEMPORAL_TOKEN_URL is set: IRU_TEMPORAL_CLIENT_ID and IRU_TEMPORAL_CLIENT_SECRET are required"))
		}
		if t.APIKey != "" {
			p = append(p, fmt.Errorf("IRU_TEMPORAL_TOKEN_URL and IRU_TEMPORAL_API_KEY: set one or the other (both are bearer tokens)"))
		}
		if !t.UseTLS() {
			p = append(p, fmt.Errorf("IRU_TEMPORAL_TOKEN_URL is set: the token would cross the network in clear; set IRU_TEMPORAL_TLS (or a CA or client certificate)"))
		}
	}
	p = append(p, fileExists("IRU_TEMPORAL_TLS_CA", t.TLSCA)...)
	p = append(p, fileExists("IRU_TEMPORAL_TLS_CERT", t.TLSCert)...)
	p = append(p, fileExists("IRU_TEMPORAL_TLS_KEY", t.TLSKey)...)
	return p
}

// Log configures the structured logger.
type Log struct {
	Level  string `env:"IRU_LOG_LEVEL" envDefault:"info" doc:"Log level: debug, info, warn or error."`
	Format string `env:"IRU_LOG_FORMAT" envDefault:"json" doc:"Log format: json or text."`
}

// SlogLevel returns the level as a slog.Level.
func (l Log) SlogLevel() slog.Level {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.Level)) // validated in validate
	return lv
}

func (l Log) validate() []error {
	var p []error
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		p = append(p, fmt.Errorf("IRU_LOG_LEVEL=%q: want debug, info, warn or error", l.Level))
	}
	if l.Format != "json" && l.Format != "text" {
		p = append(p, fmt.Errorf("IRU_LOG_FORMAT=%q: want json or text", l.Format))
	}
	return p
}

// Worker is the configuration of the worker binary.
type Worker struct {
	Temporal      Temporal
	Log           Log
	HTTPAddr      string        `env:"IRU_WORKER_HTTP_ADDR" envDefault:"127.0.0.1:9091" doc:"Address of the worker's /healthz and /metrics endpoint."`
	ShutdownGrace time.Duration `env:"IRU_WORKER_SHUTDOWN_GRACE" envDefault:"30s" doc:"How long running activities may take to finish after SIGINT/SIGTERM."`
	// WorkflowCacheSize bounds the workflows the worker keeps in memory
	// between their workflow tasks (the SDK's sticky cache, one per process).
	WorkflowCacheSize int `env:"IRU_WORKER_WORKFLOW_CACHE" envDefault:"10000" doc:"How many workflows the worker keeps in memory between their tasks (about 86 KB each while an incident waits: 10,000 waiting incidents, five per asset, took 937 MB of RSS under the compose file's GOMEMLIMIT of 900MiB; set GOMEMLIMIT under the container's memory limit); past it the least recently used are dropped and replay their history at their next task. An approval to a dropped incident waits seconds longer (its first task fails once and is retried), so keep it above the incidents that wait at once."`
}

// Validate implements [Validator].
func (w *Worker) Validate() error {
	p := w.Temporal.validate()
	p = append(p, w.Log.validate()...)
	p = append(p, hostPort("IRU_WORKER_HTTP_ADDR", w.HTTPAddr)...)
	if w.ShutdownGrace < 0 {
		p = append(p, fmt.Errorf("IRU_WORKER_SHUTDOWN_GRACE=%s: must not be negative", w.ShutdownGrace))
	}
	if w.WorkflowCacheSize < 1 {
		p = append(p, fmt.Errorf("IRU_WORKER_WORKFLOW_CACHE=%d: want at least 1", w.WorkflowCacheSize))
	}
	return errs(p)
}

// Server is the configuration of `starter serve`, the API server.
type Server struct {
	Temporal Temporal
	Log      Log
	HTTPAddr string `env:"IRU_API_ADDR" envDefault:"127.0.0.1:8080" doc:"Listen address of the API server."`
	// InternalAddr serves /metrics (and /healthz, /readyz) apart from the
	// public port.
	InternalAddr string `env:"IRU_API_INTERNAL_ADDR" envDefault:"127.0.0.1:9092" doc:"Listen address of the API server's internal listener: Prometheus /metrics, /healthz and /readyz, never on the public port. Keep it on loopback or an internal network."`
}

// Validate implements [Validator].
func (s *Server) Validate() error {
	p := s.Temporal.validate()
	p = append(p, s.Log.validate()...)
	p = append(p, hostPort("IRU_API_ADDR", s.HTTPAddr)...)
	p = append(p, hostPort("IRU_API_INTERNAL_ADDR", s.InternalAddr)...)
	if s.InternalAddr == s.HTTPAddr {
		p = append(p, fmt.Errorf("IRU_API_INTERNAL_ADDR=%s: must differ from IRU_API_ADDR (metrics stay off the public port)", s.InternalAddr))
	}
	return errs(p)
}

// Client is the configuration of the starter's client commands
// (trigger/selftest and the operator commands).
type Client struct {
	Temporal Temporal
	Log      Log
}

// Validate implements [Validator].
func (c *Client) Validate() error {
	return errs(append(c.Temporal.validate(), c.Log.validate()...))
}

// Up is the configuration of `starter up`, the all-in-one local stack.
type Up struct {
	Log          Log
	StateDir     string `env:"IRU_STATE_DIR" envDefault:".iru" doc:"Folder for local state: the dev server's SQLite file, logs, env file."`
	TemporalCLI  string `env:"IRU_TEMPORAL_CLI" envDefault:".tools/bin/temporal" doc:"Path of the pinned Temporal CLI (installed by make tools)."`
	FrontendPort int    `env:"IRU_DEV_FRONTEND_PORT" envDefault:"7233" doc:"Port of the local dev server's frontend (0 picks a free port)."`
	UIPort       int    `env:"IRU_DEV_UI_PORT" envDefault:"8233" doc:"Port of the local dev server's Web UI (0 picks a free port)."`
	WorkerBin    string `env:"IRU_WORKER_BIN" envDefault:"bin/worker" doc:"Path of the worker binary that starter up runs."`
	APIAddr      string `env:"IRU_API_ADDR" envDefault:"127.0.0.1:8080" doc:"Listen address of the API server."`
	WorkerAddr   string `env:"IRU_WORKER_HTTP_ADDR" envDefault:"127.0.0.1:9091" doc:"Address of the worker's /healthz and /metrics endpoint."`
	Lab          Lab
}

// Lab configures the simulators of `starter lab` and `starter up`.
type Lab struct {
	Enabled      bool          `env:"IRU_LAB" envDefault:"true" doc:"starter up runs the lab simulators and points the platform at them; false uses the configured real Proxmox VE and Keycloak."`
	PVEAddr      string        `env:"IRU_LAB_PVE_ADDR" envDefault:"127.0.0.1:8006" doc:"Listen address of the simulated Proxmox VE API (HTTPS)."`
	KeycloakAddr string        `env:"IRU_LAB_KEYCLOAK_ADDR" envDefault:"127.0.0.1:8180" doc:"Listen address of the simulated Keycloak."`
	TaskDuration time.Duration `env:"IRU_LAB_PVE_TASK_DURATION" envDefault:"300ms" doc:"How long simulated Proxmox tasks (snapshot, backup, restore) run."`
}

func (l Lab) validate() []error {
	p := hostPort("IRU_LAB_PVE_ADDR", l.PVEAddr)
	p = append(p, hostPort("IRU_LAB_KEYCLOAK_ADDR", l.KeycloakAddr)...)
	if l.TaskDuration < 0 {
		p = append(p, fmt.Errorf("IRU_LAB_PVE_TASK_DURATION=%s: must not be negative", l.TaskDuration))
	}
	return p
}

// LabOnly is the configuration of `starter lab`.
type LabOnly struct {
	Log      Log
	StateDir string `env:"IRU_STATE_DIR" envDefault:".iru" doc:"Folder for local state: the dev server's SQLite file, logs, env file."`
	Lab      Lab
}

// Validate implements [Validator].
func (l *LabOnly) Validate() error {
	return errs(append(l.Log.validate(), l.Lab.validate()...))
}

// Validate implements [Validator].
func (u *Up) Validate() error {
	p := u.Log.validate()
	if u.StateDir == "" {
		p = append(p, fmt.Errorf("IRU_STATE_DIR: must not be empty"))
	}
	for _, port := range []struct {
		name  string
		value int
	}{{"IRU_DEV_FRONTEND_PORT", u.FrontendPort}, {"IRU_DEV_UI_PORT", u.UIPort}} {
		if port.value < 0 || port.value > 65535 {
			p = append(p, fmt.Errorf("%s=%d: want a port 0..65535", port.name, port.value))
		}
	}
	p = append(p, hostPort("IRU_API_ADDR", u.APIAddr)...)
	p = append(p, hostPort("IRU_WORKER_HTTP_ADDR", u.WorkerAddr)...)
	p = append(p, u.Lab.validate()...)
	return errs(p)
}

func hostPort(name, v string) []error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return []error{fmt.Errorf("%s=%q: want host:port", name, v)}
	}
	return nil
}

func fileExists(name, path string) []error {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return []error{fmt.Errorf("%s=%q: %w", name, path, unwrapPathError(err))}
	}
	return nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Names returns the variable names of cfg, for documentation checks.
func Names(cfg any) []string {
	fields, _ := Describe(cfg)
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		out = append(out, f.Name)
	}
	return out
}

// MarkdownTable renders fields as a Markdown table for the README.
func MarkdownTable(fields []Field) string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	for _, f := range fields {
		def := f.Default
		if def == "" {
			def = "—"
		} else {
			def = "`" + def + "`"
		}
		doc := f.Doc
		if f.Secret {
			doc += " Secret: also read from the file named by `" + f.Name + "_FILE`; never logged."
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.Name, def, doc)
	}
	return b.String()
}

// Cluster is what `starter cluster` adds to `starter up`: the real Temporal
// server on PostgreSQL with mTLS and Keycloak-fed authorization.
type Cluster struct {
	ServerBin      string `env:"IRU_TEMPORAL_SERVER_BIN" envDefault:".tools/bin/temporal-server" doc:"Path of the pinned Temporal server (installed by make tools)."`
	SQLTool        string `env:"IRU_TEMPORAL_SQL_TOOL" envDefault:".tools/bin/temporal-sql-tool" doc:"Path of the pinned Temporal SQL schema tool (installed by make tools)."`
	PKIDir         string `env:"IRU_CLUSTER_PKI_DIR" doc:"Folder of the cluster's certificates (ca.pem, frontend, internode, worker, api, operator; keys 0600); empty: a local CA in IRU_STATE_DIR/cluster/pki, created on first start."`
	DBHost         string `env:"IRU_CLUSTER_DB_HOST" envDefault:"127.0.0.1" doc:"PostgreSQL host of Temporal's persistence and visibility databases."`
	DBPort         int    `env:"IRU_CLUSTER_DB_PORT" envDefault:"5432" doc:"PostgreSQL port."`
	DBUser         string `env:"IRU_CLUSTER_DB_USER" envDefault:"postgres" doc:"PostgreSQL user that owns Temporal's databases."`
	DBPassword     string `env:"IRU_CLUSTER_DB_PASSWORD" secret:"true" doc:"PostgreSQL password (empty for trust or peer authentication)."`
	DBName         string `env:"IRU_CLUSTER_DB_NAME" envDefault:"temporal" doc:"Temporal's persistence database (created and migrated when missing)."`
	VisibilityDB   string `env:"IRU_CLUSTER_VISIBILITY_DB_NAME" envDefault:"temporal_visibility" doc:"Temporal's visibility database (created and migrated when missing)."`
	Issuer         string `env:"IRU_CLUSTER_OIDC_ISSUER" doc:"Keycloak realm URL whose keys Temporal trusts and whose token endpoint issues the processes' tokens; empty: the lab's Keycloak."`
	WorkerSecret   string `env:"IRU_CLUSTER_WORKER_CLIENT_SECRET" secret:"true" doc:"Client secret of iru-worker (its token grants default:write); empty: the lab's."`
	APISecret      string `env:"IRU_CLUSTER_API_CLIENT_SECRET" secret:"true" doc:"Client secret of iru-api (its token grants default:write); empty: the lab's."`
	OperatorSecret string `env:"IRU_CLUSTER_OPERATOR_CLIENT_SECRET" secret:"true" doc:"Client secret of iru-operator (temporal-system:admin: registers the namespace and search attributes); empty: the lab's."`
}

// Validate checks the cluster settings; lab tells whether the lab's
// Keycloak stands in for a real one.
func (c Cluster) Validate(lab bool) error {
	var p []error
	if c.DBPort <= 0 || c.DBPort > 65535 {
		p = append(p, fmt.Errorf("IRU_CLUSTER_DB_PORT=%d: want a port 1..65535", c.DBPort))
	}
	if c.DBName == "" || c.VisibilityDB == "" || c.DBName == c.VisibilityDB {
		p = append(p, fmt.Errorf("IRU_CLUSTER_DB_NAME and IRU_CLUSTER_VISIBILITY_DB_NAME: want two different names"))
	}
	if !lab {
		if c.Issuer == "" || c.WorkerSecret == "" || c.APISecret == "" || c.OperatorSecret == "" {
			p = append(p, fmt.Errorf("IRU_LAB=false: IRU_CLUSTER_OIDC_ISSUER and the three IRU_CLUSTER_*_CLIENT_SECRET are required"))
		}
	}
	if c.Issuer != "" {
		if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p = append(p, fmt.Errorf("IRU_CLUSTER_OIDC_ISSUER=%q: want an http(s) URL", c.Issuer))
		}
	}
	return errs(p)
}
