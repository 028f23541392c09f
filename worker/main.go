// Command worker is the IRU Responder worker: it polls the platform's task
// queue on Temporal and runs the incident workflows and the response
// activities. It serves /healthz and Prometheus /metrics, and stops
// gracefully on SIGINT or SIGTERM: it stops polling and lets running
// activities finish within IRU_WORKER_SHUTDOWN_GRACE.
//
// Configuration comes from environment variables; see the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/gctune"
	"github.com/iru-responder/responder/internal/logging"
	"github.com/iru-responder/responder/internal/metrics"
	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/internal/temporalclient"
	"github.com/iru-responder/responder/internal/version"
	"github.com/iru-responder/responder/internal/workerhost"
	"github.com/iru-responder/responder/workflows"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		fmt.Println(version.String())
		return
	}
	gctune.Apply()
	var cfg workerhost.Config
	if err := config.Load(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	log := logging.New(os.Stderr, cfg.Log, "worker")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("worker stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg workerhost.Config, log *slog.Logger) error {
	log.Info("starting", "version", version.String(), "gc", gctune.Current().String(), "config", config.Redacted(&cfg))
	reg, err := metrics.New()
	if err != nil {
		return err
	}
	// Listen before dialing, so a port conflict is reported at once.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("IRU_WORKER_HTTP_ADDR=%s: %w", cfg.HTTPAddr, err)
	}
	var running atomic.Bool
	var c client.Client
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !running.Load() {
			http.Error(w, "worker not running", http.StatusServiceUnavailable)
			return
		}
		hctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := temporalclient.Ready(hctx, c); err != nil {
			http.Error(w, "temporal unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving health and metrics", "addr", ln.Addr().String())

	// Open the dependencies: HSM keys and the payload codec (payloads are
	// encrypted before they leave the worker), ledger, evidence locker,
	// playbooks (an invalid one stops the worker here), Keycloak client.
	host, err := workerhost.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer host.Close()

	c, err = temporalclient.DialRetry(ctx, cfg.Temporal, temporalclient.Options{Logger: log, Metrics: reg.TemporalHandler(), DataConverter: host.DataConverter()}, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()

	// One cache per process, sized before the first worker starts.
	worker.SetStickyWorkflowCacheSize(cfg.WorkflowCacheSize)
	w := host.NewWorker(c, workflows.TaskQueue, worker.Options{WorkerStopTimeout: cfg.ShutdownGrace,
		// Refused decision Updates and key changes are recorded in the ledger by the worker.
		Interceptors: []interceptor.WorkerInterceptor{host.Audit()}})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	running.Store(true)
	log.Info("polling", "taskQueue", workflows.TaskQueue, "temporal", cfg.Temporal.Address, "namespace", cfg.Temporal.Namespace)
	// The watch on incidents terminated or reset outside the platform runs
	// wherever a worker runs; a failure here is logged, not fatal (`starter
	// up` creates the schedule too).
	if change, err := schedules.EnsureWatch(ctx, c.ScheduleClient(), workflows.TaskQueue); err != nil {
		log.Error("watch schedule", "schedule", workflows.WatchScheduleID, "err", err)
	} else {
		log.Info("watch schedule", "schedule", workflows.WatchScheduleID, "change", change, "every", workflows.WatchInterval)
	}
	// The daily check of the controls (drift opens an incident), as the watch.
	if change, err := schedules.EnsureControls(ctx, c.ScheduleClient(), workflows.TaskQueue); err != nil {
		log.Error("controls schedule", "schedule", workflows.ControlsScheduleID, "err", err)
	} else {
		log.Info("controls schedule", "schedule", workflows.ControlsScheduleID, "change", change, "cron", schedules.ControlsCron)
	}
	<-ctx.Done()
	log.Info("shutting down: no new tasks, running activities get the grace period", "grace", cfg.ShutdownGrace)
	running.Store(false)
	w.Stop()
	log.Info("stopped")
	return nil
}
