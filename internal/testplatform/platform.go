// Package testplatform gives integration tests a whole platform: the lab, a
// fresh SoftHSM token, a worker host configured exactly as the worker
// binary would be (from environment variables), a client with the payload
// codec, on its own task queue of the shared Temporal target (package
// testenv: the dev server, or with IRU_TEST_TARGET=cluster the real cluster,
// where the worker and the client present their own certificates and
// tokens).
// It also has the helpers tests use to drive incidents: wait for a step,
// decide on an approval, approve everything.
package testplatform

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/lab"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/workerhost"
	"github.com/iru-responder/responder/workflows"
)

// Platform is one test's platform.
type Platform struct {
	Lab *lab.Lab
	// Target is the Temporal server the platform runs on.
	Target    testenv.Target
	Host      *workerhost.Host
	Client    client.Client
	TaskQueue string
	State     string
	// Env is the worker configuration the host was built from (without the
	// task queue); a test can start the worker binary with it.
	Env []string
}

// Options configure [New].
type Options struct {
	// TaskDurations overrides the lab's task durations per type.
	TaskDurations map[string]time.Duration
	// TaskDuration is the lab's default task duration (0: 20 ms).
	TaskDuration time.Duration
	// Plain uses the SDK's default data converter instead of the codec
	// (for recording histories that a replay test can read without keys).
	Plain bool
	// Env adds or overrides worker configuration variables.
	Env []string
	// NoWorker builds the platform without an in-process worker (the test
	// runs the worker binary itself).
	NoWorker bool
	// PVEInventory is an inventory file for the lab's PVE simulator
	// ("": its embedded inventory).
	PVEInventory string
	// Target is the Temporal server to run on (nil: the one
	// IRU_TEST_TARGET chooses, testenv.Current); benchmarks that measure
	// both targets set it.
	Target testenv.Target
}

// New builds a platform; everything stops when the test ends.
func New(t testing.TB, opts Options) *Platform {
	t.Helper()
	target := opts.Target
	if target == nil {
		target = testenv.Current(t)
	}
	hsm := hsmtest.Config(t)
	state := t.TempDir()
	keyDir := filepath.Join(state, "codec-keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	td := opts.TaskDuration
	if td == 0 {
		td = 20 * time.Millisecond
	}
	l, err := lab.Start(ctx, lab.Options{PVEAddr: "127.0.0.1:0", KeycloakAddr: "127.0.0.1:0", StateDir: state,
		PVETaskDuration: td, PVETaskDurations: opts.TaskDurations, PVEInventoryPath: opts.PVEInventory})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	env := append(l.Env(), target.Env(testenv.RoleWorker)...)
	env = append(env,
		"IRU_HSM_MODULE="+hsm.Module, "IRU_HSM_TOKEN_LABEL="+hsm.TokenLabel, "IRU_HSM_PIN="+hsm.PIN,
		"SOFTHSM2_CONF="+os.Getenv("SOFTHSM2_CONF"),
		"IRU_CODEC_KEY_DIR="+keyDir,
		"IRU_LEDGER_SQLITE_PATH="+filepath.Join(state, "ledger.db"),
		"IRU_EVIDENCE_DIR="+filepath.Join(state, "evidence"),
		"IRU_SECRETS_DIR="+filepath.Join(state, "secrets"),
		"IRU_PVE_TASK_POLL=20ms",
		"IRU_PVE_ALLOW_CIDRS=10.10.0.0/24",
	)
	keysFile := filepath.Join(state, "decision-keys.pem")
	if err := os.WriteFile(keysFile, decisionSigner.Key(time.Time{}, time.Time{}).EncodePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append(env, "IRU_DECISION_KEYS_FILE="+keysFile)
	env = append(env, opts.Env...)
	var cfg workerhost.Config
	if err := config.LoadFrom(&cfg, env); err != nil {
		t.Fatal(err)
	}
	host, err := workerhost.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.Close)
	copts := client.Options{DataConverter: host.DataConverter(),
		// Through slog, not the SDK's default logger (every line at debug
		// level, on stdout): a benchmark sends slog to a file (see
		// testenv.Main), since a line printed between a benchmark's name
		// and its figures breaks its result line.
		Logger: log.NewStructuredLogger(slog.Default()),
		// The worker built on this client records refused decision Updates.
		Interceptors: []interceptor.ClientInterceptor{host.Audit()},
		// As every client the platform creates (internal/temporalclient).
		FailureConverter: temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
			DataConverter: host.DataConverter(), EncodeCommonAttributes: true})}
	if opts.Plain {
		copts.DataConverter, copts.FailureConverter = nil, nil
	}
	// The tests act as the API server would; the worker as itself.
	c := testenv.Dial(t, target, testenv.RoleAPI, copts)
	tq := "it-" + uuid.NewString()
	if !opts.NoWorker {
		wc := c
		if target.Name() != "dev" {
			wc = testenv.Dial(t, target, testenv.RoleWorker, copts)
		}
		testenv.StartWorker(t, func() worker.Worker { return host.NewWorker(wc, tq, worker.Options{}) })
	}
	return &Platform{Lab: l, Target: target, Host: host, Client: c, TaskQueue: tq, State: state, Env: env}
}

// Approvers the tests use (their roles as in the lab realm).
var (
	Bob   = workflows.Approver{Subject: "keycloak:iru/bob", Username: "bob", Roles: []string{"ir-responder", "ir-lead"}, SourceIP: "127.0.0.1"}
	Alice = workflows.Approver{Subject: "keycloak:iru/alice", Username: "alice", Roles: []string{"ir-responder"}, SourceIP: "127.0.0.1"}
	Carol = workflows.Approver{Subject: "keycloak:iru/carol", Username: "carol", Roles: []string{"ir-admin", "ir-lead", "security-officer"}, SourceIP: "127.0.0.1"}
)

// statusTimeout bounds one status query: a query the server never
// answered (the incident's task queue had no worker) held a capacity
// benchmark for 30 minutes (WaitStep asks again).
const statusTimeout = 30 * time.Second

// Status queries an incident's status.
func Status(c client.Client, wfID string) (workflows.IncidentStatus, error) {
	var st workflows.IncidentStatus
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	v, err := c.QueryWorkflow(ctx, wfID, "", workflows.StatusQuery)
	if err != nil {
		return st, err
	}
	err = v.Get(&st)
	return st, err
}

// WaitStep polls the status query until step has status want.
func WaitStep(t testing.TB, c client.Client, wfID, step, want string, timeout time.Duration) workflows.IncidentStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var st workflows.IncidentStatus
	for {
		got, err := Status(c, wfID)
		if err == nil {
			st = got
			for _, s := range st.Steps {
				if s.ID == step && s.Status == want {
					return st
				}
				if s.ID == step && (s.Status == workflows.StepFailed || s.Status == workflows.StepDenied) {
					t.Fatalf("step %s is %s: %s", step, s.Status, s.Error)
				}
			}
			if st.State != workflows.StateOpen {
				t.Fatalf("incident ended %s (%s) before step %s was %s", st.State, st.Reason, step, want)
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st.Steps, "", " ")
			t.Fatalf("step %s not %s after %s; steps: %s", step, want, timeout, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// decisionSigner plays the API server's decision key in tests: every
// platform's worker trusts it (IRU_DECISION_KEYS_FILE).
var decisionSigner = func() *decision.LocalSigner {
	s, err := decision.NewLocalSigner()
	if err != nil {
		panic(err)
	}
	return s
}()

// DecisionSigner returns the test decision key the platforms' workers trust.
func DecisionSigner() *decision.LocalSigner { return decisionSigner }

// FirstRunID returns the first run id of the incident's current chain of
// runs (what decision statements bind).
func FirstRunID(c client.Client, wfID string) (string, error) {
	d, err := c.DescribeWorkflow(context.Background(), wfID, "")
	if err != nil {
		return "", err
	}
	info := d.RawResponse.GetWorkflowExecutionInfo()
	if r := info.GetFirstRunId(); r != "" {
		return r, nil
	}
	return info.GetExecution().GetRunId(), nil
}

// Statement signs a decision statement as the API server would after
// verifying who's token (with a second factor: amr pwd+otp).
func Statement(c client.Client, wfID string, kind decision.Kind, step string, who workflows.Approver, reason string) (decision.Signed, error) {
	run, err := FirstRunID(c, wfID)
	if err != nil {
		return decision.Signed{}, err
	}
	now := time.Now().UTC()
	return decision.Sign(context.Background(), decisionSigner, decision.Statement{
		WorkflowID: wfID, RunID: run, StepID: step, Decision: kind,
		Subject: who.Subject, Username: who.Username, Roles: who.Roles, SourceIP: who.SourceIP,
		SessionID: "test-session-" + who.Username, TokenID: uuid.NewString(), AMR: []string{"pwd", "otp"}, ACR: "1",
		Reason: reason, IssuedAt: now, ExpiresAt: now.Add(decision.DefaultTTL), Nonce: decision.NewNonce(),
	})
}

// Decide sends an approve or deny Update for step as who, with a
// statement signed by the test decision key.
func Decide(c client.Client, wfID, update, step string, who workflows.Approver) (workflows.DecisionResult, error) {
	s, err := Statement(c, wfID, decision.Kind(update), step, who, "integration test")
	if err != nil {
		return workflows.DecisionResult{}, err
	}
	h, err := c.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{
		WorkflowID: wfID, UpdateName: update, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{workflows.DecisionInput{StepID: step, Approver: who, Reason: "integration test", Statement: s}},
	})
	if err != nil {
		return workflows.DecisionResult{}, err
	}
	var res workflows.DecisionResult
	err = h.Get(context.Background(), &res)
	return res, err
}

// RunApprovingAll starts the incident in on p's task queue, approves
// every step that waits for approval (ApproveAll) and returns its result;
// it fails the test when the run does not end within two minutes.
func (p *Platform) RunApprovingAll(t testing.TB, in workflows.IncidentInput) workflows.IncidentResult {
	t.Helper()
	wfID := workflows.IncidentWorkflowID(in.Key)
	run, err := p.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: wfID, TaskQueue: p.TaskQueue}, workflows.IncidentWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	done, approverDone := make(chan struct{}), make(chan struct{})
	go func() { ApproveAll(p.Client, wfID, done); close(approverDone) }()
	var res workflows.IncidentResult
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	err = run.Get(ctx, &res)
	cancel()
	close(done)
	<-approverDone
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// ApproveAll approves every step that waits for approval, as Bob and then
// Carol (two distinct leads for quorum 2), until done is closed.
func ApproveAll(c client.Client, wfID string, done <-chan struct{}) {
	decided := map[string]int{}
	for {
		select {
		case <-done:
			return
		case <-time.After(50 * time.Millisecond):
		}
		st, err := Status(c, wfID)
		if err != nil {
			continue
		}
		for _, s := range st.Steps {
			if s.Status != workflows.StepWaitingApproval || s.Approval == nil {
				continue
			}
			n := len(s.Approval.Approvals)
			if decided[s.ID] > n {
				continue
			}
			who := Bob
			if n == 1 {
				who = Carol
			}
			if _, err := Decide(c, wfID, workflows.ApproveUpdate, s.ID, who); err == nil {
				decided[s.ID] = n + 1
			}
		}
	}
}
