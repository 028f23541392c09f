package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/intake/parse"
	"github.com/iru-responder/responder/internal/intake/route"
	"github.com/iru-responder/responder/internal/intake/spool"
)

// Config is the intake's configuration file (YAML).
type Config struct {
	// SpoolDir is the spool directory on local disk (required).
	SpoolDir string `yaml:"spool_dir"`
	// SpoolMaxBytes bounds the spool (default 256 MiB).
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RetryAfter is the Retry-After of a 503 (default 5s).
	RetryAfter time.Duration `yaml:"retry_after"`
	// RulesFile is the routing rules file ("" : the shipped defaults).
	RulesFile string `yaml:"rules_file"`
	// TaskQueue is where incidents start ("" : workflows.TaskQueue).
	TaskQueue string `yaml:"task_queue"`
	// ReplayWindow is the signature replay window (default 5m).
	ReplayWindow time.Duration `yaml:"replay_window"`
	// InventoryRefresh is the inventory refresh period (default 5m).
	InventoryRefresh time.Duration `yaml:"inventory_refresh"`
	// Detectors are the detectors allowed to post.
	Detectors []auth.Detector `yaml:"detectors"`
	// DetectorsFile, if set, is a detectors file (see detectorsfile.Load):
	// its detectors are served together with Detectors (a name in both is
	// an error), only they are rotated, and the service reloads the file
	// when it changes (see Reloader).
	DetectorsFile string `yaml:"detectors_file"`
	// DetectorsPoll is how often the file is checked (default 5s).
	DetectorsPoll time.Duration `yaml:"detectors_poll"`
	// Limits are the per-source and per-detector limits; they come from
	// the environment (LimitsConfig), not the file. Zero: DefaultLimits.
	Limits LimitsConfig `yaml:"-"`
	// Budget bounds every alert in bytes of its encoded form (defaults:
	// alert 64 KiB, labels 48 KiB, one label 8 KiB, summary 4 KiB, rule
	// and fingerprint 1 KiB each); an alert over it is refused with 413.
	Budget parse.Budget `yaml:"budget"`
	// DetectorSpoolQuotaBytes bounds one detector's undelivered alerts in
	// the spool (default a quarter of SpoolMaxBytes); a detector may set
	// its own (spool_quota_bytes). A detector over it gets 503 with
	// Retry-After; the others are unaffected.
	DetectorSpoolQuotaBytes int64 `yaml:"detector_spool_quota_bytes"`
	// DeadLetterMaxBytes bounds the dead-letter queue beside the spool
	// (default 64 MiB).
	DeadLetterMaxBytes int64 `yaml:"dead_letter_max_bytes"`
}

// Validate checks the budgets and quotas.
func (c Config) Validate() error {
	var errs []error
	if err := c.Budget.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("intake: %w", err))
	}
	if c.DetectorSpoolQuotaBytes < 0 || c.DeadLetterMaxBytes < 0 || c.SpoolMaxBytes < 0 {
		errs = append(errs, errors.New("intake: spool_max_bytes, detector_spool_quota_bytes and dead_letter_max_bytes must not be negative"))
	}
	return errors.Join(errs...)
}

// quota is the default per-detector spool quota.
func (c Config) quota() int64 {
	if c.DetectorSpoolQuotaBytes > 0 {
		return c.DetectorSpoolQuotaBytes
	}
	max := c.SpoolMaxBytes
	if max <= 0 {
		max = 256 << 20
	}
	return max / 4
}

// LoadConfig reads a YAML configuration file; unknown keys are errors.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("intake: open config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("intake: parse config %s: %w", path, err)
	}
	return c, nil
}

// Deps are the service's dependencies: the asset source (Proxmox), the
// signaler (forward.TemporalSignaler over the process's client) and an
// optional observer of authentication events (the audit ledger).
type Deps struct {
	Assets   inventory.Source
	Signaler forward.Signaler
	AuthLog  auth.Observer
	Log      *slog.Logger
	// Registerer, if set, receives the intake's metrics.
	Registerer prometheus.Registerer
	// OnRefusal, if set, hears of requests refused for what they carried.
	OnRefusal func(Refusal)
	// OnDeadLetter, if set, hears of every alert moved to the dead-letter
	// queue (to notify people); it must not block for long.
	OnDeadLetter func(spool.DeadLetter)
	// Detectors, if set, is the shared store of the detectors (PostgreSQL,
	// package sharedstate) in place of Config.DetectorsFile: every API
	// server reads the same detectors and sees a rotation within one poll
	// (Config.DetectorsPoll).
	Detectors DetectorSource
	// Replay, if set, is the replay guard of signed requests shared by
	// every API server (nil: this process's memory).
	Replay auth.ReplayGuard
}

// Service is a ready intake: handler, spool, forwarder and inventory.
type Service struct {
	Handler *Handler
	Spool   *spool.Spool
	// DeadLetters holds the alerts Temporal refused for good.
	DeadLetters *spool.DeadLetters
	Forwarder   *forward.Forwarder
	Inventory   *inventory.Inventory
	Rules       *route.Rules
	// Reloader reloads Config.DetectorsFile (nil without one).
	Reloader *Reloader
	cfg      Config
}

// Open builds the service from cfg and deps and opens the spool (replaying
// undelivered alerts). Call Run to deliver and Close when done.
func Open(cfg Config, deps Deps) (*Service, error) {
	if cfg.SpoolDir == "" {
		return nil, errors.New("intake: spool_dir is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Assets == nil || deps.Signaler == nil {
		return nil, errors.New("intake: an asset source and a signaler are required")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rules, err := loadRules(cfg.RulesFile)
	if err != nil {
		return nil, err
	}
	detectors, err := resolve(cfg, deps.Detectors)
	if err != nil {
		return nil, err
	}
	a, err := auth.New(detectors, auth.Options{ReplayWindow: cfg.ReplayWindow, Observer: deps.AuthLog, Replay: deps.Replay})
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	inv := inventory.New(deps.Assets, inventory.Options{RefreshEvery: cfg.InventoryRefresh, Log: log})
	dl, err := spool.OpenDeadLetters(cfg.SpoolDir, cfg.DeadLetterMaxBytes)
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	var m *Metrics
	if deps.Registerer != nil {
		if m, err = NewMetrics(deps.Registerer, dl); err != nil {
			return nil, fmt.Errorf("intake: metrics: %w", err)
		}
	}
	sp, err := spool.Open(cfg.SpoolDir, spool.Options{MaxBytes: cfg.SpoolMaxBytes, Quota: Quota(a, cfg.quota())})
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	if deps.Registerer != nil {
		// What a server still holds: drain to 0 before removing a server.
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iru_intake_spool_pending",
			Help: "Alerts accepted by this API server and not yet delivered to Temporal (its local spool)."},
			func() float64 { return float64(sp.Stats().Pending) })
		if err := deps.Registerer.Register(g); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				_ = sp.Close()
				return nil, fmt.Errorf("intake: metrics: %w", err)
			}
		}
	}
	h, err := NewHandler(Options{Auth: a, Inventory: inv, Rules: rules, Spool: sp, MaxBodyBytes: cfg.MaxBodyBytes, RetryAfter: cfg.RetryAfter, Log: log,
		Limits: cfg.Limits, Budget: cfg.Budget, Metrics: m, OnRefusal: deps.OnRefusal})
	if err != nil {
		_ = sp.Close()
		return nil, err
	}
	onDead := func(d spool.DeadLetter) {
		m.DeadLettered(d)
		if deps.OnDeadLetter != nil {
			deps.OnDeadLetter(d)
		}
	}
	fw := forward.New(sp, deps.Signaler, forward.Options{TaskQueue: cfg.TaskQueue, Log: log, DeadLetters: dl, OnDeadLetter: onDead})
	s := &Service{Handler: h, Spool: sp, DeadLetters: dl, Forwarder: fw, Inventory: inv, Rules: rules, cfg: cfg}
	switch {
	case deps.Detectors != nil:
		if s.Reloader, err = s.NewSourceReloader(deps.Detectors, cfg.Detectors, cfg.DetectorsPoll, log); err == nil {
			err = s.Reloader.Reload() // records the version read by resolve, or a newer one
		}
	case cfg.DetectorsFile != "":
		s.Reloader, err = s.NewReloader(cfg.DetectorsFile, cfg.Detectors, cfg.DetectorsPoll, log)
	}
	if err != nil {
		_ = sp.Close()
		return nil, err
	}
	return s, nil
}

// resolve returns the detectors the service starts with: the inline ones
// merged with the file's or the shared store's.
func resolve(cfg Config, src DetectorSource) ([]auth.Detector, error) {
	if src == nil {
		return ResolveDetectors(cfg.Detectors, cfg.DetectorsFile)
	}
	if cfg.DetectorsFile != "" {
		return nil, fmt.Errorf("intake: detectors_file %s and the shared detector store %s are both configured; keep one", cfg.DetectorsFile, src)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	_, f, err := src.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("intake: detector store %s: %w", src, err)
	}
	return MergeDetectors(cfg.Detectors, f.Detectors)
}

func loadRules(path string) (*route.Rules, error) {
	if path == "" {
		r, err := route.Default()
		if err != nil {
			return nil, fmt.Errorf("intake: shipped rules: %w", err)
		}
		return r, nil
	}
	r, err := route.Load(path)
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	return r, nil
}

// Run refreshes the inventory and forwards the spool until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.Inventory.Run(ctx) })
	if s.Reloader != nil {
		wg.Go(func() { s.Reloader.Run(ctx) })
	}
	err := s.Forwarder.Run(ctx)
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Close closes the spool; call it after Run returned and the HTTP server
// stopped.
func (s *Service) Close() error { return s.Spool.Close() }
