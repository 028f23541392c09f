package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/devserver"
	"github.com/iru-responder/responder/internal/logging"
	"github.com/iru-responder/responder/internal/temporalclient"
	"github.com/iru-responder/responder/workflows"
)

func newUpCmd() *cobra.Command {
	var exitWhenDone bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the local stack (dev server, worker, API server), run the self-test, print where to look",
		Long: `up starts everything IRU Responder needs on this machine, on embedded defaults:
the pinned Temporal dev server (SQLite state, Web UI), the worker, and the API
server. It runs the self-test, prints the addresses and keeps the stack up
until Ctrl-C. With --exit-when-done it stops after the self-test and exits
non-zero if anything failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg config.Up
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			return up(cmd.Context(), cmd.OutOrStdout(), cfg, exitWhenDone)
		},
	}
	cmd.Flags().BoolVar(&exitWhenDone, "exit-when-done", false, "stop the stack after the self-test; exit non-zero if a step failed")
	return cmd
}

func up(ctx context.Context, out io.Writer, cfg config.Up, exitWhenDone bool) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("IRU_STATE_DIR=%s: %w", cfg.StateDir, err)
	}
	logDir := filepath.Join(cfg.StateDir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return err
	}
	openLog := func(name string) (*os.File, error) {
		return os.OpenFile(filepath.Join(logDir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	}

	// 1. Temporal dev server.
	devLog, err := openLog("temporal.log")
	if err != nil {
		return err
	}
	defer devLog.Close()
	say("starting Temporal dev server (%s)", cfg.TemporalCLI)
	t0 := time.Now()
	dev, err := devserver.Start(ctx, devserver.Options{
		Binary:           cfg.TemporalCLI,
		DBFile:           filepath.Join(cfg.StateDir, "temporal.db"),
		Port:             cfg.FrontendPort,
		UI:               true,
		UIPort:           cfg.UIPort,
		SearchAttributes: workflows.SearchAttributeFlags(),
		Log:              devLog,
	})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping Temporal dev server")
		_ = dev.Stop()
	}()
	say("Temporal frontend %s, Web UI %s (ready in %s)", dev.Address(), dev.UIURL(), time.Since(t0).Round(time.Millisecond))

	temporalEnv := []string{"IRU_TEMPORAL_ADDRESS=" + dev.Address(), "IRU_TEMPORAL_NAMESPACE=" + dev.Namespace()}
	// 2. The lab: simulated Proxmox VE and Keycloak, unless real ones are configured.
	platformEnv := temporalEnv
	if cfg.Lab.Enabled {
		l, _, err := startLab(ctx, cfg.StateDir, cfg.Lab)
		if err != nil {
			return err
		}
		defer func() {
			say("stopping the lab")
			l.Close()
		}()
		say("lab up: Proxmox VE %s, Keycloak %s", l.PVE.URL(), l.Keycloak.URL())
		platformEnv = append(platformEnv, l.Env()...)
	}
	envFile := filepath.Join(cfg.StateDir, "iru.env")
	if err := writeEnvFile(envFile, platformEnv); err != nil {
		return fmt.Errorf("write %s: %w", envFile, err)
	}

	// 3. Worker, as its own process: the real binary, as in production.
	workerLog, err := openLog("worker.log")
	if err != nil {
		return err
	}
	defer workerLog.Close()
	wcmd := exec.Command(cfg.WorkerBin)
	wcmd.Env = append(os.Environ(), append(platformEnv, "IRU_WORKER_HTTP_ADDR="+cfg.WorkerAddr)...)
	wcmd.Stdout, wcmd.Stderr = workerLog, workerLog
	wcmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := wcmd.Start(); err != nil {
		return fmt.Errorf("start worker %s (IRU_WORKER_BIN): %w", cfg.WorkerBin, err)
	}
	workerDone := make(chan error, 1)
	go func() { workerDone <- wcmd.Wait() }()
	defer func() {
		say("stopping worker")
		_ = wcmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-workerDone:
		case <-time.After(40 * time.Second):
			_ = wcmd.Process.Kill()
		}
	}()
	say("worker started (pid %d), health and metrics on http://%s", wcmd.Process.Pid, cfg.WorkerAddr)

	// 4. API server, in this process.
	apiLog, err := openLog("api.log")
	if err != nil {
		return err
	}
	defer apiLog.Close()
	srvCfg := config.Server{
		Temporal: config.Temporal{Address: dev.Address(), Namespace: dev.Namespace()},
		Log:      cfg.Log,
		HTTPAddr: cfg.APIAddr,
	}
	apiCtx, stopAPI := context.WithCancel(context.Background())
	apiReady := make(chan string, 1)
	apiDone := make(chan error, 1)
	go func() { apiDone <- serve(apiCtx, srvCfg, logging.New(apiLog, cfg.Log, "starter-serve"), apiReady) }()
	defer func() {
		stopAPI()
		<-apiDone
	}()
	select {
	case addr := <-apiReady:
		cfg.APIAddr = addr
		say("API server on http://%s (/healthz, /readyz, /metrics)", addr)
	case err := <-apiDone:
		return fmt.Errorf("API server: %w", err)
	}

	// 5. Self-test through the real path: client → server → worker → back.
	c, err := temporalclient.Dial(ctx, srvCfg.Temporal, temporalclient.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer c.Close()
	stCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	res, err := runSelfTest(stCtx, c)
	cancel()
	if err != nil {
		say("self-test FAILED: %v (worker log: %s)", err, filepath.Join(logDir, "worker.log"))
		return &exitError{code: 1, err: err}
	}
	printSelfTest(out, res)

	fmt.Fprintf(out, `
IRU Responder is up.
  Temporal Web UI   %s
  Temporal frontend %s (namespace %s)
  API server        http://%s
  Worker metrics    http://%s/metrics
  Logs              %s
  Env file          %s (for other shells: export $(cat %s))
Try:
  bin/starter selftest
  .tools/bin/temporal workflow list --address %s
`, dev.UIURL(), dev.Address(), dev.Namespace(), cfg.APIAddr, cfg.WorkerAddr, logDir, envFile, envFile, dev.Address())

	if exitWhenDone {
		if !res.Result.Healthy {
			return &exitError{code: 1, err: errors.New("self-test reported an unhealthy dependency")}
		}
		say("--exit-when-done: stopping")
		return nil
	}
	say("press Ctrl-C to stop")
	select {
	case <-ctx.Done():
	case err := <-workerDone:
		return fmt.Errorf("worker exited: %v (see %s)", err, filepath.Join(logDir, "worker.log"))
	}
	return nil
}
