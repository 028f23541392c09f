package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/logging"
	"github.com/iru-responder/responder/internal/metrics"
	"github.com/iru-responder/responder/internal/temporalclient"
	"github.com/iru-responder/responder/internal/version"
)

func init() { commands = append(commands, newServeCmd) }

func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the API server (health, readiness, metrics)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg serveConfig
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			log := logging.New(os.Stderr, cfg.Log, "starter-serve")
			prot, err := codec.OpenProtection(cmd.Context(), cfg.Protection.Keys, cfg.Protection.Codec)
			if err != nil {
				return err
			}
			defer prot.Close()
			return serve(cmd.Context(), cfg.Server, prot.DataConverter(), log, nil)
		},
	}
}

// temporalReady adapts a client to api.TemporalHealth.
type temporalReady struct{ c client.Client }

func (t temporalReady) Ready(ctx context.Context) error { return temporalclient.Ready(ctx, t.c) }

// serve runs the API server until ctx ends. If ready is not nil it receives
// the listen address once the server listens.
func serve(ctx context.Context, cfg config.Server, dc converter.DataConverter, log *slog.Logger, ready chan<- string) error {
	log.Info("starting", "version", version.String(), "config", config.Redacted(&cfg))
	reg, err := metrics.New()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("IRU_API_ADDR=%s: %w", cfg.HTTPAddr, err)
	}
	// The server answers /healthz (and /readyz with 503) while Temporal is
	// still unreachable; the client connects lazily so serve can start first.
	co, err := temporalclient.ClientOptions(cfg.Temporal, temporalclient.Options{Logger: log, Metrics: reg.TemporalHandler(), DataConverter: dc})
	if err != nil {
		return err
	}
	c, err := client.NewLazyClient(co)
	if err != nil {
		return fmt.Errorf("temporal client: %w", err)
	}
	defer c.Close()
	srv := &api.Server{Log: log, Temporal: temporalReady{c}, Metrics: reg}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
