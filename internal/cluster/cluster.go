// Package cluster runs the production topology of Temporal natively, on
// this machine: the real server (frontend, internal-frontend, history,
// matching and worker services in one process) on PostgreSQL, with mutual
// TLS on the frontend and between the services and Temporal's own JWT
// authorization, configured by deploy/temporal/config/iru.yaml, the file
// docker-compose.yml uses.
//
// [Start] creates and migrates the two databases with the pinned SQL tool
// (idempotently; the schema is the one embedded in that tool, so it is
// always the server's own version), makes sure the certificates exist
// (package pki), writes the configuration, starts the server, waits for
// it, and registers the namespace and the platform's search attributes
// with the operator's credentials.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	temporaldeploy "github.com/iru-responder/responder/deploy/temporal"
	"github.com/iru-responder/responder/internal/freeport"
	"github.com/iru-responder/responder/internal/gctune"
	"github.com/iru-responder/responder/internal/pki"
	"github.com/iru-responder/responder/internal/procgroup"
	"github.com/iru-responder/responder/internal/tlsutil"
)

// ErrBinaryMissing is returned when the server or the SQL tool is not
// where the options say. `make tools` installs both.
var ErrBinaryMissing = errors.New("cluster: Temporal server or SQL tool not found (run `make tools`)")

// DB is the PostgreSQL server and the two databases Temporal uses.
type DB struct {
	Host           string // default 127.0.0.1
	Port           int    // default 5432
	User           string // default postgres
	Password       string
	Name           string // default temporal
	VisibilityName string // default temporal_visibility
}

func (d *DB) defaults() {
	if d.Host == "" {
		d.Host = "127.0.0.1"
	}
	if d.Port == 0 {
		d.Port = 5432
	}
	if d.User == "" {
		d.User = "postgres"
	}
	if d.Name == "" {
		d.Name = "temporal"
	}
	if d.VisibilityName == "" {
		d.VisibilityName = "temporal_visibility"
	}
}

// HeadersProvider gives the gRPC headers of a call (the SDK's
// client.Options.HeadersProvider): here, the operator's bearer token.
type HeadersProvider interface {
	GetHeaders(ctx context.Context) (map[string]string, error)
}

// Options configure a cluster.
type Options struct {
	// ServerBin and SQLTool are the pinned binaries (.tools/bin/temporal-server
	// and .tools/bin/temporal-sql-tool).
	ServerBin, SQLTool string
	// Dir holds the written configuration and the server's working folder.
	Dir string
	// PKIDir holds the certificates; default Dir/pki. A local CA is
	// created there when it holds none.
	PKIDir string
	// IP every service binds to; default 127.0.0.1.
	IP string
	// FrontendPort of the frontend; 0 picks a free one. The other services
	// get free ports, the membership ports of the last start in Dir again
	// while they are free.
	FrontendPort int
	DB           DB
	// JWKSURL is the identity provider's key set (the Keycloak realm's
	// /protocol/openid-connect/certs).
	JWKSURL string
	// Namespace to register; default "default". Retention default 72h.
	Namespace string
	Retention time.Duration
	// SearchAttributes to register, as "Name=Type".
	SearchAttributes []string
	// Operator supplies the operator's token (permission
	// temporal-system:admin) for the namespace and search attributes.
	Operator HeadersProvider
	// Log receives the server's and the SQL tool's output; nil discards it.
	Log io.Writer
	// MetricsAddr, if set, is the host:port where the server serves its
	// Prometheus metrics (PROMETHEUS_ENDPOINT of the configuration), for
	// looking at where its time goes (task schedule-to-start, persistence).
	MetricsAddr string
}

// Cluster is a running server.
type Cluster struct {
	opts  Options
	pki   pki.Layout
	env   []string
	ports map[string]int
	// Migrated tells whether Start created the schema (cold) or found it (warm).
	Migrated MigrateResult

	mu   sync.Mutex
	proc *procgroup.Process
}

// portNames are the server's listeners, as the configuration names them.
var portNames = []string{
	"FRONTEND_GRPC_PORT", "FRONTEND_MEMBERSHIP_PORT",
	"INTERNAL_FRONTEND_GRPC_PORT", "INTERNAL_FRONTEND_MEMBERSHIP_PORT",
	"HISTORY_GRPC_PORT", "HISTORY_MEMBERSHIP_PORT",
	"MATCHING_GRPC_PORT", "MATCHING_MEMBERSHIP_PORT",
	"WORKER_GRPC_PORT", "WORKER_MEMBERSHIP_PORT",
}

// Services are the server's services, all in one process. The server's
// default list leaves internal-frontend out; the system worker needs it.
var Services = []string{"frontend", "internal-frontend", "history", "matching", "worker"}

// Start prepares and starts the cluster and waits until its namespace is
// usable.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	for _, b := range []string{opts.ServerBin, opts.SQLTool} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrBinaryMissing, b)
		}
	}
	if opts.JWKSURL == "" {
		return nil, errors.New("cluster: the identity provider's JWKS URL is required (authorization is always on)")
	}
	if opts.Operator == nil {
		return nil, errors.New("cluster: the operator's credentials are required to register the namespace")
	}
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Retention == 0 {
		opts.Retention = 72 * time.Hour
	}
	if opts.PKIDir == "" {
		opts.PKIDir = filepath.Join(opts.Dir, "pki")
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	opts.DB.defaults()
	c := &Cluster{opts: opts, ports: map[string]int{}}
	var err error
	if c.pki, err = pki.Ensure(opts.PKIDir, []string{opts.IP}, time.Now()); err != nil {
		return nil, err
	}
	if c.Migrated, err = Migrate(ctx, opts.SQLTool, opts.DB, opts.Log); err != nil {
		return nil, err
	}
	if err := c.writeConfig(); err != nil {
		return nil, err
	}
	if err := c.choosePorts(); err != nil {
		return nil, err
	}
	c.env = c.serverEnv()
	if err := c.launch(ctx); err != nil {
		return nil, err
	}
	if err := c.setup(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) root() string { return filepath.Join(c.opts.Dir, "temporal") }

// membershipFile keeps the membership ports of the last start.
func (c *Cluster) membershipFile() string { return filepath.Join(c.root(), "membership-ports.json") }

// choosePorts picks the server's listeners: the frontend's from the
// options, the others free, no two the same (each pick was free a moment
// ago but is not held, so two random picks, or a record naming one port
// twice, could otherwise land on one port, and the second service's
// listener fails with "address already in use"). The membership ports of
// the last start in Dir are taken again when they are still free. The
// server finds its peers through the membership table, where the last
// run's services stay listed for 20 s after they stop: on new ports,
// every service of a restarted server would spend some 40 s trying to
// join those dead addresses (ringpop's 30 s join limit, then a retry) and
// answer "Not enough hosts to serve the request" meanwhile; on the same
// ports, it joins itself at once.
func (c *Cluster) choosePorts() error {
	var last map[string]int
	if b, err := os.ReadFile(c.membershipFile()); err == nil {
		if err := json.Unmarshal(b, &last); err != nil {
			return fmt.Errorf("cluster: %s: %w", c.membershipFile(), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cluster: %w", err)
	}
	membership := map[string]int{}
	used := map[int]bool{c.opts.FrontendPort: c.opts.FrontendPort != 0}
	for _, name := range portNames {
		p := 0
		if name == "FRONTEND_GRPC_PORT" {
			p = c.opts.FrontendPort
		}
		isMembership := strings.HasSuffix(name, "_MEMBERSHIP_PORT")
		if p == 0 && isMembership && last[name] != 0 && !used[last[name]] && portFree(c.opts.IP, last[name]) {
			p = last[name]
		}
		free := freeport.TCP
		if isMembership {
			// The membership table stores ports as PostgreSQL smallint:
			// the kernel's ephemeral ports (32768 and up) do not fit.
			free = freeLowPort
		}
		for attempt := 0; p == 0; attempt++ {
			if attempt == 100 {
				return fmt.Errorf("cluster: no free port for %s that no other listener has", name)
			}
			q, err := free(c.opts.IP)
			if err != nil {
				return err
			}
			if !used[q] {
				p = q
			}
		}
		used[p] = true
		c.ports[name] = p
		if isMembership {
			membership[name] = p
		}
	}
	b, err := json.MarshalIndent(membership, "", "  ")
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := os.MkdirAll(c.root(), 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := os.WriteFile(c.membershipFile(), b, 0o600); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

func (c *Cluster) writeConfig() error {
	cfgDir := filepath.Join(c.root(), "config")
	if err := os.MkdirAll(filepath.Join(cfgDir, "dynamicconfig"), 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, temporaldeploy.Env+".yaml"), temporaldeploy.ServerConfig, 0o600); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "dynamicconfig", "iru.yaml"), temporaldeploy.DynamicConfig, 0o600); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// serverEnv is the server's whole environment: nothing is inherited, so
// a variable of the caller's shell cannot change the configuration.
func (c *Cluster) serverEnv() []string {
	fe, in := c.pki.Pair(pki.Frontend), c.pki.Pair(pki.Internode)
	db := c.opts.DB
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TZ=UTC",
		"LOG_LEVEL=warn",
		"POSTGRES_SEEDS=" + db.Host, "DB_PORT=" + strconv.Itoa(db.Port),
		"POSTGRES_USER=" + db.User, "POSTGRES_PWD=" + db.Password,
		"DBNAME=" + db.Name, "VISIBILITY_DBNAME=" + db.VisibilityName,
		"BIND_ON_IP=" + c.opts.IP,
		"TEMPORAL_TLS_CA=" + c.pki.CA(),
		"TEMPORAL_TLS_FRONTEND_CERT=" + fe.Cert, "TEMPORAL_TLS_FRONTEND_KEY=" + fe.Key,
		"TEMPORAL_TLS_INTERNODE_CERT=" + in.Cert, "TEMPORAL_TLS_INTERNODE_KEY=" + in.Key,
		"TEMPORAL_TLS_FRONTEND_SERVER_NAME=" + pki.FrontendServerName,
		"TEMPORAL_TLS_INTERNODE_SERVER_NAME=" + pki.InternodeServerName,
		"TEMPORAL_JWKS_URL=" + c.opts.JWKSURL,
		"TEMPORAL_DYNAMIC_CONFIG=config/dynamicconfig/iru.yaml",
		// A local cluster shares the machine's PostgreSQL (max_connections
		// 100 by default) with the ledger, the shared state and other
		// clusters: at most 4 services × (8 + 4) connections, where the
		// deployment's defaults would allow 4 × (20 + 10).
		"SQL_MAX_CONNS=8", "SQL_VIS_MAX_CONNS=4",
	}
	env = append(env, gctune.ServerEnv()...)
	for _, name := range portNames {
		env = append(env, name+"="+strconv.Itoa(c.ports[name]))
	}
	if c.opts.MetricsAddr != "" {
		env = append(env, "PROMETHEUS_ENDPOINT="+c.opts.MetricsAddr)
	}
	return env
}

// Args is the server's command line (without the binary).
func (c *Cluster) Args() []string {
	a := []string{"--root", c.root(), "--config", "config", "--env", temporaldeploy.Env, "start"}
	for _, svc := range Services {
		a = append(a, "--service", svc)
	}
	return a
}

func (c *Cluster) launch(ctx context.Context) error {
	cmd := exec.Command(c.opts.ServerBin, c.Args()...)
	cmd.Dir, cmd.Env = c.root(), c.env
	proc, err := procgroup.Start(cmd, c.opts.Log)
	if err != nil {
		return fmt.Errorf("cluster: start %s: %w", c.opts.ServerBin, err)
	}
	c.mu.Lock()
	c.proc = proc
	c.mu.Unlock()
	if err := c.waitReady(ctx, proc.Exited()); err != nil {
		_ = c.Stop()
		return err
	}
	return nil
}

// waitReady waits until the frontend completes a TLS handshake with the
// operator's certificate and answers a health check.
func (c *Cluster) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	tc, err := c.ClientTLS(pki.Operator)
	if err != nil {
		return err
	}
	var last error
	for {
		select {
		case <-exited:
			return fmt.Errorf("cluster: the server exited before it was ready (see its log): last error: %v", last)
		default:
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, 3*time.Second)
		cl, err := client.DialContext(attempt, client.Options{HostPort: c.Address(), Namespace: "temporal-system",
			ConnectionOptions: client.ConnectionOptions{TLS: tc}, Logger: quietLogger{}})
		if err == nil {
			_, err = cl.CheckHealth(attempt, &client.CheckHealthRequest{})
			cl.Close()
		}
		cancelAttempt()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: not ready at %s: %w", c.Address(), errors.Join(ctx.Err(), last))
		case <-exited:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// setup registers the namespace and the search attributes with the
// operator's token, idempotently, and waits until both are in use and
// the services serve.
func (c *Cluster) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	tc, err := c.ClientTLS(pki.Operator)
	if err != nil {
		return err
	}
	cl, err := client.DialContext(ctx, client.Options{HostPort: c.Address(), Namespace: c.opts.Namespace,
		ConnectionOptions: client.ConnectionOptions{TLS: tc}, HeadersProvider: c.opts.Operator, Logger: quietLogger{}})
	if err != nil {
		return fmt.Errorf("cluster: dial as operator: %w", err)
	}
	defer cl.Close()
	ws := cl.WorkflowService()
	err = retry(ctx, func() error {
		_, err := ws.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: c.opts.Namespace, WorkflowExecutionRetentionPeriod: durationpb.New(c.opts.Retention),
			Description: "IRU Responder"})
		var exists *serviceerror.NamespaceAlreadyExists
		if errors.As(err, &exists) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: register namespace %s: %w", c.opts.Namespace, err)
	}
	want := map[string]enumspb.IndexedValueType{}
	for _, sa := range c.opts.SearchAttributes {
		name, typ, ok := strings.Cut(sa, "=")
		v, known := enumspb.IndexedValueType_shorthandValue[typ]
		if !ok || !known {
			return fmt.Errorf("cluster: search attribute %q: want Name=Type", sa)
		}
		want[name] = enumspb.IndexedValueType(v)
	}
	ops := cl.OperatorService()
	err = retry(ctx, func() error {
		have, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: c.opts.Namespace})
		if err != nil {
			return err
		}
		missing := map[string]enumspb.IndexedValueType{}
		for name, typ := range want {
			got, ok := have.CustomAttributes[name]
			switch {
			case !ok:
				missing[name] = typ
			case got != typ:
				return &permanentError{fmt.Errorf("search attribute %s is %v, want %v", name, got, typ)}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: c.opts.Namespace, SearchAttributes: missing})
		var exists *serviceerror.AlreadyExists
		if err == nil || errors.As(err, &exists) {
			return errors.New("search attributes added; checking")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: search attributes: %w", err)
	}
	// The frontend learns of a new namespace and its search attributes
	// from a cache; a list query naming one of them works once it has.
	query := ""
	for name := range want {
		query = name + " IS NULL"
		break
	}
	err = retry(ctx, func() error {
		_, err := ws.CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: c.opts.Namespace, Query: query})
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: visibility: %w", err)
	}
	// The frontend answers before the services have found each other
	// through the membership table: until they have, a call that needs
	// matching or history fails with "Not enough hosts to serve the
	// request". A task queue's description (matching) and an unknown
	// workflow's (history: NotFound) work once they have.
	err = retry(ctx, func() error {
		_, err := ws.DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{Namespace: c.opts.Namespace,
			TaskQueue: &taskqueuepb.TaskQueue{Name: readinessName, Kind: enumspb.TASK_QUEUE_KIND_NORMAL}, TaskQueueType: enumspb.TASK_QUEUE_TYPE_WORKFLOW})
		if err != nil {
			return fmt.Errorf("matching: %w", err)
		}
		_, err = ws.DescribeWorkflowExecution(ctx, &workflowservice.DescribeWorkflowExecutionRequest{Namespace: c.opts.Namespace,
			Execution: &commonpb.WorkflowExecution{WorkflowId: readinessName}})
		var notFound *serviceerror.NotFound
		if err == nil || errors.As(err, &notFound) {
			return nil
		}
		return fmt.Errorf("history: %w", err)
	})
	if err != nil {
		return fmt.Errorf("cluster: services not serving: %w", err)
	}
	return nil
}

// readinessName is the task queue and the workflow ID the readiness check
// describes; neither is ever used.
const readinessName = "iru-cluster-readiness"

// permanentError stops retry.
type permanentError struct{ error }

func (e *permanentError) Unwrap() error { return e.error }

// retry runs f until it succeeds, fails with PermissionDenied (retrying
// would not help) or a permanentError, or ctx ends.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		var denied *serviceerror.PermissionDenied
		var perm *permanentError
		if errors.As(err, &denied) || errors.As(err, &perm) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Address is the frontend's host:port.
func (c *Cluster) Address() string {
	return net.JoinHostPort(c.opts.IP, strconv.Itoa(c.ports["FRONTEND_GRPC_PORT"]))
}

// Namespace is the registered namespace.
func (c *Cluster) Namespace() string { return c.opts.Namespace }

// PKI is the certificate layout.
func (c *Cluster) PKI() pki.Layout { return c.pki }

// Ports are the server's listeners by configuration name.
func (c *Cluster) Ports() map[string]int {
	out := make(map[string]int, len(c.ports))
	for k, v := range c.ports {
		out[k] = v
	}
	return out
}

// ClientTLS is the TLS configuration of a client presenting the
// certificate name of the layout (pki.Worker, pki.API, pki.Operator).
func (c *Cluster) ClientTLS(name string) (*tls.Config, error) {
	cert, err := pki.LoadPair(c.pki.Pair(name))
	if err != nil {
		return nil, err
	}
	pool, err := tlsutil.CertPool(c.pki.CA(), false)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: pki.FrontendServerName,
		Certificates: []tls.Certificate{cert}}, nil
}

// ClientEnv is the platform's configuration (internal/config) for a
// process that presents the certificate name: address, namespace and TLS.
// The caller adds the process's token variables.
func (c *Cluster) ClientEnv(name string) []string {
	p := c.pki.Pair(name)
	return []string{
		"IRU_TEMPORAL_ADDRESS=" + c.Address(), "IRU_TEMPORAL_NAMESPACE=" + c.Namespace(),
		"IRU_TEMPORAL_TLS_CA=" + c.pki.CA(), "IRU_TEMPORAL_TLS_CERT=" + p.Cert, "IRU_TEMPORAL_TLS_KEY=" + p.Key,
		"IRU_TEMPORAL_TLS_SERVER_NAME=" + pki.FrontendServerName,
	}
}

// Stop interrupts the server and waits for it to exit (killing it after
// 20 s).
func (c *Cluster) Stop() error {
	c.mu.Lock()
	proc := c.proc
	c.proc = nil
	c.mu.Unlock()
	proc.Stop(syscall.SIGINT, 20*time.Second)
	return nil
}

// Restart stops the server and starts it again on the same ports and
// databases, as an operator restart would.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.launch(ctx)
}

// MigrateResult says what [Migrate] did.
type MigrateResult struct {
	// Created lists the databases that did not exist before.
	Created []string
}

// Migrate creates Temporal's two databases if they are missing and brings
// their schemas to the SQL tool's version (the schema embedded in the
// pinned tool). Running it again changes nothing.
func Migrate(ctx context.Context, tool string, db DB, log io.Writer) (MigrateResult, error) {
	db.defaults()
	if log == nil {
		log = io.Discard
	}
	var res MigrateResult
	for _, d := range []struct{ name, schema string }{
		{db.Name, "postgresql/v12/temporal"},
		{db.VisibilityName, "postgresql/v12/visibility"},
	} {
		run := func(args ...string) (string, error) {
			base := []string{"--plugin", "postgres12", "--ep", db.Host, "-p", strconv.Itoa(db.Port), "-u", db.User, "--db", d.name}
			cmd := exec.CommandContext(ctx, tool, append(base, args...)...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SQL_PASSWORD=" + db.Password}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, log), io.MultiWriter(&out, log)
			err := cmd.Run()
			return out.String(), err
		}
		existed, err := databaseExists(ctx, db, d.name)
		if err != nil {
			return res, err
		}
		if !existed {
			res.Created = append(res.Created, d.name)
		}
		if out, err := run("create-database"); err != nil { // a no-op when it exists
			return res, fmt.Errorf("cluster: create database %s: %w: %s", d.name, err, lastLine(out))
		}
		if out, err := run("setup-schema", "-v", "0.0"); err != nil {
			return res, fmt.Errorf("cluster: set up schema versioning in %s: %w: %s", d.name, err, lastLine(out))
		}
		if out, err := run("update-schema", "--schema-name", d.schema); err != nil {
			return res, fmt.Errorf("cluster: update schema of %s: %w: %s", d.name, err, lastLine(out))
		}
	}
	return res, nil
}

// DropDatabases drops Temporal's two databases (the tests' teardown;
// never called by the cluster mode itself).
func DropDatabases(ctx context.Context, db DB) error {
	db.defaults()
	conn, err := pgx.Connect(ctx, adminURL(db))
	if err != nil {
		return fmt.Errorf("cluster: PostgreSQL %s:%d: %w", db.Host, db.Port, err)
	}
	defer func() { _ = conn.Close(ctx) }()
	for _, name := range []string{db.Name, db.VisibilityName} {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("cluster: drop %s: %w", name, err)
		}
	}
	return nil
}

func adminURL(db DB) string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(db.Host, strconv.Itoa(db.Port)), Path: "/postgres",
		User: url.UserPassword(db.User, db.Password), RawQuery: "sslmode=prefer"}
	if db.Password == "" {
		u.User = url.User(db.User)
	}
	return u.String()
}

// databaseExists asks PostgreSQL whether the database name exists.
func databaseExists(ctx context.Context, db DB, name string) (bool, error) {
	conn, err := pgx.Connect(ctx, adminURL(db))
	if err != nil {
		return false, fmt.Errorf("cluster: PostgreSQL %s:%d: %w", db.Host, db.Port, err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		return false, fmt.Errorf("cluster: PostgreSQL %s:%d: %w", db.Host, db.Port, err)
	}
	return n > 0, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// freeLowPort returns a TCP port below 32768 on ip that was free a moment ago.
func freeLowPort(ip string) (int, error) {
	for range 200 {
		n, err := rand.Int(rand.Reader, big.NewInt(32767-20000))
		if err != nil {
			return 0, fmt.Errorf("cluster: free port: %w", err)
		}
		if port := 20000 + int(n.Int64()); portFree(ip, port) {
			return port, nil
		}
	}
	return 0, errors.New("cluster: no free port below 32768")
}

// portFree reports whether port on ip could be listened on a moment ago.
func portFree(ip string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// quietLogger drops the SDK's logs while waiting for readiness.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
