// Package keyops implements the key-management playbook action
// keys.rotate_kek ([activities.KeysRotateKEK]): rotate the key-encryption
// key in the HSM, rewrap every stored data key (the codec key store and the
// evidence locker's keys) to the new version, and retire the old versions
// once nothing is wrapped under them.
//
// The rotation is idempotent and resumable. The new KEK version is created
// with the step's idempotency key ([keys.Manager.RotateKEK]), so a retried
// attempt finds the version the first attempt made; each key is replaced
// atomically and only stale keys are listed, so a rewrap that stopped half
// way continues where it stopped; and the progress goes into the
// activity's heartbeat details, which a retried attempt reads back. Old
// versions are destroyed last, and only after every store reports that no
// key is left under a version other than the new one.
package keyops

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/keys"
)

// KEKFamily is the key label the action accepts: the family of versioned
// KEKs (iru-kek-v1, iru-kek-v2, …). A version id (iru-kek-v3) names the
// same family.
var KEKFamily = strings.TrimSuffix(keys.KEKLabelPrefix, "-v")

// KeyManager is what the rotation needs from the HSM; *keys.Manager
// implements it.
type KeyManager interface {
	RotateKEK(ctx context.Context, callKey string) (string, error)
	RetireKEK(ctx context.Context, id string) error
	KEKs(ctx context.Context) ([]keys.KEK, error)
	CurrentKEK(ctx context.Context) (string, error)
	Rewrap(ctx context.Context, store keys.WrappedKeyStore, progress func(done int)) error
}

// Store is one place that keeps data keys wrapped by the KEK.
type Store struct {
	// Name names the store in plans, progress and errors ("codec", "evidence").
	Name string
	Keys keys.WrappedKeyStore
}

// Activities holds the rotation's dependencies.
type Activities struct {
	Keys KeyManager
	// Stores are every store of wrapped keys. A store left out here keeps
	// keys under the old KEK, which retiring would destroy: list them all.
	Stores []Store
}

// Registry is the part of a worker that registration needs.
type Registry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Register registers the action under its catalog name.
func (a *Activities) Register(r Registry) {
	r.RegisterActivityWithOptions(a.RotateKEK, activity.RegisterOptions{Name: activities.KeysRotateKEK})
}

// Progress is the heartbeat detail of a rotation, and what a retried
// attempt resumes from.
type Progress struct {
	// KeyVersion is the new KEK.
	KeyVersion string
	// Rewrapped counts keys moved to KeyVersion, per store, over all attempts.
	Rewrapped map[string]int `json:",omitempty"`
	// Done lists the stores with no key left under another version.
	Done []string `json:",omitempty"`
	// Retired lists the old versions destroyed so far.
	Retired []string `json:",omitempty"`
}

// RotateKEK implements [activities.KeysRotateKEK]. Parameters: key_label
// (the KEK family, "iru-kek"), reason. Output: key_version, the new KEK id
// (plus rewrapped, the number of keys moved, and retired, the destroyed
// versions). A dry run returns the plan and changes nothing. In a live
// drill it refuses (Precondition): the KEK is shared by the whole platform,
// never a drill target.
func (a *Activities) RotateKEK(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	var resume Progress
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &resume); err != nil {
			activity.GetLogger(ctx).Warn("ignoring unreadable heartbeat details of a previous attempt", "error", err)
			resume = Progress{}
		}
	}
	return a.Rotate(ctx, in, resume, func(p Progress) { activity.RecordHeartbeat(ctx, p) })
}

// Rotate is the rotation behind [Activities.RotateKEK], callable without an
// activity context: resume is the progress of an earlier attempt (zero for
// none) and heartbeat receives the progress as it changes.
func (a *Activities) Rotate(ctx context.Context, in activities.ActionInput, resume Progress, heartbeat func(Progress)) (activities.ActionResult, error) {
	if err := checkInput(in); err != nil {
		return activities.ActionResult{}, err
	}
	if in.DryRun {
		return a.plan(ctx)
	}
	newID, err := a.Keys.RotateKEK(ctx, in.IdempotencyKey)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("rotate KEK: %w", err)
	}
	current, err := a.Keys.CurrentKEK(ctx)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("rotate KEK: %w", err)
	}
	if current != newID {
		return activities.ActionResult{}, activities.NewFinalError(activities.ErrTypeConflict,
			fmt.Sprintf("rotate KEK: this rotation made %s, but %s is newer; the later rotation owns the rewrap", newID, current), nil)
	}
	p := Progress{KeyVersion: newID, Rewrapped: map[string]int{}}
	if resume.KeyVersion == newID {
		p.Done, p.Retired = slices.Clone(resume.Done), slices.Clone(resume.Retired)
		for k, v := range resume.Rewrapped {
			p.Rewrapped[k] = v
		}
	}
	heartbeat(p)
	for _, s := range a.Stores {
		if slices.Contains(p.Done, s.Name) {
			continue
		}
		base := p.Rewrapped[s.Name]
		err := a.Keys.Rewrap(ctx, s.Keys, func(done int) {
			p.Rewrapped[s.Name] = base + done
			heartbeat(p)
		})
		if err != nil {
			return activities.ActionResult{}, fmt.Errorf("rotate KEK to %s: rewrap %s keys after %d: %w", newID, s.Name, p.Rewrapped[s.Name]-base, err)
		}
		p.Done = append(p.Done, s.Name)
		heartbeat(p)
	}
	// Every store is checked again right before anything is destroyed:
	// a key left under an old version would become unreadable.
	for _, s := range a.Stores {
		stale, err := s.Keys.StaleWrappedKeys(ctx, newID, 1)
		if err != nil {
			return activities.ActionResult{}, fmt.Errorf("rotate KEK to %s: check %s keys: %w", newID, s.Name, err)
		}
		if len(stale) > 0 {
			return activities.ActionResult{}, fmt.Errorf("rotate KEK to %s: %s key %s is still wrapped by %s; not retiring old versions",
				newID, s.Name, stale[0].Ref, stale[0].Wrapped.KeyID)
		}
	}
	keks, err := a.Keys.KEKs(ctx)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("rotate KEK to %s: %w", newID, err)
	}
	for _, k := range keks {
		if k.ID == newID || slices.Contains(p.Retired, k.ID) {
			continue
		}
		if err := a.Keys.RetireKEK(ctx, k.ID); err != nil && !errors.Is(err, keys.ErrUnknownKey) {
			return activities.ActionResult{}, fmt.Errorf("rotate KEK to %s: retire %s: %w", newID, k.ID, err)
		}
		p.Retired = append(p.Retired, k.ID)
		heartbeat(p)
	}
	total := 0
	for _, s := range a.Stores {
		total += p.Rewrapped[s.Name]
	}
	return activities.ActionResult{
		Outputs: map[string]string{"key_version": newID, "rewrapped": strconv.Itoa(total), "retired": strings.Join(p.Retired, ",")},
		Summary: fmt.Sprintf("KEK rotated to %s: %d keys rewrapped in %d stores, retired %s", newID, total, len(a.Stores), orNone(p.Retired)),
	}, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// checkInput validates the parameters and the drill rule.
func checkInput(in activities.ActionInput) error {
	p, err := activities.DecodeParams[activities.KeysRotateKEKParams](in)
	if err != nil {
		return err
	}
	label := p.KeyLabel
	if rest, ok := strings.CutPrefix(label, keys.KEKLabelPrefix); label != KEKFamily && (!ok || !isVersion(rest)) {
		return activities.NewFinalError(activities.ErrTypeBadParams,
			fmt.Sprintf("key_label %q: this HSM rotates the KEK family %q only", label, KEKFamily), nil)
	}
	if in.Drill && !in.DryRun {
		return activities.NewFinalError(activities.ErrTypePrecondition,
			"keys.rotate_kek: the KEK protects the whole platform and is never a drill target; run the drill in dry-run mode", nil)
	}
	if in.IdempotencyKey == "" && !in.DryRun {
		return activities.NewFinalError(activities.ErrTypeBadParams, "keys.rotate_kek: no idempotency key", nil)
	}
	return nil
}

func isVersion(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && strconv.Itoa(n) == s
}

// plan describes a rotation without changing anything.
func (a *Activities) plan(ctx context.Context) (activities.ActionResult, error) {
	keks, err := a.Keys.KEKs(ctx)
	if err != nil {
		return activities.ActionResult{}, fmt.Errorf("plan KEK rotation: %w", err)
	}
	next, old := 1, []string{}
	for _, k := range keks {
		next = max(next, k.Version+1)
		old = append(old, k.ID)
	}
	nextID := keys.KEKLabelPrefix + strconv.Itoa(next)
	res := activities.ActionResult{Plan: []string{"generate " + nextID + " in the HSM; it becomes the current KEK"}}
	total := 0
	for _, s := range a.Stores {
		// Every key is under some version other than the new one, so every
		// key is rewrapped.
		all, err := s.Keys.StaleWrappedKeys(ctx, nextID, math.MaxInt)
		if err != nil {
			return activities.ActionResult{}, fmt.Errorf("plan KEK rotation: count %s keys: %w", s.Name, err)
		}
		total += len(all)
		res.Plan = append(res.Plan, fmt.Sprintf("rewrap %d %s keys to %s", len(all), s.Name, nextID))
	}
	res.Plan = append(res.Plan, "retire "+orNone(old)+" once every key is rewrapped")
	res.Outputs = map[string]string{"key_version": nextID, "rewrapped": strconv.Itoa(total), "retired": strings.Join(old, ",")}
	res.Summary = fmt.Sprintf("dry run: would rotate to %s and rewrap %d keys in %d stores", nextID, total, len(a.Stores))
	return res, nil
}
