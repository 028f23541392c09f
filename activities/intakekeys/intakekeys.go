// Package intakekeys implements keys.rotate_intake_keys
// ([activities.KeysRotateIntakeKeys]): it rotates the API keys detectors
// use to post alerts to the intake, in the detectors file the API server
// reloads (see [detectorsfile.Update] and [intake.Reloader]), or in the
// detectors every API server shares when the worker is configured with
// IRU_SHARED_STATE_DSN ([Activities.WithStore], package sharedstate).
//
// For each detector of the file that uses API keys (or only the one named
// by the source parameter) a rotation mints a key, stores it in the secret
// sink (the only place the key ever is) under "intake/<detector>/<key id>",
// and adds its hash to the detector, valid from now. Every older key of the
// detector then ends at now + the overlap (unless it ends earlier), which
// gives the detector's operators the overlap to deploy the new key; keys
// that ended more than the grace period ago are dropped.
//
// A rotation is idempotent. The new key's id derives from the step's
// idempotency key and the detector's name, and the key entry records the
// reference of its secret, so a retried attempt finds the key the first
// attempt wrote and returns the same reference. An attempt that stopped
// after storing the secret but before writing the file left no key in the
// file; the retry mints and stores another one (the orphaned secret was
// never valid) and writes that.
//
// The Temporal Schedule that runs the rotation every 90 days is kept by
// internal/schedules.
package intakekeys

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
	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
)

// Config configures the rotation on the worker.
type Config struct {
	DetectorsFile string        `env:"IRU_INTAKE_DETECTORS_FILE" doc:"Detectors file (YAML, JSON if the name ends in .json; mode 0600) with the detectors and their hashed API keys, merged with the intake configuration's detectors. The API server reloads it when it changes; keys.rotate_intake_keys and starter keys add-detector rewrite it. Empty: no file."`
	Overlap       time.Duration `env:"IRU_INTAKE_KEY_OVERLAP" envDefault:"168h" doc:"How long a detector's previous API keys stay valid after keys.rotate_intake_keys minted a new one (time to deploy the new key)."`
	Grace         time.Duration `env:"IRU_INTAKE_KEY_GRACE" envDefault:"720h" doc:"How long an ended API key's hash stays in the detectors file (failed logins with it are reported as expired, not unknown) before a rotation drops it."`
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var p []error
	if c.Overlap <= 0 {
		p = append(p, fmt.Errorf("IRU_INTAKE_KEY_OVERLAP=%s: must be positive", c.Overlap))
	}
	if c.Grace < 0 {
		p = append(p, fmt.Errorf("IRU_INTAKE_KEY_GRACE=%s: must not be negative", c.Grace))
	}
	return errors.Join(p...)
}

// Activities holds the rotation's dependencies.
type Activities struct {
	cfg     Config
	secrets activities.SecretSink
	now     func() time.Time
	// store holds the detectors (nil: neither a file nor a shared store).
	store detectorsfile.Store
}

// DefaultOverlap is the overlap when Config.Overlap is zero.
const DefaultOverlap = 7 * 24 * time.Hour

// New returns the activities; secrets receives the new keys. A zero
// Overlap is [DefaultOverlap].
func New(cfg Config, secrets activities.SecretSink) (*Activities, error) {
	if cfg.Overlap == 0 {
		cfg.Overlap = DefaultOverlap
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if secrets == nil {
		return nil, errors.New("intakekeys: a secret sink is required")
	}
	a := &Activities{cfg: cfg, secrets: secrets, now: time.Now}
	if cfg.DetectorsFile != "" {
		a.store = detectorsfile.FileStore{Path: cfg.DetectorsFile}
	}
	return a, nil
}

// WithStore returns a copy of a that rotates the detectors of store (the
// shared store) instead of the detectors file.
func (a *Activities) WithStore(store detectorsfile.Store) *Activities {
	c := *a
	c.store = store
	return &c
}

// WithClock returns a copy of a that reads the time from now (tests).
func (a *Activities) WithClock(now func() time.Time) *Activities {
	c := *a
	c.now = now
	return &c
}

// Registry is the part of a worker that registration needs.
type Registry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Register registers the action under its catalog name.
func (a *Activities) Register(r Registry) {
	r.RegisterActivityWithOptions(a.RotateIntakeKeys, activity.RegisterOptions{Name: activities.KeysRotateIntakeKeys})
}

// KeyID returns the id of the key a rotation step mints for a detector:
// the same for every attempt of the step.
func KeyID(idempotencyKey, detector string) string {
	h := sha256.New()
	h.Write([]byte(idempotencyKey))
	h.Write([]byte{0})
	h.Write([]byte(detector))
	return "rot-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// SecretName is the secret sink name of a detector's key.
func SecretName(detector, keyID string) string { return "intake/" + detector + "/" + keyID }

// rotation is what happened to one detector.
type rotation struct {
	detector, keyID, ref string
	// reused is true when an earlier attempt of the step minted the key.
	reused         bool
	ended, dropped int
	// end is when the detector's older keys end.
	end time.Time
}

// RotateIntakeKeys implements [activities.KeysRotateIntakeKeys].
// Parameters: source (only this detector; default every detector of the
// detectors file that uses API keys) and reason. Outputs: rotated, the
// comma separated "detector:key-id" list, and "secret_ref_<detector>" per
// detector ([activities.IntakeKeyRefOutputPrefix]). A dry run returns the
// plan. In a live drill it refuses (Precondition): intake keys are shared,
// never a drill target. The key is never in results, errors or logs.
func (a *Activities) RotateIntakeKeys(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	if a.store == nil {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypePrecondition,
			"rotate intake keys: neither IRU_SHARED_STATE_DSN nor IRU_INTAKE_DETECTORS_FILE is set on the worker", nil)
	}
	if in.IdempotencyKey == "" {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypeBadParams,
			"rotate intake keys: the step has no idempotency key", nil)
	}
	if in.Drill && !in.DryRun {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypePrecondition,
			"rotate intake keys: the intake keys are shared by every detector, never a drill target", nil)
	}
	p, err := activities.DecodeParams[activities.KeysRotateIntakeKeysParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	source := p.Source
	now := a.now().UTC().Truncate(time.Second)
	if in.DryRun {
		return a.plan(ctx, in, source, now)
	}
	var done []rotation
	err = a.store.Update(ctx, func(f *detectorsfile.File) (bool, error) {
		targets, err := a.targets(f, source)
		if err != nil {
			return false, err
		}
		changed := false
		for _, i := range targets {
			r, err := a.rotate(ctx, &f.Detectors[i], in.IdempotencyKey, now)
			if err != nil {
				return false, err
			}
			changed = changed || !r.reused
			done = append(done, r)
		}
		return changed, nil
	})
	if err != nil {
		var final interface{ NonRetryable() bool }
		if errors.As(err, &final) {
			return activities.ActionResult{}, err
		}
		return activities.ActionResult{}, fmt.Errorf("rotate intake keys in %s: %w", a.store, err)
	}
	log := activity.GetLogger(ctx)
	for _, r := range done {
		log.Info("intake key rotated", "detector", r.detector, "key_id", r.keyID, "secret_ref", r.ref,
			"already_minted", r.reused, "older_keys_ending", r.ended, "ended_keys_dropped", r.dropped, "reason", p.Reason)
	}
	return result(done), nil
}

// targets returns the indexes of the detectors to rotate.
func (a *Activities) targets(f *detectorsfile.File, source string) ([]int, error) {
	if len(f.Detectors) == 0 {
		return nil, activities.NewFinalError(activities.ErrTypePrecondition,
			fmt.Sprintf("rotate intake keys: detectors %s are missing or list no detector", a.store), nil)
	}
	if source != "" {
		i := f.Detector(source)
		if i < 0 {
			return nil, activities.NewFinalError(activities.ErrTypeNotFound,
				fmt.Sprintf("rotate intake keys: detector %q is not in the detectors file", source), nil)
		}
		if len(f.Detectors[i].APIKeys) == 0 {
			return nil, activities.NewFinalError(activities.ErrTypePrecondition,
				fmt.Sprintf("rotate intake keys: detector %q uses no API keys", source), nil)
		}
		return []int{i}, nil
	}
	var out []int
	for i, d := range f.Detectors {
		if len(d.APIKeys) > 0 {
			out = append(out, i)
		}
	}
	return out, nil
}

// rotate mints, stores and adds the detector's new key, ends the older
// keys and drops the long-ended ones; or finds the key an earlier attempt
// added.
func (a *Activities) rotate(ctx context.Context, d *auth.Detector, idem string, now time.Time) (rotation, error) {
	r := rotation{detector: d.Name, keyID: KeyID(idem, d.Name)}
	if i := slices.IndexFunc(d.APIKeys, func(k auth.APIKey) bool { return k.ID == r.keyID }); i >= 0 {
		if d.APIKeys[i].SecretRef == "" {
			return r, activities.NewFinalError(activities.ErrTypeConflict,
				fmt.Sprintf("rotate intake keys: detector %q has a key %q without a secret reference that this rotation did not mint", d.Name, r.keyID), nil)
		}
		r.ref, r.reused = d.APIKeys[i].SecretRef, true
		r.end = d.APIKeys[i].NotBefore.Add(a.cfg.Overlap)
		return r, nil
	}
	key, err := auth.GenerateKey()
	if err != nil {
		return r, fmt.Errorf("rotate intake key of %s: %w", d.Name, err)
	}
	value := []byte(key)
	r.ref, err = a.secrets.StoreSecret(ctx, activities.SecretItem{Name: SecretName(d.Name, r.keyID), Value: value})
	clear(value)
	if err != nil {
		return r, fmt.Errorf("rotate intake key of %s: store the new key: %w", d.Name, err)
	}
	hash := auth.HashKey(r.keyID, key)
	end := now.Add(a.cfg.Overlap)
	r.end = end
	kept := d.APIKeys[:0]
	for _, k := range d.APIKeys {
		if k.NotAfter.IsZero() || k.NotAfter.After(end) {
			k.NotAfter = end
			r.ended++
		}
		if k.NotAfter.Add(a.cfg.Grace).Before(now) {
			r.dropped++
			continue
		}
		kept = append(kept, k)
	}
	d.APIKeys = append(kept, auth.APIKey{ID: r.keyID, SHA256: hash, NotBefore: now, SecretRef: r.ref})
	return r, nil
}

// plan describes the rotation without changing anything.
func (a *Activities) plan(ctx context.Context, in activities.ActionInput, source string, now time.Time) (activities.ActionResult, error) {
	f, err := a.store.Load(ctx)
	if err != nil {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypePrecondition,
			fmt.Sprintf("rotate intake keys: %v", err), nil)
	}
	targets, err := a.targets(&f, source)
	if err != nil {
		return activities.ActionResult{}, err
	}
	end := now.Add(a.cfg.Overlap)
	var plan []string
	for _, i := range targets {
		d := f.Detectors[i]
		id := KeyID(in.IdempotencyKey, d.Name)
		if slices.ContainsFunc(d.APIKeys, func(k auth.APIKey) bool { return k.ID == id }) {
			plan = append(plan, fmt.Sprintf("detector %s: key %s was already minted by this step; nothing to do", d.Name, id))
			continue
		}
		ending, dropping := 0, 0
		for _, k := range d.APIKeys {
			na := k.NotAfter
			if na.IsZero() || na.After(end) {
				ending++
				na = end
			}
			if na.Add(a.cfg.Grace).Before(now) {
				dropping++
			}
		}
		plan = append(plan, fmt.Sprintf("detector %s: mint key %s into secret %s, valid from %s; end %d older key(s) at %s; drop %d key(s) ended over %s ago",
			d.Name, id, SecretName(d.Name, id), now.Format(time.RFC3339), ending, end.Format(time.RFC3339), dropping, a.cfg.Grace))
	}
	if len(plan) == 0 {
		plan = []string{"no detector of the detectors file uses API keys; nothing to rotate"}
	}
	return activities.ActionResult{Plan: plan, Outputs: map[string]string{"rotated": ""}, Summary: fmt.Sprintf("dry run: would rotate %d detector(s)", len(targets))}, nil
}

func rotatedList(done []rotation) string {
	items := make([]string, 0, len(done))
	for _, r := range done {
		items = append(items, r.detector+":"+r.keyID)
	}
	return strings.Join(items, ",")
}

func result(done []rotation) activities.ActionResult {
	out := map[string]string{"rotated": rotatedList(done)}
	names := make([]string, 0, len(done))
	var end time.Time
	for _, r := range done {
		out[activities.IntakeKeyRefOutputPrefix+r.detector] = r.ref
		names = append(names, r.detector)
		if end.IsZero() || r.end.Before(end) {
			end = r.end
		}
	}
	summary := "no detector of the detectors file uses API keys; nothing rotated"
	if len(done) > 0 {
		summary = fmt.Sprintf("rotated the intake API keys of %s; their previous keys end by %s", strings.Join(names, ", "), end.Format(time.RFC3339))
	}
	return activities.ActionResult{Outputs: out, Summary: summary}
}
