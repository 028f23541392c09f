//go:build localstack

// Package localstack runs IRU Responder on one machine: a SoftHSM2 token,
// the codec server, the Temporal dev server or a real Temporal cluster,
// the lab (simulated Proxmox VE and Keycloak), the worker binary and the
// API server, then the self-test, the schedules and the demo scenario.
// It is what `starter up` and `starter cluster` run, and is only in builds
// with the localstack tag.
package localstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/internal/cluster"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/demo"
	"github.com/iru-responder/responder/internal/devserver"
	"github.com/iru-responder/responder/internal/drills"
	"github.com/iru-responder/responder/internal/freeport"
	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/intake"
	intakeauth "github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/keys/softhsm"
	"github.com/iru-responder/responder/internal/lab"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/logging"
	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/internal/temporalclient"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// Config configures the local stack (`starter up`, and `starter cluster`
// with the cluster's settings).
type Config struct {
	config.Up
	Codec codec.Config
}

// Validate implements config.Validator.
func (c *Config) Validate() error { return errors.Join(c.Up.Validate(), c.Codec.Validate()) }

// APIServer is the API server the stack runs in this process, configured
// from the stack's variables.
type APIServer struct {
	// Temporal is where the API server's Temporal client connects; the
	// stack's own client (self-test, scenario, schedules) uses it too.
	Temporal config.Temporal
	// Run serves until ctx ends; it sends the listen address on ready once
	// the server listens.
	Run func(ctx context.Context, prot *codec.Protection, log *slog.Logger, ready chan<- string) error
}

// Hooks are the operator CLI's pieces the stack runs, so that the stack
// does what `starter serve`, `starter selftest` and `starter drills sync`
// do.
type Hooks struct {
	// APIServer configures the API server from env (the process
	// environment and the stack's variables, as `starter serve` reads them).
	APIServer func(env []string) (APIServer, error)
	// SelfTest runs the self-test workflow and prints its result to out; it
	// reports whether every dependency was healthy.
	SelfTest func(ctx context.Context, c client.Client, out io.Writer) (healthy bool, err error)
	// SyncDrills makes the drill schedules match f and returns how many it
	// synced.
	SyncDrills func(ctx context.Context, c client.Client, f *drills.File) (int, error)
}

// RunOptions are the flags of `starter up` and `starter cluster`.
type RunOptions struct {
	// ExitWhenDone stops the stack after the scenario's report; Run then
	// returns an error if a step failed.
	ExitWhenDone bool
	// NoDemo skips the scenario.
	NoDemo bool
}

// Run starts the local stack on the dev server, or on a real Temporal
// cluster when clusterCfg is not nil, runs the self-test, creates the
// schedules, plays the scenario against the lab and prints where to look.
// Without opts.ExitWhenDone it keeps the stack up until ctx ends. It
// stops everything it started before it returns.
func Run(ctx context.Context, cfg Config, clusterCfg *config.Cluster, hooks Hooks, out io.Writer, opts RunOptions) error {
	s := &stack{cfg: cfg, out: out, clusterCfg: clusterCfg, hooks: hooks}
	defer s.close()
	return s.up(ctx, opts.ExitWhenDone, opts.NoDemo)
}

// stack is the local stack of `starter up` and `starter cluster`.
type stack struct {
	cfg     Config
	hooks   Hooks
	out     io.Writer
	logDir  string
	closers []func() // run in reverse order by close

	prot     *codec.Protection
	lab      *lab.Lab
	codecURL string
	codecTok string
	dev      *devserver.Server
	// cluster is set by `starter cluster` (clusterCfg non-nil) instead of dev.
	cluster    *cluster.Cluster
	clusterCfg *config.Cluster
	// Where Temporal is, whichever runs it; uiURL is "" without a Web UI.
	temporalAddr, namespace, uiURL string
	env                            []string // the platform's configuration for child processes
	// workerEnv and apiEnv are added to env for the worker and the API
	// server only (their own certificate and token in cluster mode).
	workerEnv, apiEnv []string
	apiAddr           string
	// consoleBase is the browser console's URL ("": not served).
	consoleBase string
	// intakeFile is the intake configuration the API server reads.
	intakeFile string
	client     client.Client
	workerErr  chan error
}

func (s *stack) say(format string, args ...any) { fmt.Fprintf(s.out, "==> "+format+"\n", args...) }

func (s *stack) defer_(f func()) { s.closers = append(s.closers, f) }

func (s *stack) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

func (s *stack) openLog(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(s.logDir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err == nil {
		s.defer_(func() { f.Close() })
	}
	return f, err
}

func (s *stack) up(ctx context.Context, exitWhenDone, noDemo bool) error {
	cfg := s.cfg
	s.logDir = filepath.Join(cfg.StateDir, "logs")
	if err := os.MkdirAll(s.logDir, 0o700); err != nil {
		return fmt.Errorf("IRU_STATE_DIR=%s: %w", cfg.StateDir, err)
	}
	if s.cfg.UIPort == 0 { // the codec server's CORS origin needs it before the dev server starts
		p, err := freeport.TCP("127.0.0.1")
		if err != nil {
			return err
		}
		s.cfg.UIPort = p
	}
	for _, st := range s.steps() {
		if err := st.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	stCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	healthy, err := s.hooks.SelfTest(stCtx, s.client, s.out)
	cancel()
	if err != nil {
		s.say("self-test FAILED: %v (worker log: %s)", err, filepath.Join(s.logDir, "worker.log"))
		return err
	}
	if err := s.schedules(ctx); err != nil {
		s.say("schedules: %v", err)
		if exitWhenDone {
			return err
		}
	}
	if !healthy && exitWhenDone {
		return errors.New("self-test reported an unhealthy dependency")
	}
	reportPath := ""
	if s.lab != nil && !noDemo {
		reportPath, err = demo.Run(ctx, demo.Options{
			Out: s.out, Lab: s.lab, Client: s.client, APIAddr: s.apiAddr, StateDir: s.cfg.StateDir,
			Asset: "api-gateway", User: "jdoe", Key: "container-compromise:api-gateway",
		})
		if err != nil {
			s.say("scenario FAILED: %v (logs in %s)", err, s.logDir)
			if exitWhenDone {
				return err
			}
		}
	}
	s.summary(reportPath)
	if exitWhenDone {
		s.say("--exit-when-done: stopping")
		return nil
	}
	s.say("press Ctrl-C to stop")
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.workerErr:
		return fmt.Errorf("worker exited: %v (see %s)", err, filepath.Join(s.logDir, "worker.log"))
	}
}

type stackStep struct {
	name string
	run  func(context.Context) error
}

// steps are the stack's pieces in start order. The cluster trusts the
// lab's Keycloak, so in cluster mode the lab comes first.
func (s *stack) steps() []stackStep {
	if s.clusterCfg != nil {
		return []stackStep{
			{"keys", s.startKeys},
			{"codec server", s.startCodecServer},
			{"lab", s.startLab},
			{"Temporal cluster", s.startCluster},
			{"evidence store", s.startEvidenceStore},
			{"worker", s.startWorker},
			{"API server", s.startAPI},
		}
	}
	return []stackStep{
		{"keys", s.startKeys},
		{"codec server", s.startCodecServer},
		{"Temporal dev server", s.startDevServer},
		{"lab", s.startLab},
		{"worker", s.startWorker},
		{"API server", s.startAPI},
	}
}

// startKeys prepares the development HSM token and opens the payload key
// ring before any other process does, so keys are created exactly once.
func (s *stack) startKeys(ctx context.Context) error {
	tok, err := softhsm.Ensure(filepath.Join(s.cfg.StateDir, "softhsm"), "iru")
	if err != nil {
		return err
	}
	ccfg := s.cfg.Codec
	ccfg.KeyDir = filepath.Join(s.cfg.StateDir, "codec-keys")
	s.prot, err = codec.OpenProtection(ctx, tok.Config, ccfg, nil)
	if err != nil {
		return err
	}
	s.defer_(func() { _ = s.prot.Close() })
	s.env = append(s.env, tok.Env()...)
	s.env = append(s.env, "IRU_CODEC_KEY_DIR="+ccfg.KeyDir,
		"IRU_LEDGER_SQLITE_PATH="+filepath.Join(s.cfg.StateDir, "ledger.db"),
		"IRU_EVIDENCE_DIR="+filepath.Join(s.cfg.StateDir, "evidence"),
		"IRU_SECRETS_DIR="+filepath.Join(s.cfg.StateDir, "secrets"))
	s.say("keys in SoftHSM2 token %q (%s); payload key %s", tok.Config.TokenLabel, tok.Conf, s.prot.Ring.CurrentKeyID())
	return nil
}

// startCodecServer serves /encode and /decode for the Temporal CLI and Web UI.
func (s *stack) startCodecServer(context.Context) error {
	tokFile := filepath.Join(s.cfg.StateDir, "codec-token")
	tok, err := readOrCreateSecret(tokFile)
	if err != nil {
		return err
	}
	static, err := codec.NewStaticTokenAuthenticator(tok, "codec-token")
	if err != nil {
		return err
	}
	uiOrigin := fmt.Sprintf("http://127.0.0.1:%d", s.cfg.UIPort)
	var auth codec.Authenticator = static
	if s.cfg.Lab.Enabled {
		// The dev server's Web UI has no login, so it cannot send a token:
		// in the lab only, its own origin on loopback may decode.
		auth = labUIAuthenticator{origin: uiOrigin, next: static}
	}
	h, err := codec.NewServer(codec.ServerOptions{Codec: codec.NewDisplayCodec(s.prot.Ring), Authenticator: auth, AllowedOrigins: []string{uiOrigin}})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Codec.ServerAddr)
	if err != nil {
		return fmt.Errorf("IRU_CODEC_SERVER_ADDR=%s: %w", s.cfg.Codec.ServerAddr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.defer_(func() { _ = srv.Close() })
	s.codecURL, s.codecTok = "http://"+ln.Addr().String(), tok
	s.say("codec server on %s (token in %s)", s.codecURL, tokFile)
	return nil
}

func (s *stack) startDevServer(ctx context.Context) error {
	devLog, err := s.openLog("temporal.log")
	if err != nil {
		return err
	}
	s.say("starting Temporal dev server (%s)", s.cfg.TemporalCLI)
	t0 := time.Now()
	s.dev, err = devserver.Start(ctx, devserver.Options{
		Binary:           s.cfg.TemporalCLI,
		DBFile:           filepath.Join(s.cfg.StateDir, "temporal.db"),
		Port:             s.cfg.FrontendPort,
		UI:               true,
		UIPort:           s.cfg.UIPort,
		CodecEndpoint:    s.codecURL,
		SearchAttributes: workflows.SearchAttributeFlags(),
		Log:              devLog,
	})
	if err != nil {
		return err
	}
	s.defer_(func() {
		s.say("stopping Temporal dev server")
		_ = s.dev.Stop()
	})
	s.temporalAddr, s.namespace, s.uiURL = s.dev.Address(), s.dev.Namespace(), s.dev.UIURL()
	s.env = append(s.env, "IRU_TEMPORAL_ADDRESS="+s.dev.Address(), "IRU_TEMPORAL_NAMESPACE="+s.dev.Namespace(), "IRU_UI_URL="+s.dev.UIURL())
	s.say("Temporal frontend %s, Web UI %s (ready in %s)", s.dev.Address(), s.dev.UIURL(), time.Since(t0).Round(time.Millisecond))
	return nil
}

func (s *stack) startLab(ctx context.Context) error {
	if !s.cfg.Lab.Enabled {
		s.say("lab off (IRU_LAB=false): using the configured Proxmox VE and Keycloak")
		return nil
	}
	l, _, err := StartLab(ctx, s.cfg.StateDir, s.cfg.Lab)
	if err != nil {
		return err
	}
	s.defer_(func() {
		s.say("stopping the lab")
		l.Close()
	})
	s.lab = l
	s.env = append(s.env, l.Env()...)
	s.say("lab up: Proxmox VE %s, Keycloak %s", l.PVE.URL(), l.Keycloak.URL())
	return nil
}

// startWorker runs the real worker binary, as in production.
func (s *stack) startWorker(ctx context.Context) error {
	var err error
	if s.intakeFile, err = s.writeIntakeConfig(); err != nil {
		return err
	}
	if s.clusterCfg != nil {
		if err := s.shareState(ctx); err != nil {
			return err
		}
	}
	envFile := filepath.Join(s.cfg.StateDir, "iru.env")
	if err := writeEnvFile(envFile, s.env); err != nil {
		return err
	}
	workerLog, err := s.openLog("worker.log")
	if err != nil {
		return err
	}
	cmd := exec.Command(s.cfg.WorkerBin)
	cmd.Env = append(os.Environ(), append(append(s.env, s.workerEnv...), "IRU_WORKER_HTTP_ADDR="+s.cfg.WorkerAddr)...)
	cmd.Stdout, cmd.Stderr = workerLog, workerLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (IRU_WORKER_BIN): %w", s.cfg.WorkerBin, err)
	}
	done := make(chan error, 1)
	s.workerErr = done
	exited := make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	s.defer_(func() {
		s.say("stopping worker")
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	s.say("worker started (pid %d), health and metrics on http://%s", cmd.Process.Pid, s.cfg.WorkerAddr)
	return nil
}

// startAPI runs the API server in this process and dials the client the
// self-test and the scenario use.
func (s *stack) startAPI(ctx context.Context) error {
	apiLog, err := s.openLog("api.log")
	if err != nil {
		return err
	}
	// The API server is configured from the same variables as the worker,
	// exactly as `starter serve` would be.
	env := append(os.Environ(), s.env...)
	env = append(env, s.apiEnv...)
	env = append(env, "IRU_API_ADDR="+s.cfg.APIAddr, "IRU_INTAKE_CONFIG="+s.intakeFile)
	if s.consoleBase, err = s.consoleURL(ctx); err != nil {
		return err
	}
	if s.consoleBase != "" {
		env = append(env, "IRU_CONSOLE_URL="+s.consoleBase)
	}
	api, err := s.hooks.APIServer(env)
	if err != nil {
		return err
	}
	apiCtx, stop := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- api.Run(apiCtx, s.prot, logging.New(apiLog, s.cfg.Log, "starter-serve"), ready)
	}()
	s.defer_(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			s.say("API server: %v", err)
		}
	})
	select {
	case s.apiAddr = <-ready:
	case err := <-done:
		return err
	}
	s.say("API server on http://%s (detector intake /v1/alerts/{detector}, responder API /api/v1, /healthz, /readyz); /metrics on the internal listener IRU_API_INTERNAL_ADDR", s.apiAddr)
	s.client, err = temporalclient.Dial(ctx, api.Temporal, temporalclient.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DataConverter: s.prot.DataConverter()})
	if err != nil {
		return err
	}
	s.defer_(s.client.Close)
	return nil
}

// schedules creates the platform's Temporal Schedules: the 90-day intake
// API key rotation, the drills of drills/drills.yaml, the watch on
// incidents stopped outside the platform, and the daily housekeeping
// (signing the ended days' audit chains, the evidence retention sweep).
func (s *stack) schedules(ctx context.Context) error {
	change, err := schedules.EnsureIntakeKeyRotation(ctx, s.client.ScheduleClient(), workflows.TaskQueue)
	if err != nil {
		return fmt.Errorf("intake key rotation schedule: %w", err)
	}
	set, err := playbooks.Embedded()
	if err != nil {
		return err
	}
	f, err := drills.Embedded(set)
	if err != nil {
		return err
	}
	synced, err := s.hooks.SyncDrills(ctx, s.client, f)
	if err != nil {
		return fmt.Errorf("drill schedules: %w", err)
	}
	wchange, err := schedules.EnsureWatch(ctx, s.client.ScheduleClient(), workflows.TaskQueue)
	if err != nil {
		return fmt.Errorf("watch schedule: %w", err)
	}
	hk, err := schedules.EnsureHousekeeping(ctx, s.client.ScheduleClient(), workflows.TaskQueue)
	if err != nil {
		return fmt.Errorf("housekeeping schedules: %w", err)
	}
	cchange, err := schedules.EnsureControls(ctx, s.client.ScheduleClient(), workflows.TaskQueue)
	if err != nil {
		return fmt.Errorf("controls schedule: %w", err)
	}
	s.say("schedules: intake key rotation every 90 days (%s), %d drill schedule(s) synced, watch on incidents stopped outside the platform every %s (%s), daily audit chain signing at 00:10 UTC (%s), evidence retention sweep at 02:30 UTC (%s), controls check at 04:00 UTC (%s)",
		change, synced, workflows.WatchInterval, wchange, hk[workflows.SignDailyChainsScheduleID], hk[workflows.SweepEvidenceScheduleID], cchange)
	return nil
}

// labDetectors are the detectors the local stack accepts alerts from.
var labDetectors = []struct{ name, format string }{
	{"alertmanager", "alertmanager"}, {"falco", "falco"}, {"wazuh", "wazuh"}, {"generic", "generic"},
}

// writeIntakeConfig writes the local intake configuration: a spool in the
// state folder, and a detectors file with one API key per detector (minted
// once, kept 0600 in detector-keys/; only its hash is in the file). The
// detectors file is what keys.rotate_intake_keys rotates and the API
// server reloads.
func (s *stack) writeIntakeConfig() (string, error) {
	keyDir := filepath.Join(s.cfg.StateDir, "detector-keys")
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return "", err
	}
	detFile := filepath.Join(s.cfg.StateDir, "detectors.yaml")
	if _, err := os.Stat(detFile); errors.Is(err, os.ErrNotExist) {
		var df detectorsfile.File
		for _, d := range labDetectors {
			key, err := readOrCreate(filepath.Join(keyDir, d.name), intakeauth.GenerateKey)
			if err != nil {
				return "", err
			}
			df.Detectors = append(df.Detectors, intakeauth.Detector{Name: d.name, Format: d.format,
				APIKeys: []intakeauth.APIKey{{ID: "local", SHA256: intakeauth.HashKey("local", key)}}})
		}
		if err := detectorsfile.Write(detFile, df); err != nil {
			return "", err
		}
	}
	s.env = append(s.env, "IRU_INTAKE_DETECTORS_FILE="+detFile)
	icfg := intake.Config{SpoolDir: filepath.Join(s.cfg.StateDir, "spool")}
	b, err := yaml.Marshal(icfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.cfg.StateDir, "intake.yaml")
	return path, fsutil.WriteFile(path, b, 0o600)
}

func (s *stack) summary(reportPath string) {
	envFile := filepath.Join(s.cfg.StateDir, "iru.env")
	w := func(format string, args ...any) { fmt.Fprintf(s.out, format+"\n", args...) }
	w("\nIRU Responder is up.")
	if s.uiURL != "" {
		w("  Temporal Web UI   %s (payloads decoded by the codec server)", s.uiURL)
	}
	w("  Temporal frontend %s (namespace %s)", s.temporalAddr, s.namespace)
	w("  Codec server      %s (token in %s)", s.codecURL, filepath.Join(s.cfg.StateDir, "codec-token"))
	w("  API server        http://%s (detector keys in %s)", s.apiAddr, filepath.Join(s.cfg.StateDir, "detector-keys"))
	if s.consoleBase != "" {
		w("  Console           %s/ (sign in as bob, password %s, one-time code: bin/starter lab totp bob)", s.consoleBase, keycloak.UserPassword)
	}
	w("  Worker metrics    http://%s/metrics", s.cfg.WorkerAddr)
	if s.lab != nil {
		w("  Lab               Proxmox VE %s, Keycloak %s; lab credentials:", s.lab.PVE.URL(), s.lab.Keycloak.URL())
		for _, line := range strings.Split(strings.TrimRight(s.lab.Credentials(), "\n"), "\n") {
			w("    %s", line)
		}
	}
	if reportPath != "" {
		w("  Incident report   %s", reportPath)
	}
	w("  Logs              %s", s.logDir)
	w("Try (IRU_ENV_FILE=%s points the commands at this stack):", envFile)
	w("  export IRU_ENV_FILE=%s IRU_API_URL=http://%s", envFile, s.apiAddr)
	w("  bin/starter login --username bob          # password %s, then bob's one-time code: bin/starter lab totp bob", keycloak.UserPassword)
	w("  bin/starter incidents                     # the incidents, open and closed")
	w("  bin/starter incident show container-compromise:api-gateway")
	w("  bin/starter audit verify <INC-id>         # recompute the hash chain, check the HSM signature")
	w("  bin/starter evidence list <INC-id>")
	if s.cluster != nil {
		s.clusterSummary(w)
		return
	}
	w("  .tools/bin/temporal workflow list --address %s", s.dev.Address())
}

// readOrCreateSecret returns the secret in path, creating a random one
// (0600) the first time.
func readOrCreateSecret(path string) (string, error) {
	return readOrCreate(path, func() (string, error) {
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return "", err
		}
		return hex.EncodeToString(raw), nil
	})
}

// readOrCreate returns the secret in path, or makes one with mint and
// keeps it there (0600).
func readOrCreate(path string, mint func() (string, error)) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	v, err := mint()
	if err != nil {
		return "", err
	}
	return v, fsutil.WriteFile(path, []byte(v+"\n"), 0o600)
}
