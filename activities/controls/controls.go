// Package controls implements the control-verification activities
// (activities.ControlsList, activities.ControlsCheck): each control of the
// controls file (package controls) is checked against live state read
// through the platform's real clients: Proxmox VE through go-proxmox
// (activities/proxmox), Keycloak through gocloak (activities/keycloak),
// the ledger, the HSM token, the API server's TLS listener and Temporal's
// visibility (retention sweeps, drills).
//
// A check reads, then judges: every target that does not meet the control
// becomes a finding that names the exact rule or setting, what was read
// and what the control expects, and, where a safe fix exists, the catalog
// action that restores it. A state that cannot be established (a key with
// no rotation record, a component not configured) is [activities.ControlUnknown],
// never a pass. The state read is kept in the result (Observed, canonical
// JSON) as the check's evidence.
package controls

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	kcact "github.com/iru-responder/responder/activities/keycloak"
	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/controls"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/ledger"
)

// PVE reads the cluster's firewall state (activities/proxmox implements it).
type PVE interface {
	ReadFirewallState(ctx context.Context) (pveact.FirewallState, error)
}

// Keycloak reads a realm's security settings (activities/keycloak implements it).
type Keycloak interface {
	ReadRealmSecurity(ctx context.Context, realm string, roles []string) (kcact.RealmSecurity, error)
}

// KEKs reads the protection attributes of the HSM's KEKs (keys.Manager implements it).
type KEKs interface {
	KEKProtection(ctx context.Context) ([]keys.KEKAttributes, error)
}

// ManagedKey is one key the platform manages and rotates.
type ManagedKey struct {
	// Kind is controls.KeyIntake, controls.KeyPVEToken or controls.KeyKCClientSecret.
	Kind string
	// ID is the key id key-change records use (accesslog.KeyID).
	ID string
}

// Runs reads what ran on Temporal (the worker's client implements it).
type Runs interface {
	// LastSweep returns when the last evidence retention sweep completed
	// (ok false: none is known).
	LastSweep(ctx context.Context) (at time.Time, ok bool, err error)
	// Drills returns the drills that ended since since, newest first.
	Drills(ctx context.Context, since time.Time) ([]DrillRun, error)
}

// DrillRun is one ended drill.
type DrillRun struct {
	Drill, Playbook string
	EndedAt         time.Time
	// Passed is true when the drill's incident resolved and every
	// objective was met.
	Passed bool
	// Failures say what did not pass.
	Failures []string `json:",omitempty"`
}

// Activities are the control checks. Every dependency but File is
// optional: a check whose dependency is missing reports Unknown.
type Activities struct {
	File     *controls.File
	PVE      PVE
	Keycloak Keycloak
	// Ledger holds the daily chains (key changes, signed checkpoints).
	Ledger   *ledger.Ledger
	Verifier ledger.Verifier
	KEKs     KEKs
	// ManagedKeys lists the keys the platform manages (detector API keys,
	// Proxmox tokens, Keycloak client secrets).
	ManagedKeys func(ctx context.Context) ([]ManagedKey, error)
	// APIAddr is the API server's TLS address (host:port) the TLS check
	// dials when the control names none; "" leaves the check Unknown.
	APIAddr string
	Runs    Runs
	// Playbooks are the shipped playbooks' names (the drills check).
	Playbooks []string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

// Register registers controls.list and controls.check on r.
func (a *Activities) Register(r activities.Registry) {
	r.RegisterActivityWithOptions(a.List, activity.RegisterOptions{Name: activities.ControlsList})
	r.RegisterActivityWithOptions(a.Check, activity.RegisterOptions{Name: activities.ControlsCheck})
}

// List implements activities.ControlsList.
func (a *Activities) List(_ context.Context, in activities.ControlsListInput) (activities.ControlsListResult, error) {
	cs, err := a.File.Select(in.IDs)
	if err != nil {
		return activities.ControlsListResult{}, activities.NewFinalError(activities.ErrTypeNotFound, err.Error(), err)
	}
	out := activities.ControlsListResult{Digest: a.File.Digest}
	for _, c := range cs {
		out.Controls = append(out.Controls, c.Summary())
	}
	return out, nil
}

// Check implements activities.ControlsCheck: it runs the control's check
// and returns its result. Errors reading state are returned (the workflow
// retries them); a state that cannot be established is a result with
// status Unknown.
func (a *Activities) Check(ctx context.Context, in activities.ControlCheckInput) (activities.ControlCheckResult, error) {
	c, ok := a.File.Get(in.ID)
	if !ok {
		return activities.ControlCheckResult{}, activities.NewFinalError(activities.ErrTypeNotFound,
			fmt.Sprintf("controls.check: no control %q in %s", in.ID, a.File.Name), nil)
	}
	res, err := a.Run(ctx, c)
	if err != nil {
		return activities.ControlCheckResult{}, fmt.Errorf("controls.check %s: %w", c.ID, err)
	}
	return res, nil
}

// checker reads the state a control needs (returned as evidence) and
// judges it into findings; unknown findings make the status Unknown.
type checker func(ctx context.Context, a *Activities, c controls.Control) (observed any, v verdict, err error)

// verdict is a check's judgement.
type verdict struct {
	targets int
	failed  []activities.ControlFinding
	unknown []activities.ControlFinding
}

func (v *verdict) fail(f activities.ControlFinding)   { v.failed = append(v.failed, f) }
func (v *verdict) unsure(f activities.ControlFinding) { v.unknown = append(v.unknown, f) }

var checkers = map[string]checker{
	controls.KindPVEDatacenterFirewall: checkDatacenterFirewall,
	controls.KindPVEIngress:            checkIngress,
	controls.KindPVELateral:            checkLateral,
	controls.KindPVEEgress:             checkEgress,
	controls.KindPVEManagement:         checkManagement,
	controls.KindKCOTPAdmins:           checkOTPAdmins,
	controls.KindKCTokenLifespan:       checkTokenLifespan,
	controls.KindKCBruteForce:          checkBruteForce,
	controls.KindKCDirectGrants:        checkDirectGrants,
	controls.KindKCPasswordPolicy:      checkPasswordPolicy,
	controls.KindKeysAge:               checkKeyAge,
	controls.KindPlatformKEK:           checkKEK,
	controls.KindPlatformTLS13:         checkTLS13,
	controls.KindPlatformLedger:        checkLedger,
	controls.KindPlatformRetention:     checkRetention,
	controls.KindPlatformDrills:        checkDrills,
}

// errNotConfigured marks a dependency the platform was not given.
var errNotConfigured = errors.New("not configured")

// Run runs one control's check.
func (a *Activities) Run(ctx context.Context, c controls.Control) (activities.ControlCheckResult, error) {
	res := activities.ControlCheckResult{Control: c.Summary(), CheckedAt: a.now()}
	fn := checkers[c.Check]
	if fn == nil {
		return res, activities.NewFinalError(activities.ErrTypeBadParams, fmt.Sprintf("control %s: no check of kind %q", c.ID, c.Check), nil)
	}
	observed, v, err := fn(ctx, a, c)
	if errors.Is(err, errNotConfigured) {
		res.Status = activities.ControlUnknown
		res.Findings = []activities.ControlFinding{{Target: "platform", Setting: c.Check, Observed: err.Error(), Expected: "the component the check reads is configured"}}
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.Targets = v.targets
	res.Findings = append(v.failed, v.unknown...)
	switch {
	case len(v.failed) > 0:
		res.Status = activities.ControlFail
	case len(v.unknown) > 0 || v.targets == 0:
		res.Status = activities.ControlUnknown
		if v.targets == 0 && len(v.unknown) == 0 {
			res.Findings = []activities.ControlFinding{{Target: "targets", Setting: "targets", Observed: "nothing matched the control's targets", Expected: "at least one target"}}
		}
	default:
		res.Status = activities.ControlPass
	}
	if observed != nil {
		b, err := ledger.CanonicalJSON(observed)
		if err != nil {
			return res, fmt.Errorf("encode observed state: %w", err)
		}
		res.Observed = b
	}
	return res, nil
}

// EvidenceHash is the SHA-256 (hex) of a result's canonical JSON: the hash
// the compliance matrix shows for the result.
func EvidenceHash(r activities.ControlCheckResult) (string, error) {
	b, err := ledger.CanonicalJSON(r)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// selected reports whether a container is selected by targets (names,
// vmids or tag:T; empty: every container).
func selected(targets []string, name string, vmid int, tags []string) bool {
	if len(targets) == 0 {
		return true
	}
	for _, t := range targets {
		if t == name || t == fmt.Sprint(vmid) {
			return true
		}
		if tag, ok := strings.CutPrefix(t, "tag:"); ok && slices.Contains(tags, tag) {
			return true
		}
	}
	return false
}
