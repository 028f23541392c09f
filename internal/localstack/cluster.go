//go:build localstack

package localstack

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iru-responder/responder/internal/cluster"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/pki"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/internal/temporalclient"
	"github.com/iru-responder/responder/workflows"
)

// clusterIdentity is where the processes' Temporal tokens come from.
type clusterIdentity struct {
	issuer                                  string
	workerSecret, apiSecret, operatorSecret string
}

func (s *stack) clusterIdentity() clusterIdentity {
	cc := s.clusterCfg
	id := clusterIdentity{issuer: cc.Issuer, workerSecret: cc.WorkerSecret, apiSecret: cc.APISecret, operatorSecret: cc.OperatorSecret}
	if s.lab != nil {
		if id.issuer == "" {
			id.issuer = s.lab.Keycloak.URL() + "/realms/" + keycloak.Realm
		}
		for _, f := range []struct {
			v   *string
			lab string
		}{{&id.workerSecret, keycloak.WorkerClientSecret}, {&id.apiSecret, keycloak.APIClientSecret}, {&id.operatorSecret, keycloak.OperatorClientSecret}} {
			if *f.v == "" {
				*f.v = f.lab
			}
		}
	}
	id.issuer = strings.TrimRight(id.issuer, "/")
	return id
}

func (id clusterIdentity) tokenURL() string { return id.issuer + "/protocol/openid-connect/token" }

// tokenEnv is the configuration of a process's Temporal token.
func (id clusterIdentity) tokenEnv(clientID, secret string) []string {
	return []string{"IRU_TEMPORAL_TOKEN_URL=" + id.tokenURL(), "IRU_TEMPORAL_CLIENT_ID=" + clientID, "IRU_TEMPORAL_CLIENT_SECRET=" + secret}
}

// startCluster starts the real Temporal server and gives the worker and the
// API server their certificates and tokens.
func (s *stack) startCluster(ctx context.Context) error {
	logf, err := s.openLog("temporal.log")
	if err != nil {
		return err
	}
	id := s.clusterIdentity()
	cc := s.clusterCfg
	dir := filepath.Join(s.cfg.StateDir, "cluster")
	operator := temporalclient.NewTokenHeaders(config.Temporal{TokenURL: id.tokenURL(), ClientID: keycloak.OperatorClientID, ClientSecret: id.operatorSecret})
	s.say("starting Temporal cluster (%s) on PostgreSQL %s:%d", cc.ServerBin, cc.DBHost, cc.DBPort)
	t0 := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{
		ServerBin: cc.ServerBin, SQLTool: cc.SQLTool, Dir: dir, PKIDir: cc.PKIDir,
		FrontendPort: s.cfg.FrontendPort,
		DB: cluster.DB{Host: cc.DBHost, Port: cc.DBPort, User: cc.DBUser, Password: cc.DBPassword,
			Name: cc.DBName, VisibilityName: cc.VisibilityDB},
		JWKSURL:          id.issuer + "/protocol/openid-connect/certs",
		SearchAttributes: workflows.SearchAttributeFlags(),
		Operator:         operator,
		Log:              logf,
	})
	if err != nil {
		return err
	}
	s.cluster = c
	s.defer_(func() {
		s.say("stopping Temporal cluster")
		_ = c.Stop()
	})
	s.temporalAddr, s.namespace = c.Address(), c.Namespace()
	// Other shells (iru.env) act as the operator; the worker and the API
	// server as themselves.
	s.env = append(s.env, c.ClientEnv(pki.Operator)...)
	s.env = append(s.env, id.tokenEnv(keycloak.OperatorClientID, id.operatorSecret)...)
	s.workerEnv = append(c.ClientEnv(pki.Worker), id.tokenEnv(keycloak.WorkerClientID, id.workerSecret)...)
	s.apiEnv = append(c.ClientEnv(pki.API), id.tokenEnv(keycloak.APIClientID, id.apiSecret)...)
	schema := "schema present"
	if len(c.Migrated.Created) > 0 {
		schema = "created databases " + strings.Join(c.Migrated.Created, ", ")
	}
	s.say("Temporal cluster frontend %s (mTLS, authorization by %s), ready in %s (%s); certificates in %s",
		c.Address(), id.issuer, time.Since(t0).Round(time.Millisecond), schema, c.PKI().Dir)
	return nil
}

// sharedSchema is the schema of the cluster mode's shared state, in
// Temporal's persistence database on the cluster's PostgreSQL.
const sharedSchema = "iru_shared"

// shareState puts the cluster's processes on the production footing of
// several hosts: the detectors move from the local file into the shared
// store on the cluster's PostgreSQL (IRU_SHARED_STATE_DSN; detectors the
// store already holds are kept), and with them the HMAC replay guard and
// the failed-authentication counters. Every worker and API server already
// has one key set: startKeys gave them all the same SoftHSM token
// (SOFTHSM2_CONF, token label, PIN file) in the shared environment.
func (s *stack) shareState(ctx context.Context) error {
	cc := s.clusterCfg
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(cc.DBHost, strconv.Itoa(cc.DBPort)), Path: "/" + cc.DBName, RawQuery: "sslmode=disable"}
	u.User = url.User(cc.DBUser)
	if cc.DBPassword != "" {
		u.User = url.UserPassword(cc.DBUser, cc.DBPassword)
	}
	cfg := sharedstate.Config{DSN: u.String(), Schema: sharedSchema, Poll: 2 * time.Second}
	st, err := sharedstate.Open(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	file := filepath.Join(s.cfg.StateDir, "detectors.yaml")
	f, err := detectorsfile.Load(file)
	if err != nil {
		return err
	}
	added := 0
	err = st.Update(ctx, func(sf *detectorsfile.File) (bool, error) {
		for _, d := range f.Detectors {
			if sf.Detector(d.Name) < 0 {
				sf.Detectors = append(sf.Detectors, d)
				added++
			}
		}
		return added > 0, nil
	})
	if err != nil {
		return err
	}
	// The later values win: no detectors file, the shared store instead.
	s.env = append(s.env, "IRU_INTAKE_DETECTORS_FILE=", "IRU_SHARED_STATE_DSN="+cfg.DSN, "IRU_SHARED_STATE_SCHEMA="+cfg.Schema)
	s.say("shared state (detectors, replay guard, failed-authentication counters) in %s on %s:%d/%s; %d detector(s) imported",
		st, cc.DBHost, cc.DBPort, cc.DBName, added)
	return nil
}

func (s *stack) clusterSummary(w func(string, ...any)) {
	l := s.cluster.PKI()
	op := l.Pair(pki.Operator)
	w("  # the temporal CLI as the operator (client certificate and an iru-operator token):")
	w("  .tools/bin/temporal workflow list --address %s --tls-ca-path %s --tls-cert-path %s --tls-key-path %s --tls-server-name %s --api-key \"$TOKEN\"",
		s.cluster.Address(), l.CA(), op.Cert, op.Key, pki.FrontendServerName)
}
