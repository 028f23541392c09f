//go:build integration

package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonpb "go.temporal.io/api/common/v1"

	"github.com/iru-responder/responder/internal/cluster"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/pki"
	"github.com/iru-responder/responder/internal/temporalclient"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// The tests in this file run on the real Temporal cluster (package
// testenv's Cluster: the pinned server on PostgreSQL, mTLS, authorization
// from the lab Keycloak's keys), whatever IRU_TEST_TARGET says.

// clusterTLS is a client TLS configuration for the cluster's frontend with
// the given client certificates (none for nil).
func clusterTLS(t *testing.T, c *testenv.TestCluster, certs []tls.Certificate) *tls.Config {
	t.Helper()
	caPEM, err := os.ReadFile(c.PKI().CA())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: pki.FrontendServerName, Certificates: certs}
}

// handshake opens a TLS connection to the frontend and reads from it: a
// client the server refuses gets the server's alert here.
func handshake(addr string, tc *tls.Config) error {
	tc = tc.Clone()
	tc.NextProtos = []string{"h2"} // as gRPC clients do; the server requires it
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc)
	if err != nil {
		return err
	}
	defer conn.Close()
	// HTTP/2 preface: the server answers with its SETTINGS frame when it
	// accepted the client.
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 9)
	_, err = conn.Read(buf)
	return err
}

// TestClusterRefusesClientsWithoutTrustedCertificate connects to the
// cluster's frontend without a client certificate, with one from another
// CA, and without TLS: each is refused at the handshake (and the SDK cannot
// dial), while the operator's certificate from the cluster's CA gets in.
func TestClusterRefusesClientsWithoutTrustedCertificate(t *testing.T) {
	c := testenv.Cluster(t)
	now := time.Now()
	intruder, err := pki.NewAuthority("IRU Responder local Temporal CA", now) // same name, other key
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	foreign := pki.Pair{Cert: filepath.Join(dir, "foreign.pem"), Key: filepath.Join(dir, "foreign-key.pem")}
	if err := intruder.IssueClient(foreign, "worker", now, time.Hour); err != nil {
		t.Fatal(err)
	}
	foreignCert, err := pki.LoadPair(foreign)
	if err != nil {
		t.Fatal(err)
	}
	operatorCert, err := pki.LoadPair(c.PKI().Pair(pki.Operator))
	if err != nil {
		t.Fatal(err)
	}
	// A server certificate of the cluster's own CA is not a client certificate.
	frontendCert, err := pki.LoadPair(c.PKI().Pair(pki.Frontend))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"operator certificate (control)", []tls.Certificate{operatorCert}, true},
		{"no client certificate", nil, false},
		{"certificate from another CA", []tls.Certificate{foreignCert}, false},
		{"server certificate used as a client's", []tls.Certificate{frontendCert}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clusterTLS(t, c, tc.certs)
			err := handshake(c.Address(), cfg)
			if tc.ok {
				if err != nil {
					t.Fatalf("trusted client refused: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("the frontend accepted the connection")
				}
				if !strings.Contains(err.Error(), "tls:") {
					t.Fatalf("refused, but not by TLS: %v", err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cl, err := client.DialContext(ctx, client.Options{HostPort: c.Address(), Namespace: c.Namespace(),
				ConnectionOptions: client.ConnectionOptions{TLS: cfg}})
			if err == nil {
				defer cl.Close()
				_, err = cl.CheckHealth(ctx, &client.CheckHealthRequest{})
			}
			if (err == nil) != tc.ok {
				t.Fatalf("SDK dial: err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	t.Run("plaintext", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cl, err := client.DialContext(ctx, client.Options{HostPort: c.Address(), Namespace: c.Namespace()})
		if err == nil {
			cl.Close()
			t.Fatal("a plaintext client dialled the frontend")
		}
	})
}

// userToken logs a lab user in through the console client of the
// cluster's Keycloak, as the temporal CLI or the Web UI would.
func userToken(t *testing.T, c *testenv.TestCluster, username string) string {
	t.Helper()
	gc := gocloak.NewClient(c.Keycloak.URL())
	tok, err := gc.Login(context.Background(), keycloak.ConsoleClientID, "", keycloak.Realm, username, keycloak.UserPassword)
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// bearer sends a fixed token as the SDK's headers provider.
type bearer string

func (b bearer) GetHeaders(context.Context) (map[string]string, error) {
	if b == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// dialAs dials the cluster with the operator's certificate (the transport
// is not what is tested here) and the given token.
func dialAs(t *testing.T, c *testenv.TestCluster, token string, dc converter.DataConverter) client.Client {
	t.Helper()
	cert, err := pki.LoadPair(c.PKI().Pair(pki.Operator))
	if err != nil {
		t.Fatal(err)
	}
	// Lazy: the SDK's dial-time check would already be refused for a forged token.
	cl, err := client.NewLazyClient(client.Options{HostPort: c.Address(), Namespace: c.Namespace(),
		ConnectionOptions: client.ConnectionOptions{TLS: clusterTLS(t, c, []tls.Certificate{cert})},
		HeadersProvider:   bearer(token), DataConverter: dc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	var denied *serviceerror.PermissionDenied
	if !errors.As(err, &denied) {
		t.Errorf("%s: err = %v, want PermissionDenied", what, err)
	}
}

// wantRefused accepts PermissionDenied or Unauthenticated (a token the
// server cannot verify is refused before authorization).
func wantRefused(t *testing.T, what string, err error) {
	t.Helper()
	var denied *serviceerror.PermissionDenied
	if !errors.As(err, &denied) && status.Code(err) != codes.Unauthenticated {
		t.Errorf("%s: err = %v, want PermissionDenied or Unauthenticated", what, err)
	}
}

// TestClusterAuthorizationByToken runs an incident on the cluster to the
// approval of remediation, then acts on it with other people's tokens.
// alice (ir-responder, default:read) can describe, read the history and
// query, but her Update, approval Signal, Terminate and Reset are refused
// with PermissionDenied; so is everything sent with no token or with a
// write token from another Keycloak (keys the cluster does not trust). The
// incident is unchanged afterwards: same run, still waiting, no signal in
// its history. The worker's and the API server's tokens (default:write)
// are what ran the incident so far, and the API server's then approves it.
func TestClusterAuthorizationByToken(t *testing.T) {
	t.Setenv(testenv.TargetVar, "cluster")
	p := testplatform.New(t, testplatform.Options{})
	c := testenv.Cluster(t)
	const asset = "api-gateway"
	in := workflows.IncidentInput{
		IncidentID: "INC-CLUSTER-AUTHZ", Key: "container-compromise:" + asset, Asset: asset, Severity: "critical",
		Playbook: "container-compromise", OpenedBy: "system:intake",
		Alerts: []workflows.Alert{{ID: "a1", Fingerprint: "falco:shell:" + asset, Source: "falco", Rule: "Terminal shell in container",
			Severity: "critical", Asset: asset, Summary: "shell spawned in api-gateway",
			Labels:     map[string]string{"health_url": p.Lab.HealthURL(asset), "username": "jdoe", "realm": keycloak.Realm},
			ObservedAt: time.Now().Add(-2 * time.Second), ReceivedAt: time.Now()}},
	}
	wfID := workflows.IncidentWorkflowID(in.Key) + "-authz"
	run, err := p.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: wfID, TaskQueue: p.TaskQueue}, workflows.IncidentWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	testplatform.WaitStep(t, p.Client, wfID, "shutdown", workflows.StepWaitingApproval, 90*time.Second)

	// A write token minted by another Keycloak (the platform's own lab,
	// whose iru-worker really has default:write): not the cluster's keys.
	gc := gocloak.NewClient(p.Lab.Keycloak.URL())
	foreignTok, err := gc.LoginClient(context.Background(), keycloak.WorkerClientID, keycloak.WorkerClientSecret, keycloak.Realm)
	if err != nil {
		t.Fatal(err)
	}
	callers := []struct {
		name     string
		token    string
		canRead  bool
		attempts string
		refused  func(*testing.T, string, error)
	}{
		{"alice (ir-responder, read)", userToken(t, c, "alice"), true, "alice", wantDenied},
		{"no token", "", false, "anonymous", wantDenied},
		{"write token from another Keycloak", foreignTok.AccessToken, false, "foreign", wantRefused},
	}
	ctx := context.Background()
	for _, caller := range callers {
		t.Run(caller.name, func(t *testing.T) {
			cl := dialAs(t, c, caller.token, p.Host.DataConverter())
			_, err := cl.DescribeWorkflow(ctx, wfID, "")
			if caller.canRead && err != nil {
				t.Fatalf("describe refused: %v", err)
			}
			if !caller.canRead {
				caller.refused(t, "describe", err)
			}
			qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			v, err := cl.QueryWorkflow(qctx, wfID, "", workflows.StatusQuery)
			cancel()
			if caller.canRead {
				var st workflows.IncidentStatus
				if err != nil || v.Get(&st) != nil || st.State != workflows.StateOpen {
					t.Fatalf("query: %v (state %q)", err, st.State)
				}
			} else {
				caller.refused(t, "query", err)
			}

			who := testplatform.Bob // the message claims a lead; the token decides
			uctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, err = cl.UpdateWorkflow(uctx, client.UpdateWorkflowOptions{WorkflowID: wfID, UpdateName: workflows.ApproveUpdate,
				WaitForStage: client.WorkflowUpdateStageCompleted,
				Args:         []any{workflows.DecisionInput{StepID: "shutdown", Approver: who, Reason: "attack: " + caller.attempts}}})
			cancel()
			caller.refused(t, "update approve", err)
			err = cl.SignalWorkflow(ctx, wfID, "", workflows.ApprovalSignal,
				workflows.ApprovalSignalInput{StepID: "shutdown", Approver: who, Reason: "attack: " + caller.attempts, Approve: true})
			caller.refused(t, "approval signal", err)
			caller.refused(t, "terminate", cl.TerminateWorkflow(ctx, wfID, "", "attack: "+caller.attempts))
			_, err = cl.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{Namespace: c.Namespace(),
				WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: wfID, RunId: run.GetRunID()},
				Reason:            "attack: " + caller.attempts, WorkflowTaskFinishEventId: firstWorkflowTaskCompleted(t, p.Client, wfID), RequestId: caller.attempts})
			caller.refused(t, "reset", err)
			caller.refused(t, "cancel", cl.CancelWorkflow(ctx, wfID, ""))
		})
	}

	// Nothing the refused callers sent reached the incident.
	desc, err := p.Client.DescribeWorkflow(ctx, wfID, "")
	if err != nil {
		t.Fatal(err)
	}
	if d := desc.RawResponse; d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || d.WorkflowExecutionInfo.Execution.RunId != run.GetRunID() {
		t.Fatalf("incident is %v in run %s, want running in run %s", d.WorkflowExecutionInfo.Status, d.WorkflowExecutionInfo.Execution.RunId, run.GetRunID())
	}
	for _, e := range historyEvents(t, p.Client, wfID) {
		if s := e.GetWorkflowExecutionSignaledEventAttributes(); s != nil {
			t.Errorf("a refused signal is in the history: %s from %s", s.SignalName, s.Identity)
		}
		if u := e.GetWorkflowExecutionUpdateAcceptedEventAttributes(); u != nil {
			t.Errorf("a refused update was accepted: %v", u.AcceptedRequest.GetInput().GetName())
		}
	}
	testplatform.WaitStep(t, p.Client, wfID, "shutdown", workflows.StepWaitingApproval, 10*time.Second)

	// The API server's own token can decide (write): the workflow takes the Update.
	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "shutdown", testplatform.Bob); err != nil {
		t.Fatalf("the API server's token could not approve: %v", err)
	}
	if err := p.Client.TerminateWorkflow(ctx, wfID, "", "test done"); err != nil {
		t.Fatalf("the API server's token could not terminate: %v", err)
	}
}

func firstWorkflowTaskCompleted(t *testing.T, c client.Client, wfID string) int64 {
	t.Helper()
	for _, e := range historyEvents(t, c, wfID) {
		if e.EventType == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			return e.EventId
		}
	}
	t.Fatal("no completed workflow task in the history")
	return 0
}

// TestClusterServiceTokens checks the worker's and the API server's
// configured token source (internal/temporalclient) against the cluster:
// their client-credentials tokens are accepted for write calls; a token
// signed by the realm that carries no permission (a user with no IRU role)
// is refused even a read.
func TestClusterServiceTokens(t *testing.T) {
	c := testenv.Cluster(t)
	ctx := context.Background()
	for _, role := range []string{testenv.RoleWorker, testenv.RoleAPI} {
		t.Run(role, func(t *testing.T) {
			var cfg config.Client
			if err := config.LoadFrom(&cfg, c.Env(role)); err != nil {
				t.Fatal(err)
			}
			co, err := temporalclient.ClientOptions(cfg.Temporal, temporalclient.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cl, err := client.Dial(co)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			// A write call: start and terminate a workflow nobody polls.
			id := "token-check-" + role
			if _, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "nobody-" + role}, "NoSuchWorkflow"); err != nil {
				t.Fatalf("%s token cannot start a workflow: %v", role, err)
			}
			if err := cl.TerminateWorkflow(ctx, id, "", "token check"); err != nil {
				t.Fatalf("%s token cannot terminate: %v", role, err)
			}
		})
	}
	// jdoe has no IRU role, so no Temporal permission: a valid token of the
	// realm that grants nothing is refused even a read; alice's is not.
	_, err := dialAs(t, c, userToken(t, c, "jdoe"), nil).DescribeWorkflow(ctx, "no-such-incident", "")
	wantDenied(t, "jdoe describe", err)
	_, err = dialAs(t, c, userToken(t, c, "alice"), nil).DescribeWorkflow(ctx, "no-such-incident", "")
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		t.Fatalf("alice describe of a missing workflow: %v, want NotFound (authorized, then not found)", err)
	}
}

// TestContainerCompromiseEndToEndOnCluster runs the end-to-end scenario
// (TestContainerCompromiseEndToEnd) on the real cluster, with the worker and
// the client presenting their own certificates and tokens.
func TestContainerCompromiseEndToEndOnCluster(t *testing.T) {
	if testenv.TargetName() == "cluster" {
		t.Skip("IRU_TEST_TARGET=cluster: TestContainerCompromiseEndToEnd itself runs on the cluster")
	}
	t.Setenv(testenv.TargetVar, "cluster")
	TestContainerCompromiseEndToEnd(t)
}

// TestClusterListensOnLoopbackOnly dials every listener of the cluster
// (frontend, internal-frontend, history, matching, worker, and their
// membership ports) on each non-loopback address of this machine: none
// answers there, while the frontend answers on 127.0.0.1.
func TestClusterListensOnLoopbackOnly(t *testing.T) {
	c := testenv.Cluster(t)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var others []net.IP
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			others = append(others, ipn.IP)
		}
	}
	if len(others) == 0 {
		t.Skip("this machine has no non-loopback address to try")
	}
	conn, err := net.DialTimeout("tcp", c.Address(), 2*time.Second)
	if err != nil {
		t.Fatalf("control: frontend not reachable on loopback: %v", err)
	}
	conn.Close()
	for name, port := range c.Ports() {
		for _, ip := range others {
			addr := net.JoinHostPort(ip.String(), fmt.Sprint(port))
			if conn, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
				conn.Close()
				t.Errorf("%s answers on %s", name, addr)
			}
		}
	}
}

// TestStarterClusterColdAndWarm runs `starter cluster --exit-when-done
// --no-demo` twice on fresh databases and a fresh state folder: the first
// run creates and migrates the databases and a local CA, the second finds
// both and changes nothing; both pass the self-test over mTLS with the
// worker's and the API server's tokens. The start times are logged.
func TestStarterClusterColdAndWarm(t *testing.T) {
	workerBin, starterBin := binaries(t)
	state := t.TempDir()
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000_000)
	db := cluster.DB{Name: "iru_starter_temporal_" + suffix, VisibilityName: "iru_starter_temporal_vis_" + suffix}
	t.Cleanup(func() {
		if err := cluster.DropDatabases(context.Background(), db); err != nil {
			t.Error(err)
		}
	})
	serverBin, _ := testenv.ToolPath("IRU_TEMPORAL_SERVER_BIN", "temporal-server")
	sqlTool, _ := testenv.ToolPath("IRU_TEMPORAL_SQL_TOOL", "temporal-sql-tool")
	env := append(os.Environ(), "IRU_STATE_DIR="+state, "IRU_WORKER_BIN="+workerBin,
		"IRU_TEMPORAL_SERVER_BIN="+serverBin, "IRU_TEMPORAL_SQL_TOOL="+sqlTool,
		"IRU_DEV_FRONTEND_PORT=0", "IRU_DEV_UI_PORT=0", "IRU_API_ADDR=127.0.0.1:0", "IRU_WORKER_HTTP_ADDR="+freeAddr(t),
		"IRU_LAB_PVE_ADDR=127.0.0.1:0", "IRU_LAB_KEYCLOAK_ADDR=127.0.0.1:0", "IRU_CODEC_SERVER_ADDR=127.0.0.1:0",
		"IRU_CLUSTER_DB_NAME="+db.Name, "IRU_CLUSTER_VISIBILITY_DB_NAME="+db.VisibilityName)
	run := func(want string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, starterBin, "cluster", "--exit-when-done", "--no-demo")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("starter cluster: %v\n%s\n%s", err, out, logTails(filepath.Join(state, "logs"), 30))
		}
		ready := ""
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "Temporal cluster frontend") {
				ready = line
			}
		}
		if !strings.Contains(ready, want) || !strings.Contains(string(out), "selftest healthy") {
			t.Fatalf("want %q in the cluster's start line and a self-test:\n%s", want, out)
		}
		t.Log(strings.TrimPrefix(ready, "==> "))
		return string(out)
	}
	run("created databases " + db.Name + ", " + db.VisibilityName)
	portsFile := filepath.Join(state, "cluster", "temporal", "membership-ports.json")
	coldPorts, err := os.ReadFile(portsFile)
	if err != nil {
		t.Fatalf("the cold start recorded no membership ports: %v", err)
	}
	for _, k := range []string{"ca-key.pem", "worker-key.pem", "api-key.pem", "operator-key.pem", "frontend-key.pem", "internode-key.pem"} {
		fi, err := os.Stat(filepath.Join(state, "cluster", "pki", k))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", k, err, fi.Mode().Perm())
		}
	}
	run("schema present")
	// The warm start must take the same membership ports: the server
	// finds its peers in the membership table, where the cold start's
	// services are still listed, and on new ports would spend some 40 s
	// joining those dead addresses before it serves.
	if warmPorts, err := os.ReadFile(portsFile); err != nil || !bytes.Equal(warmPorts, coldPorts) {
		t.Errorf("membership ports: cold %s, warm %s (%v); want the same", coldPorts, warmPorts, err)
	}
}

// logTails is the last n lines of each log in dir, for a failure message:
// the folder is gone by the time anyone reads a CI log.
func logTails(dir string, n int) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Sprintf("(logs: %v)", err)
	}
	var b strings.Builder
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			fmt.Fprintf(&b, "==> %s: %v\n", e.Name(), err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "==> last %d lines of %s:\n%s\n", len(lines), e.Name(), strings.Join(lines, "\n"))
	}
	return b.String()
}
