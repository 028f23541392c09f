package workerhost

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	controlsact "github.com/iru-responder/responder/activities/controls"
	"github.com/iru-responder/responder/activities/drillreport"
	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/controls"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/workflows"
)

// ControlsConfig configures the control checks (controls.list, controls.check).
type ControlsConfig struct {
	File       string `env:"IRU_CONTROLS_FILE" doc:"Controls file (YAML) to check instead of the embedded one (controls/controls.yaml); the worker refuses to start if it is invalid or names a playbook the worker has not loaded."`
	APITLSAddr string `env:"IRU_CONTROLS_API_TLS_ADDR" doc:"host:port of the API server's TLS listener, which the TLS 1.3 control dials (with TLS 1.2, expecting a refusal, then TLS 1.3); empty: that control reports unknown unless the controls file names an address."`
}

// LoadControls loads the configured controls file (the embedded one when
// none is configured).
func (c ControlsConfig) LoadControls() (*controls.File, error) {
	f, err := controls.Load(c.File)
	if err != nil {
		return nil, fmt.Errorf("IRU_CONTROLS_FILE: %w", err)
	}
	return f, nil
}

// checkedControls loads the controls file and checks that every control's
// remediation playbook is in set. A controls file the operator chose
// (IRU_CONTROLS_FILE) naming a playbook that is not loaded is refused: a
// drift it finds could open no incident. With the embedded file (and a
// playbooks folder of the operator's own) a missing playbook is logged,
// naming the controls whose drift would open no incident.
func (c ControlsConfig) checkedControls(set controls.PlaybookLister, log *slog.Logger) (*controls.File, error) {
	f, err := c.LoadControls()
	if err != nil {
		return nil, err
	}
	if err := f.CheckPlaybooks(set); err != nil {
		if c.File != "" {
			return nil, fmt.Errorf("IRU_CONTROLS_FILE: %w", err)
		}
		log.Warn("controls: a control's playbook is not loaded; its drift would open no incident", "error", err)
	}
	return f, nil
}

// Controls returns the control checks over the host's clients and stores;
// c (the worker's Temporal client, may be nil) answers what ran: the
// retention sweeps and the drills.
func (h *Host) Controls(c client.Client) *controlsact.Activities {
	a := &controlsact.Activities{
		File: h.controls, PVE: h.pve, Keycloak: h.keycloak, Ledger: h.stores.Ledger, Verifier: h.stores.Signer,
		KEKs: h.prot.Keys, ManagedKeys: ManagedKeys(h.cfg), APIAddr: h.cfg.Controls.APITLSAddr, Playbooks: h.playbooks.Names(),
	}
	if c != nil {
		a.Runs = TemporalRuns{C: c}
	}
	return a
}

// ManagedKeys lists the keys the platform manages under cfg: the API keys
// of the detectors file's detectors, the worker's Proxmox VE token and its
// Keycloak client secret.
func ManagedKeys(cfg Config) func(ctx context.Context) ([]controlsact.ManagedKey, error) {
	return func(context.Context) ([]controlsact.ManagedKey, error) {
		var out []controlsact.ManagedKey
		if cfg.IntakeKeys.DetectorsFile != "" {
			f, err := detectorsfile.Load(cfg.IntakeKeys.DetectorsFile)
			if err != nil {
				return nil, fmt.Errorf("managed keys: %w", err)
			}
			for _, d := range f.Detectors {
				if len(d.APIKeys) > 0 {
					out = append(out, controlsact.ManagedKey{Kind: controls.KeyIntake, ID: accesslog.KeyID(accesslog.KeyKindIntake, d.Name)})
				}
			}
		}
		if cfg.PVE.TokenID != "" {
			out = append(out, controlsact.ManagedKey{Kind: controls.KeyPVEToken, ID: accesslog.KeyID(accesslog.KeyKindPVEToken, pveact.BaseTokenID(cfg.PVE.TokenID))})
		}
		if cfg.Keycloak.ClientID != "" {
			realm := cfg.Keycloak.TokenRealm
			if realm == "" {
				realm = cfg.Keycloak.Realm
			}
			out = append(out, controlsact.ManagedKey{Kind: controls.KeyKCClientSecret, ID: accesslog.KeyID(accesslog.KeyKindKCClientSecret, realm+"/"+cfg.Keycloak.ClientID)})
		}
		return out, nil
	}
}

// TemporalRuns answers what ran from Temporal's visibility: completed
// evidence sweeps and drills.
type TemporalRuns struct {
	C client.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

func (t TemporalRuns) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// sweepLookback bounds the search for the last completed sweep.
const sweepLookback = 30 * 24 * time.Hour

// list pages through the executions matching query.
func (t TemporalRuns) list(ctx context.Context, query string, fn func(id, run string, closed time.Time) error) error {
	var token []byte
	for {
		resp, err := t.C.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 100, NextPageToken: token})
		if err != nil {
			return fmt.Errorf("list workflows (%s): %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			if err := fn(e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), e.GetCloseTime().AsTime()); err != nil {
				return err
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return nil
		}
	}
}

// LastSweep implements controls.Runs: the close time of the newest
// completed evidence retention sweep of the last 30 days.
func (t TemporalRuns) LastSweep(ctx context.Context) (time.Time, bool, error) {
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Completed' AND CloseTime > '%s'",
		workflows.SweepEvidenceWorkflow, t.now().Add(-sweepLookback).UTC().Format(time.RFC3339))
	var last time.Time
	err := t.list(ctx, q, func(_, _ string, closed time.Time) error {
		if closed.After(last) {
			last = closed
		}
		return nil
	})
	return last, !last.IsZero(), err
}

// Drills implements controls.Runs: the drills completed since since, with
// their reports, newest first.
func (t TemporalRuns) Drills(ctx context.Context, since time.Time) ([]controlsact.DrillRun, error) {
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Completed' AND CloseTime > '%s'", workflows.DrillWorkflow, since.UTC().Format(time.RFC3339))
	var out []controlsact.DrillRun
	err := t.list(ctx, q, func(id, run string, closed time.Time) error {
		var rep drillreport.Report
		if err := t.C.GetWorkflow(ctx, id, run).Get(ctx, &rep); err != nil {
			return fmt.Errorf("drill %s: read its report: %w", id, err)
		}
		out = append(out, controlsact.DrillRun{Drill: rep.Drill, Playbook: rep.Playbook, EndedAt: closed, Passed: rep.Passed, Failures: rep.Failures})
		return nil
	})
	slices.SortFunc(out, func(a, b controlsact.DrillRun) int { return b.EndedAt.Compare(a.EndedAt) })
	return out, err
}
