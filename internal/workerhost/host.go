package workerhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities/drillreport"
	"github.com/iru-responder/responder/activities/housekeeping"
	"github.com/iru-responder/responder/activities/intakekeys"
	kcact "github.com/iru-responder/responder/activities/keycloak"
	"github.com/iru-responder/responder/activities/keyops"
	"github.com/iru-responder/responder/activities/platform"
	"github.com/iru-responder/responder/activities/probe"
	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/activities/related"
	"github.com/iru-responder/responder/activities/selftest"
	"github.com/iru-responder/responder/activities/watch"
	"github.com/iru-responder/responder/controls"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/notify"
	"github.com/iru-responder/responder/internal/secretsink"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/internal/stores"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// Host holds the worker's open dependencies.
type Host struct {
	cfg        Config
	prot       *codec.Protection
	stores     *stores.Stores
	playbooks  *playbooks.Set
	controls   *controls.File
	keycloak   *kcact.Activities
	pve        *pveact.Activities
	probe      *probe.Activities
	platform   *platform.Activities
	selftest   *selftest.Activities
	intakeKeys *intakekeys.Activities
	keyops     *keyops.Activities
	// shared holds the detectors every API server shares (nil: file).
	shared *sharedstate.Store
	// audit records key changes and the configuration in the ledger.
	audit *accesslog.Logger
	// refusedSeen are the digests of refused unencrypted payloads recorded.
	refusedMu   sync.Mutex
	refusedSeen map[string]bool
}

// Open opens everything the worker's activities need: the HSM keys and
// payload codec, the ledger and evidence locker, the playbooks (refusing
// invalid ones), and the clients of Proxmox VE and Keycloak.
func Open(ctx context.Context, cfg Config) (_ *Host, err error) {
	h := &Host{cfg: cfg}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	if cfg.Shared.Enabled() {
		// Detectors, and (IRU_CODEC_KEY_STORE=shared) the payload keys.
		if h.shared, err = sharedstate.Open(ctx, cfg.Shared, nil); err != nil {
			return nil, err
		}
	}
	var sharedKeys codec.KeyStore
	if h.shared != nil {
		sharedKeys = h.shared.CodecKeys()
	}
	if h.prot, err = codec.OpenProtection(ctx, cfg.Keys, cfg.Codec, sharedKeys); err != nil {
		return nil, err
	}
	if h.stores, err = stores.Open(ctx, cfg.Stores, h.prot.Keys); err != nil {
		return nil, err
	}
	if cfg.PlaybooksDir != "" {
		h.playbooks, err = playbooks.LoadDir(cfg.PlaybooksDir)
	} else {
		h.playbooks, err = playbooks.Embedded()
	}
	if err != nil {
		return nil, fmt.Errorf("playbooks: %w", err)
	}
	if h.controls, err = cfg.Controls.checkedControls(h.playbooks, slog.Default()); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.SecretsDir, 0o700); err != nil {
		return nil, fmt.Errorf("IRU_SECRETS_DIR=%s: %w", cfg.SecretsDir, err)
	}
	if h.audit, err = accesslog.New(accesslog.LedgerOf(h.stores.Ledger), accesslog.Options{}); err != nil {
		return nil, err
	}
	h.audit.Start(context.WithoutCancel(ctx))
	h.audit.Record(accesslog.Record{Action: accesslog.ActionConfigLoad, Actor: "system:worker", Path: "worker",
		Detail: "configuration digest " + config.Digest(&cfg)})
	sink := stores.EvidenceSink{L: h.stores.Evidence}
	secrets := secretsink.File{Dir: cfg.SecretsDir}
	if h.keycloak, err = kcact.New(cfg.Keycloak, sink, secrets); err != nil {
		return nil, fmt.Errorf("keycloak activities: %w", err)
	}
	// Quarantine records are signed with the HSM signing key.
	if h.pve, err = pveact.New(cfg.PVE, sink, secrets, pveact.WithRecordKey(h.prot.Keys)); err != nil {
		return nil, fmt.Errorf("proxmox activities: %w", err)
	}
	// KEK rotation rewraps every store of wrapped keys: the codec's data
	// keys and the evidence locker's.
	codecKeys := h.prot.Ring.Store()
	var evidenceKeys keys.WrappedKeyStore = keyops.LockerKeys{L: h.stores.Evidence}
	if cfg.Stores.Evidence.Backend != evidence.BackendS3 {
		if evidenceKeys, err = keyops.NewEvidenceKeys(cfg.Stores.Evidence.Dir); err != nil {
			return nil, err
		}
	}
	h.keyops = &keyops.Activities{Keys: h.prot.Keys, Stores: []keyops.Store{{Name: "codec", Keys: codecKeys}, {Name: "evidence", Keys: evidenceKeys}}}
	if h.intakeKeys, err = intakekeys.New(cfg.IntakeKeys, secrets); err != nil {
		return nil, fmt.Errorf("intake key activities: %w", err)
	}
	if h.shared != nil {
		// Rotations write the detectors every API server reads.
		h.intakeKeys = h.intakeKeys.WithStore(h.shared)
	}
	// Probe targets come from the inventory (or the allow-list), never
	// the worker's own listen addresses.
	if h.probe, err = probe.New(cfg.Probe, h.pve, cfg.HTTPAddr, cfg.Codec.ServerAddr); err != nil {
		return nil, fmt.Errorf("probe activities: %w", err)
	}
	h.platform = &platform.Activities{
		Ledger: h.stores.Ledger, Signer: h.stores.Signer, Verifier: h.stores.Signer, Evidence: h.stores.Evidence, Sink: sink,
		Notifier: &notify.Notifier{Channels: cfg.Notify.Channels()}, IncidentLink: incidentLink(cfg.UIBaseURL),
	}
	h.selftest = &selftest.Activities{
		Order: []string{"hsm", "ledger", "evidence", "keycloak"},
		Probes: map[string]selftest.Probe{
			"hsm": func(ctx context.Context) error {
				_, err := h.prot.Keys.Sign(ctx, make([]byte, 32))
				return err
			},
			"ledger": func(ctx context.Context) error {
				_, err := h.stores.Ledger.Store().Head(ctx, "selftest")
				if err != nil && !errors.Is(err, ledger.ErrNotFound) {
					return err
				}
				return nil
			},
			"evidence": func(ctx context.Context) error {
				_, err := h.stores.Evidence.List(ctx, "selftest")
				return err
			},
			"keycloak": h.keycloak.Ping,
		},
	}
	return h, nil
}

// DataConverter is the encrypting converter for the worker's client. It
// refuses unencrypted payloads (anything sent by a client without the key:
// a made-up approval, abort or alert) and records each refusal in the
// ledger's daily security chain.
func (h *Host) DataConverter() converter.DataConverter {
	return h.prot.ObservedDataConverter(h.plaintextRefused)
}

// Register registers every workflow and activity on r; c is the worker's
// own client (the watch activities read incidents through it).
func (h *Host) Register(r Registry, c client.Client) {
	Register(r, Deps{SelfTest: h.selftest})
	RegisterIncident(r, h.playbooks, c)
	r.RegisterActivityWithOptions(h.DecisionKeys, activity.RegisterOptions{Name: workflows.DecisionKeysActivity})
	h.keycloak.Register(r)
	h.pve.Register(r)
	h.probe.Register(r)
	h.platform.Register(r)
	h.intakeKeys.Register(r)
	h.keyops.Register(r)
	h.Controls(c).Register(r)
	r.RegisterWorkflowWithOptions(workflows.RotateIntakeKeys, workflow.RegisterOptions{Name: workflows.RotateIntakeKeysWorkflow})
	r.RegisterWorkflowWithOptions(workflows.Drill, workflow.RegisterOptions{Name: workflows.DrillWorkflow})
	r.RegisterActivityWithOptions((&drillreport.Activities{Evidence: stores.EvidenceSink{L: h.stores.Evidence}}).Report, activity.RegisterOptions{Name: workflows.DrillReportActivity})
	r.RegisterWorkflowWithOptions(workflows.Watch, workflow.RegisterOptions{Name: workflows.WatchWorkflow})
	(&Reroute{Temporal: c}).Register(r)
	// The controls' own activities: results kept as evidence, drift incidents, re-checks.
	(&Controls{Temporal: c, Evidence: controlsLocker{stores.EvidenceSink{L: h.stores.Evidence}}}).Register(r)
	(&watch.Activities{Temporal: c, Incidents: watchIncidents{c: c, dc: h.DataConverter()}, Ledger: watch.LedgerOf(h.stores.Ledger), Signer: h.stores.Signer}).Register(r)
	// Daily housekeeping: sign the ended days' audit chains, sweep expired evidence.
	hk := &housekeeping.Activities{Ledger: h.stores.Ledger, Signer: h.stores.Signer, Evidence: h.stores.Evidence}
	r.RegisterActivityWithOptions(hk.SignDailyChains, activity.RegisterOptions{Name: workflows.SignDailyChainsActivity})
	r.RegisterActivityWithOptions(hk.SweepEvidence, activity.RegisterOptions{Name: workflows.SweepEvidenceActivity})
	r.RegisterWorkflowWithOptions(workflows.SignDailyChains, workflow.RegisterOptions{Name: workflows.SignDailyChainsWorkflow})
	r.RegisterWorkflowWithOptions(workflows.SweepEvidence, workflow.RegisterOptions{Name: workflows.SweepEvidenceWorkflow})
}

// NewWorker returns the platform's worker on taskQueue: o with the
// platform's tuning ([WorkerOptions]) and everything [Host.Register]
// registers. The worker command, the benchmarks and the integration tests
// build their worker with it, so what is measured and tested is what runs.
func (h *Host) NewWorker(c client.Client, taskQueue string, o worker.Options) worker.Worker {
	w := worker.New(c, taskQueue, WorkerOptions(o))
	h.Register(w, c)
	return w
}

// RegisterIncident registers the incident workflow with the activities it
// runs on every worker whatever its actions: the playbook resolver over
// set and the lookup of the related incidents through c. Host.Register
// uses it; test workers add fakes of the catalog's actions.
func RegisterIncident(r Registry, set *playbooks.Set, c related.Lister) {
	r.RegisterWorkflowWithOptions(workflows.Incident, workflow.RegisterOptions{Name: workflows.IncidentWorkflow})
	r.RegisterActivityWithOptions((&playbooks.Resolver{Set: set}).Resolve, activity.RegisterOptions{Name: workflows.ResolveActivity})
	Related(c).Register(r)
}

// Related is the lookup of the incidents open on an asset, over the
// incident workflow's names and the client c.
func Related(c related.Lister) *related.Activities {
	return &related.Activities{Temporal: c, WorkflowType: workflows.IncidentWorkflow, AssetAttr: workflows.AssetKey.GetName(),
		PlaybookAttr: workflows.PlaybookKey.GetName(), DrillAttr: workflows.DrillKey.GetName()}
}

// Close releases everything Open opened.
func (h *Host) Close() {
	if h.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = h.audit.Close(ctx)
		cancel()
	}
	if h.stores != nil {
		_ = h.stores.Close()
	}
	if h.shared != nil {
		h.shared.Close()
	}
	if h.prot != nil {
		_ = h.prot.Close()
	}
}

// Stores returns the open ledger and evidence locker.
func (h *Host) Stores() *stores.Stores { return h.stores }

// KeyOps returns the KEK rotation (keys.rotate_kek) over every store of
// wrapped keys this host has: tests rotate through it directly.
func (h *Host) KeyOps() *keyops.Activities { return h.keyops }

// Keys returns the HSM key manager.
func (h *Host) Keys() *keys.Manager { return h.prot.Keys }
