package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/cluster"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/devserver"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/pki"
	"github.com/iru-responder/responder/internal/temporalclient"
	"github.com/iru-responder/responder/workflows"
)

// TargetVar names the variable that chooses the Temporal target of the
// suites: "dev" (default) or "cluster".
const TargetVar = "IRU_TEST_TARGET"

// Roles a test process can act as on a target: the client certificate and
// the Keycloak client of its token on the cluster.
const (
	RoleWorker   = pki.Worker
	RoleAPI      = pki.API
	RoleOperator = pki.Operator
)

// MetricsVar names the variable that, set to host:port, makes the tests'
// cluster serve the server's Prometheus metrics there.
const MetricsVar = "IRU_TEST_CLUSTER_METRICS"

// Target is a Temporal server the tests run against.
type Target interface {
	// Name is "dev" or "cluster".
	Name() string
	Address() string
	Namespace() string
	// Env is the internal/config configuration of a process acting as
	// role: address and namespace, and on the cluster its client
	// certificate and its client-credentials token.
	Env(role string) []string
}

// TargetName is the target IRU_TEST_TARGET chooses.
func TargetName() string {
	if os.Getenv(TargetVar) == "cluster" {
		return "cluster"
	}
	return "dev"
}

// Current returns the package's shared target, starting it on first use.
func Current(tb testing.TB) Target {
	tb.Helper()
	return ByName(tb, TargetName())
}

// Dev returns the package's shared dev server as a [Target], whatever
// IRU_TEST_TARGET says (for benchmarks that measure both targets).
func Dev(tb testing.TB) Target {
	tb.Helper()
	return devTarget{Temporal(tb)}
}

// Targets are the names of the targets [ByName] accepts.
var Targets = []string{"dev", "cluster"}

// ByName returns the package's shared target called name ("dev" or
// "cluster"), starting it on first use.
func ByName(tb testing.TB, name string) Target {
	tb.Helper()
	switch name {
	case "dev":
		return Dev(tb)
	case "cluster":
		return Cluster(tb)
	}
	tb.Fatalf("testenv: unknown target %q (want dev or cluster)", name)
	return nil
}

type devTarget struct{ *devserver.Server }

func (devTarget) Name() string { return "dev" }

func (d devTarget) Env(string) []string {
	return []string{"IRU_TEMPORAL_ADDRESS=" + d.Address(), "IRU_TEMPORAL_NAMESPACE=" + d.Namespace()}
}

// Dial connects to target as role with opts (connection settings filled
// in from [Target.Env]) and closes the client when the test ends.
func Dial(tb testing.TB, target Target, role string, opts client.Options) client.Client {
	tb.Helper()
	var cfg config.Client
	if err := config.LoadFrom(&cfg, target.Env(role)); err != nil {
		tb.Fatalf("testenv: %s configuration: %v", role, err)
	}
	co, err := temporalclient.ClientOptions(cfg.Temporal, temporalclient.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	opts.HostPort, opts.Namespace = co.HostPort, co.Namespace
	opts.ConnectionOptions.TLS, opts.HeadersProvider = co.ConnectionOptions.TLS, co.HeadersProvider
	if opts.ConnectionOptions.GrpcCompression == nil {
		// What the platform's processes run (IRU_TEMPORAL_GZIP, off by
		// default): tests and benchmarks measure the same calls.
		opts.ConnectionOptions.GrpcCompression = co.ConnectionOptions.GrpcCompression
	}
	if opts.ConnectionOptions.GetSystemInfoTimeout == 0 {
		// The SDK's default (5 s) is short for a dev server shared by a
		// package's tests on a loaded 2-core machine.
		opts.ConnectionOptions.GetSystemInfoTimeout = 30 * time.Second
	}
	c, err := client.Dial(opts)
	if err != nil {
		tb.Fatalf("testenv: dial %s as %s: %v", target.Name(), role, err)
	}
	tb.Cleanup(c.Close)
	return c
}

// TestCluster is the real Temporal cluster of a test binary and the lab
// Keycloak whose realm keys it trusts and whose tokens the processes send.
type TestCluster struct {
	*cluster.Cluster
	Keycloak *keycloak.Server
	// StartTime is how long Start took (schema created: always cold here).
	StartTime time.Duration
	db        cluster.DB
}

// Name implements [Target].
func (*TestCluster) Name() string { return "cluster" }

// Issuer is the realm URL of the cluster's Keycloak.
func (c *TestCluster) Issuer() string { return c.Keycloak.URL() + "/realms/" + keycloak.Realm }

// TokenURL is the realm's token endpoint.
func (c *TestCluster) TokenURL() string { return c.Issuer() + "/protocol/openid-connect/token" }

var roleClients = map[string][2]string{
	RoleWorker:   {keycloak.WorkerClientID, keycloak.WorkerClientSecret},
	RoleAPI:      {keycloak.APIClientID, keycloak.APIClientSecret},
	RoleOperator: {keycloak.OperatorClientID, keycloak.OperatorClientSecret},
}

// Env implements [Target].
func (c *TestCluster) Env(role string) []string {
	kc, ok := roleClients[role]
	if !ok {
		panic("testenv: unknown role " + role)
	}
	return append(c.ClientEnv(role), "IRU_TEMPORAL_TOKEN_URL="+c.TokenURL(),
		"IRU_TEMPORAL_CLIENT_ID="+kc[0], "IRU_TEMPORAL_CLIENT_SECRET="+kc[1])
}

var (
	clusterOnce sync.Once
	testCluster *TestCluster
	clusterLog  *os.File
	clusterDir  string
	clusterErr  error
)

// ToolPath returns a pinned tool: the variable env, or .tools/bin/name.
func ToolPath(env, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".tools", "bin", name), nil
}

// Cluster returns the package's shared cluster, starting it on first use:
// fresh databases on the local PostgreSQL (IRU_TEST_PG_HOST/PORT/USER,
// default 127.0.0.1:5432 postgres, dropped when the tests end), state in a
// temporary folder, every listener on 127.0.0.1; with IRU_TEST_CLUSTER_METRICS
// (MetricsVar) set to host:port, the server serves its Prometheus metrics
// there.
func Cluster(tb testing.TB) *TestCluster {
	tb.Helper()
	clusterOnce.Do(func() { testCluster, clusterErr = startCluster() })
	if clusterErr != nil {
		tb.Fatalf("testenv: Temporal cluster: %v", clusterErr)
	}
	return testCluster
}

func startCluster() (*TestCluster, error) {
	serverBin, err := ToolPath("IRU_TEMPORAL_SERVER_BIN", "temporal-server")
	if err != nil {
		return nil, err
	}
	sqlTool, err := ToolPath("IRU_TEMPORAL_SQL_TOOL", "temporal-sql-tool")
	if err != nil {
		return nil, err
	}
	if clusterDir, err = os.MkdirTemp("", "iru-cluster-*"); err != nil {
		return nil, err
	}
	if clusterLog, err = os.Create(filepath.Join(clusterDir, "temporal.log")); err != nil {
		return nil, err
	}
	kc, err := keycloak.New(keycloak.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kc.Start(context.Background()); err != nil { // it lives as long as the context
		return nil, err
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	id := hex.EncodeToString(suffix)
	db, err := localPG()
	if err != nil {
		return nil, err
	}
	db.Name, db.VisibilityName = "iru_test_temporal_"+id, "iru_test_temporal_vis_"+id
	tc := &TestCluster{Keycloak: kc, db: db}
	issuer := tc.Issuer()
	operator := temporalclient.NewTokenHeaders(config.Temporal{TokenURL: issuer + "/protocol/openid-connect/token",
		ClientID: keycloak.OperatorClientID, ClientSecret: keycloak.OperatorClientSecret})
	t0 := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{
		ServerBin: serverBin, SQLTool: sqlTool, Dir: clusterDir, DB: db,
		JWKSURL: issuer + "/protocol/openid-connect/certs", Retention: 24 * time.Hour,
		SearchAttributes: workflows.SearchAttributeFlags(), Operator: operator, Log: clusterLog,
		MetricsAddr: os.Getenv(MetricsVar),
	})
	if err != nil {
		kc.Close()
		tc.dropDatabases()
		return nil, fmt.Errorf("%w (log: %s)", err, clusterLog.Name())
	}
	tc.Cluster, tc.StartTime = c, time.Since(t0)
	return tc, nil
}

// localPG is the local PostgreSQL the tests create their databases on:
// IRU_TEST_PG_HOST, IRU_TEST_PG_PORT and IRU_TEST_PG_USER, by default
// 127.0.0.1:5432 and postgres (trust authentication).
func localPG() (cluster.DB, error) {
	db := cluster.DB{Host: envOr("IRU_TEST_PG_HOST", "127.0.0.1"), Port: 5432, User: envOr("IRU_TEST_PG_USER", "postgres")}
	if p := os.Getenv("IRU_TEST_PG_PORT"); p != "" {
		if _, err := fmt.Sscan(p, &db.Port); err != nil {
			return db, fmt.Errorf("IRU_TEST_PG_PORT=%q: %w", p, err)
		}
	}
	return db, nil
}

func (c *TestCluster) dropDatabases() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.DropDatabases(ctx, c.db); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
	}
}

// stopCluster stops the shared cluster; keep says to leave its log.
func stopCluster(keep bool) {
	if testCluster != nil {
		_ = testCluster.Stop()
		testCluster.Keycloak.Close()
		testCluster.dropDatabases()
	}
	if clusterLog != nil {
		_ = clusterLog.Close()
	}
	if clusterDir == "" {
		return
	}
	if keep {
		fmt.Fprintf(os.Stderr, "cluster state and log: %s\n", clusterDir)
		return
	}
	_ = os.RemoveAll(clusterDir)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
