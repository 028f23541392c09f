//go:build integration

package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/freeport"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/lab"
	"github.com/iru-responder/responder/internal/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the worker and starter once per test run.
func binaries(t *testing.T) (worker, starter string) {
	t.Helper()
	buildOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, buildErr = os.MkdirTemp("", "iru-bin-*")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-tags", "localstack", "-o", binDir+"/", "./worker", "./starter")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "worker"), filepath.Join(binDir, "starter")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := freeport.TCP("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestWorkerBinary runs the real worker binary against the dev server: it
// becomes healthy, serves the Temporal SDK's metrics, runs the self-test
// through `starter selftest`, and exits 0 on SIGTERM.
func TestWorkerBinary(t *testing.T) {
	workerBin, starterBin := binaries(t)
	dev := testenv.Temporal(t)
	httpAddr := freeAddr(t)
	hsm := hsmtest.Config(t) // sets SOFTHSM2_CONF for this test and its children
	keyDir := filepath.Join(t.TempDir(), "codec-keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	l, err := lab.Start(context.Background(), lab.Options{PVEAddr: "127.0.0.1:0", KeycloakAddr: "127.0.0.1:0", StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	env := append(os.Environ(), "IRU_TEMPORAL_ADDRESS="+dev.Address(), "IRU_WORKER_HTTP_ADDR="+httpAddr, "IRU_WORKER_SHUTDOWN_GRACE=5s",
		"IRU_WORKER_WORKFLOW_CACHE=1", // forces evictions: checked in the metrics below
		"IRU_HSM_MODULE="+hsm.Module, "IRU_HSM_TOKEN_LABEL="+hsm.TokenLabel, "IRU_HSM_PIN="+hsm.PIN, "IRU_CODEC_KEY_DIR="+keyDir,
		"IRU_LEDGER_SQLITE_PATH="+filepath.Join(state, "ledger.db"), "IRU_EVIDENCE_DIR="+filepath.Join(state, "evidence"),
		"IRU_SECRETS_DIR="+filepath.Join(state, "secrets"))
	env = append(env, l.Env()...)
	var logs testenv.LockedBuffer
	cmd := exec.Command(workerBin)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, err := get("http://" + httpAddr + "/healthz")
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker not healthy in 30s (last %d %v); logs:\n%s", code, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	st := exec.Command(starterBin, "selftest")
	st.Env = env
	out, err := st.CombinedOutput()
	if err != nil {
		t.Fatalf("starter selftest: %v\n%s\nworker logs:\n%s", err, out, logs.String())
	}
	if !strings.Contains(string(out), "selftest healthy") {
		t.Errorf("selftest output: %s", out)
	}

	code, body, err := get("http://" + httpAddr + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("metrics: %d %v", code, err)
	}
	for _, want := range []string{"temporal_workflow_completed", "temporal_activity_execution_latency", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// IRU_WORKER_WORKFLOW_CACHE=1 reached the SDK: a self-test workflow
	// was pushed out of the one-workflow cache by another and replayed at
	// its next task (with the default cache of 10,000 none is).
	if n := metricValue(body, "temporal_sticky_cache_miss"); n < 1 {
		t.Errorf("temporal_sticky_cache_miss = %v with a cache of one workflow, want at least 1:\n%s", n, body)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exit after SIGTERM: %v; logs:\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("worker did not stop within 20s of SIGTERM")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no graceful stop in logs:\n%s", logs.String())
	}
}

// TestStarterUp runs the README's main command (`starter up`) with
// --exit-when-done on free ports: keys, codec server, dev server, lab,
// worker process, API server and self-test come up, the scenario plays
// through the intake and the responder API, the report is written, and it
// exits 0.
func TestStarterUp(t *testing.T) {
	workerBin, starterBin := binaries(t)
	cli, err := testenv.TemporalCLI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, starterBin, "up", "--exit-when-done")
	state := t.TempDir()
	cmd.Env = append(os.Environ(),
		"IRU_STATE_DIR="+state,
		"IRU_TEMPORAL_CLI="+cli,
		"IRU_WORKER_BIN="+workerBin,
		"IRU_DEV_FRONTEND_PORT=0", "IRU_DEV_UI_PORT=0",
		"IRU_API_ADDR="+freeAddr(t), "IRU_API_INTERNAL_ADDR="+freeAddr(t), "IRU_WORKER_HTTP_ADDR="+freeAddr(t), "IRU_CODEC_SERVER_ADDR="+freeAddr(t),
		"IRU_LAB_PVE_ADDR="+freeAddr(t), "IRU_LAB_KEYCLOAK_ADDR="+freeAddr(t),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("starter up: %v\n%s", err, out)
	}
	for _, want := range []string{"selftest healthy", "IRU Responder is up.", "Temporal Web UI   http://127.0.0.1:",
		"the intake accepted it", "api-gateway isolated", "jdoe's Keycloak sessions revoked (0 left)", "bob approved shutdown",
		"bob approved restore", "isolation lifted (true)", "post-incident report written", "Console           http://127.0.0.1:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	reports, _ := filepath.Glob(filepath.Join(state, "reports", "INC-*.md"))
	if len(reports) != 1 {
		t.Fatalf("reports written: %v", reports)
	}
	b, err := os.ReadFile(reports[0])
	if err != nil || !strings.Contains(string(b), "| shutdown | approved | bob |") || !strings.Contains(string(b), "## Lessons learned") {
		t.Errorf("report lacks the approval or the lessons section:\n%s", b)
	}
}

// metricValue sums the samples of the Prometheus metric name in body.
func metricValue(body, name string) float64 {
	var sum float64
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
