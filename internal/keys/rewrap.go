package keys

import (
	"context"
	"errors"
	"fmt"
)

// ErrWrappedKeyChanged is returned by [WrappedKeyStore.ReplaceWrappedKey]
// when the stored value is no longer the one the caller read.
var ErrWrappedKeyChanged = errors.New("wrapped key changed since it was read")

// StoredKey is one wrapped key in a store, named by the store's reference.
type StoredKey struct {
	Ref     string
	Wrapped Wrapped
}

// WrappedKeyStore is what [Manager.Rewrap] needs from a place that keeps
// wrapped keys (the codec key files, the evidence store, ...).
type WrappedKeyStore interface {
	// StaleWrappedKeys returns up to limit stored keys whose KeyID is not
	// currentKEK.
	StaleWrappedKeys(ctx context.Context, currentKEK string, limit int) ([]StoredKey, error)
	// ReplaceWrappedKey atomically replaces the key ref, if it still holds
	// old, with updated; otherwise it returns [ErrWrappedKeyChanged].
	ReplaceWrappedKey(ctx context.Context, ref string, old, updated Wrapped) error
}

// rewrapBatch is how many stale keys Rewrap asks the store for at a time.
const rewrapBatch = 64

// Rewrap moves every key of store that is not wrapped under the current KEK
// to it: unwrap with the old KEK, wrap with the current one, replace. Each
// key is replaced atomically, so Rewrap can be stopped at any point and a
// later run continues where it stopped. progress, if not nil, is called
// with the number of keys rewrapped so far by this run (a rotation activity
// heartbeats with it). Old KEKs can be retired once Rewrap returns nil.
func (m *Manager) Rewrap(ctx context.Context, store WrappedKeyStore, progress func(done int)) error {
	current, err := m.CurrentKEK(ctx)
	if err != nil {
		return err
	}
	done := 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("keys: rewrap to %s after %d keys: %w", current, done, err)
		}
		stale, err := store.StaleWrappedKeys(ctx, current, rewrapBatch)
		if err != nil {
			return fmt.Errorf("keys: rewrap to %s: list stale keys: %w", current, err)
		}
		if len(stale) == 0 {
			return nil
		}
		replaced := 0
		for _, sk := range stale {
			if sk.Wrapped.KeyID == current {
				return fmt.Errorf("keys: rewrap to %s: store returned %s, which is already current", current, sk.Ref)
			}
			dek, err := m.Unwrap(ctx, sk.Wrapped)
			if err != nil {
				return fmt.Errorf("keys: rewrap %s: %w", sk.Ref, err)
			}
			nw, err := m.Wrap(ctx, dek)
			clear(dek)
			if err != nil {
				return fmt.Errorf("keys: rewrap %s: %w", sk.Ref, err)
			}
			if nw.KeyID != current {
				return fmt.Errorf("keys: rewrap: the current KEK changed from %s to %s during the run; run it again", current, nw.KeyID)
			}
			switch err := store.ReplaceWrappedKey(ctx, sk.Ref, sk.Wrapped, nw); {
			case errors.Is(err, ErrWrappedKeyChanged):
				continue // changed concurrently; listed again if still stale
			case err != nil:
				return fmt.Errorf("keys: rewrap %s: replace: %w", sk.Ref, err)
			}
			replaced++
			done++
			if progress != nil {
				progress(done)
			}
		}
		if replaced == 0 {
			return fmt.Errorf("keys: rewrap to %s: no key of a batch of %d could be replaced", current, len(stale))
		}
	}
}
