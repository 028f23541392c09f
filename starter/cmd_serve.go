package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/console"
	"github.com/iru-responder/responder/internal/gctune"
	"github.com/iru-responder/responder/internal/intake"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/internal/logging"
	"github.com/iru-responder/responder/internal/metrics"
	"github.com/iru-responder/responder/internal/notify"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/internal/stores"
	"github.com/iru-responder/responder/internal/temporalclient"
	"github.com/iru-responder/responder/internal/tlsutil"
	"github.com/iru-responder/responder/internal/version"
	"github.com/iru-responder/responder/internal/workerhost"
)

// ServerTLS configures HTTPS of the API server.
type ServerTLS struct {
	Cert     string `env:"IRU_API_TLS_CERT" doc:"PEM certificate of the API server; with IRU_API_TLS_KEY turns on HTTPS (TLS 1.3 minimum)."`
	Key      string `env:"IRU_API_TLS_KEY" doc:"PEM private key of IRU_API_TLS_CERT."`
	ClientCA string `env:"IRU_API_TLS_CLIENT_CA" doc:"PEM CA of detector client certificates: when set, clients may present one (mTLS); detectors configured with mtls must."`
}

func (t ServerTLS) validate() error {
	if (t.Cert == "") != (t.Key == "") {
		return errors.New("IRU_API_TLS_CERT and IRU_API_TLS_KEY: set both or neither")
	}
	if t.ClientCA != "" && t.Cert == "" {
		return errors.New("IRU_API_TLS_CLIENT_CA: needs IRU_API_TLS_CERT (mTLS is part of HTTPS)")
	}
	return nil
}

// serveConfig configures `starter serve`.
type serveConfig struct {
	config.Server
	Protection ProtectionConfig
	Stores     stores.Config
	API        api.Config
	Notify     workerhost.NotifyConfig
	TLS        ServerTLS
	Console    console.Config
	// IntakeConfig is the detector intake's YAML file; "" serves no intake.
	IntakeConfig string `env:"IRU_INTAKE_CONFIG" doc:"Detector intake configuration (YAML: spool, detectors, rules); empty serves the responder API only."`
	// Detectors is the hot-reloaded detectors file of the intake.
	Detectors detectorsfile.Config
	// IntakeLimits are the intake's per-source and per-detector limits.
	IntakeLimits intake.LimitsConfig
	// PVE is read for the intake's asset inventory.
	PVE pveact.Config
}

// Validate implements config.Validator.
func (c *serveConfig) Validate() error {
	p := []error{c.Server.Validate(), c.Protection.validate(), c.Stores.Validate(), c.API.Validate(), c.TLS.validate(), c.Console.Validate()}
	if c.Protection.Shared.Enabled() && c.Detectors.Path != "" {
		p = append(p, errors.New("IRU_INTAKE_DETECTORS_FILE and IRU_SHARED_STATE_DSN: the detectors live in one place; unset the file (copy it in with `starter keys import-detectors`)"))
	}
	if c.IntakeConfig != "" {
		p = append(p, c.PVE.Validate(), c.IntakeLimits.Validate())
	}
	return errors.Join(p...)
}

func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the API server: detector intake, responder API, health, readiness; metrics on the internal listener",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg serveConfig
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			log := logging.New(os.Stderr, cfg.Log, "starter-serve")
			prot, err := openProtection(cmd.Context(), cfg.Protection)
			if err != nil {
				return err
			}
			defer func() { _ = prot.Close() }()
			return serve(cmd.Context(), cfg, prot, log, nil)
		},
	}
}

// temporalReady adapts a client to api.TemporalHealth.
type temporalReady struct{ c client.Client }

func (t temporalReady) Ready(ctx context.Context) error { return temporalclient.Ready(ctx, t.c) }

// serve runs the API server until ctx ends. If ready is not nil it receives
// the listen address once the server listens.
func serve(ctx context.Context, cfg serveConfig, prot *codec.Protection, log *slog.Logger, ready chan<- string) error {
	log.Info("starting", "version", version.String(), "gc", gctune.Current().String(), "config", config.Redacted(&cfg))
	reg, err := metrics.New()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("IRU_API_ADDR=%s: %w", cfg.HTTPAddr, err)
	}
	// Metrics, health and readiness for the internal network only.
	iln, err := net.Listen("tcp", cfg.InternalAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("IRU_API_INTERNAL_ADDR=%s: %w", cfg.InternalAddr, err)
	}
	defer iln.Close()
	if cfg.TLS.Cert != "" {
		tc, err := serverTLS(cfg.TLS)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tc)
	}
	// The server answers /healthz (and /readyz with 503) while Temporal is
	// still unreachable; the client connects lazily so serve can start first.
	c, err := lazyClient(cfg.Temporal, prot.DataConverter(), log, reg)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := stores.Open(ctx, cfg.Stores, prot.Keys)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	accOpts := cfg.API.Access.Options()
	accOpts.Log, accOpts.Registerer = log, reg.Prometheus
	acc, err := accesslog.New(accesslog.LedgerOf(st.Ledger), accOpts)
	if err != nil {
		return err
	}
	acc.Start(context.WithoutCancel(ctx))
	acc.Record(accesslog.Record{Action: accesslog.ActionConfigLoad, Actor: "system:api", Path: "starter serve",
		Detail: "configuration digest " + config.Digest(&cfg)})
	notifier := &notify.Notifier{Channels: cfg.Notify.Channels()}
	var shared *sharedstate.Store
	if cfg.Protection.Shared.Enabled() {
		if shared, err = sharedstate.Open(ctx, cfg.Protection.Shared, log); err != nil {
			return err
		}
		defer shared.Close()
		go shared.Run(ctx, cfg.API.AuthFailWindow)
	}
	ropts := api.ResponderOptions{Config: cfg.API, Temporal: c, Evidence: st.Evidence, Access: acc, Log: log, Notifier: notifier,
		Signer: prot.Keys.DecisionSigner()}
	if shared != nil {
		ropts.SharedFailures = shared.Failures
	}
	rs, err := api.NewResponder(ropts)
	if err != nil {
		return err
	}
	srv := &api.Server{Log: log, Temporal: temporalReady{c}, Metrics: reg, Responder: rs, Access: acc, TrustedProxies: cfg.API.Proxies()}
	if cfg.Console.Enabled() {
		con, err := console.New(console.Options{Config: cfg.Console, IssuerURL: cfg.API.OIDC.IssuerURL, API: rs.Handler(),
			Verifier: auth.NewVerifier(cfg.API.OIDC, nil), Log: log, Drills: console.TemporalDrills{Client: c}})
		if err != nil {
			return err
		}
		defer con.Close()
		srv.Console = con.Handler()
		// The trends page's figures, for Prometheus on the internal listener.
		tm := &console.TrendMetrics{Client: c, Drills: console.TemporalDrills{Client: c}, Log: log}
		if err := reg.Prometheus.Register(tm); err != nil {
			return fmt.Errorf("trend metrics: %w", err)
		}
		go tm.Run(ctx, console.TrendMetricsInterval)
	}

	var svc *intake.Service
	if cfg.IntakeConfig != "" {
		if svc, err = openIntake(ctx, cfg, c, acc, log, reg, notifier, shared); err != nil {
			return err
		}
		defer func() { _ = svc.Close() }()
		srv.Intake, srv.IntakePattern = svc.Handler, intake.Pattern
		go func() {
			if err := svc.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("intake stopped", "err", err)
			}
		}()
	} else {
		log.Warn("no IRU_INTAKE_CONFIG: serving the responder API without detector intake")
	}

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- srv.ServeInternal(iln) }()
	log.Info("serving", "addr", ln.Addr().String(), "tls", cfg.TLS.Cert != "", "intake", svc != nil, "internal_addr", iln.Addr().String())
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
	err = srv.Shutdown(sctx)
	_ = acc.Close(sctx)
	return err
}

func lazyClient(t config.Temporal, dc converter.DataConverter, log *slog.Logger, reg *metrics.Registry) (client.Client, error) {
	co, err := temporalclient.ClientOptions(t, temporalclient.Options{Logger: log, Metrics: reg.TemporalHandler(), DataConverter: dc})
	if err != nil {
		return nil, err
	}
	c, err := client.NewLazyClient(co)
	if err != nil {
		return nil, fmt.Errorf("temporal client: %w", err)
	}
	return c, nil
}

// serverTLS is TLS 1.3 only; with a client CA, client certificates are
// verified when presented (detectors configured for mTLS require one).
func serverTLS(t ServerTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("IRU_API_TLS_CERT/KEY: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	if t.ClientCA != "" {
		pool, err := tlsutil.CertPool(t.ClientCA, false)
		if err != nil {
			return nil, fmt.Errorf("IRU_API_TLS_CLIENT_CA: %w", err)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// openIntake opens the detector intake: spool, forwarder to Temporal, and
// the asset inventory read from Proxmox VE.
//
// With shared state (shared not nil) the detectors and the replay guard
// are the ones every API server shares.
func openIntake(ctx context.Context, cfg serveConfig, c client.Client, acc *accesslog.Logger, log *slog.Logger, reg *metrics.Registry, notifier *notify.Notifier, shared *sharedstate.Store) (*intake.Service, error) {
	icfg, err := intake.LoadConfig(cfg.IntakeConfig)
	if err != nil {
		return nil, fmt.Errorf("IRU_INTAKE_CONFIG=%s: %w", cfg.IntakeConfig, err)
	}
	if cfg.Detectors.Path != "" {
		icfg.DetectorsFile, icfg.DetectorsPoll = cfg.Detectors.Path, cfg.Detectors.PollEvery
	}
	icfg.Limits = cfg.IntakeLimits
	inv, err := pveact.NewInventory(cfg.PVE)
	if err != nil {
		return nil, err
	}
	deps := intake.Deps{
		Assets:   inv,
		Signaler: forward.TemporalSignaler{Client: c},
		// Authentication outcomes reach the ledger with the request's
		// record: an authenticated detector names it (never dropped), a
		// failure is aggregated per source and minute (accesslog).
		Log:        log,
		Registerer: reg.Prometheus,
		OnRefusal:  intakeRefusalRecorder(acc),
		OnDeadLetter: func(d spool.DeadLetter) {
			acc.Record(accesslog.Record{Time: d.At, Actor: "system:intake", Action: accesslog.ActionIntakeDeadLetter, Path: "intake/" + d.Owner,
				Detail: fmt.Sprintf("dead letter %s for %s: %s", d.ID, d.Key, d.Reason)})
			go notifyDeadLetter(context.WithoutCancel(ctx), notifier, d, log)
		},
	}
	if shared != nil {
		deps.Detectors, deps.Replay, icfg.DetectorsPoll = shared, shared, cfg.Protection.Shared.Poll
	}
	return intake.Open(icfg, deps)
}

// intakeRefusalRecorder records each refused request (budget, scope,
// quota) in the access log, so the ledger shows who sent what was refused.
func intakeRefusalRecorder(acc *accesslog.Logger) func(intake.Refusal) {
	return func(r intake.Refusal) {
		acc.Record(accesslog.Record{Time: r.Time, Actor: "detector:" + r.Detector + "/" + r.KeyID, Action: accesslog.ActionIntakeRefused,
			Path: "intake/" + r.Detector, Status: r.Status, SourceIP: r.RemoteAddr, Detail: r.Reason + ": " + r.Detail})
	}
}

// notifyDeadLetter tells people that an alert was refused for good and
// waits in the dead-letter queue.
func notifyDeadLetter(ctx context.Context, n *notify.Notifier, d spool.DeadLetter, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ev := notify.Event{Kind: notify.IntakeDeadLetter, At: d.At,
		Summary: fmt.Sprintf("an alert from detector %s was refused by Temporal for good and is in the dead-letter queue (starter intake dead-letters show %s)", d.Owner, d.ID),
		Details: map[string]string{"id": d.ID, "key": d.Key, "detector": d.Owner, "reason": d.Reason}}
	if _, err := n.Send(ctx, ev); err != nil {
		log.Error("intake: dead-letter notification failed", "id", d.ID, "err", err)
	}
}
