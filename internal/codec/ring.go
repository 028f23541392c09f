package codec

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/iru-responder/responder/internal/keys"
)

// KeyWrapper protects data keys with the HSM key-encryption key;
// [keys.Manager] implements it.
type KeyWrapper interface {
	Wrap(ctx context.Context, dek []byte) (keys.Wrapped, error)
	Unwrap(ctx context.Context, w keys.Wrapped) ([]byte, error)
}

// ErrUnknownDataKey is returned when a payload names a data key the ring
// does not hold.
var ErrUnknownDataKey = errors.New("unknown data encryption key")

// reloadInterval limits how often a payload with an unknown key id makes
// the ring look for keys added by another process.
var reloadInterval = 5 * time.Second

// KeyRing holds the codec's AES-256 data keys in memory. The current (most
// recently created) key encrypts; every key decrypts, so histories written
// before a rotation stay readable. Keys are generated in process and stored
// only wrapped by the HSM; opening the ring costs one HSM call per key,
// encoding and decoding payloads cost none. It is safe for concurrent use.
type KeyRing struct {
	wrapper KeyWrapper
	store   KeyStore

	reloadMu   sync.Mutex // serializes Reload and RotateKey; guards the two below
	lastReload time.Time
	newest     time.Time // creation time of the newest stored key

	mu      sync.RWMutex
	aeads   map[string]cipher.AEAD
	current string
}

// OpenKeyRing unwraps every key of store with wrapper. On an empty store it
// generates the first key.
func OpenKeyRing(ctx context.Context, wrapper KeyWrapper, store KeyStore) (*KeyRing, error) {
	r := &KeyRing{wrapper: wrapper, store: store, aeads: map[string]cipher.AEAD{}}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	if r.CurrentKeyID() == "" {
		if _, err := r.RotateKey(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Store returns where the ring's keys are stored (for rewrapping them).
func (r *KeyRing) Store() KeyStore { return r.store }

// Reload adds keys that appeared in the store since the ring was opened
// (rotated by another process) and makes the newest one current.
func (r *KeyRing) Reload(ctx context.Context) error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	return r.reload(ctx)
}

func (r *KeyRing) reload(ctx context.Context) error {
	r.lastReload = time.Now()
	stored, err := r.store.List()
	if err != nil {
		return err
	}
	added := map[string]cipher.AEAD{}
	r.mu.RLock()
	for _, k := range stored {
		if _, ok := r.aeads[k.ID]; ok {
			continue
		}
		added[k.ID] = nil
	}
	r.mu.RUnlock()
	for _, k := range stored {
		if _, ok := added[k.ID]; !ok {
			continue
		}
		dek, err := r.wrapper.Unwrap(ctx, k.Wrapped)
		if err != nil {
			return fmt.Errorf("codec: unwrap data key %s: %w", k.ID, err)
		}
		aead, err := newAEAD(dek)
		clear(dek)
		if err != nil {
			return fmt.Errorf("codec: data key %s: %w", k.ID, err)
		}
		added[k.ID] = aead
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, a := range added {
		r.aeads[id] = a
	}
	if len(stored) > 0 {
		newest := stored[len(stored)-1] // List sorts oldest first
		r.current, r.newest = newest.ID, newest.Created
	}
	return nil
}

func newAEAD(dek []byte) (cipher.AEAD, error) {
	if len(dek) != 32 {
		return nil, fmt.Errorf("key of %d bytes, want 32 (AES-256)", len(dek))
	}
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// RotateKey generates a new data key, stores it wrapped by the HSM and
// makes it current. It returns the new key's id.
func (r *KeyRing) RotateKey(ctx context.Context) (string, error) {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	dek := make([]byte, 32)
	defer clear(dek)
	if _, err := rand.Read(dek); err != nil {
		return "", fmt.Errorf("codec: generate data key: %w", err)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return "", fmt.Errorf("codec: generate data key id: %w", err)
	}
	now := time.Now().UTC()
	// Keep creation times increasing, so the new key sorts last even if
	// the clock stepped back.
	if !now.After(r.newest) {
		now = r.newest.Add(time.Microsecond)
	}
	id := "dk-" + now.Format("20060102T150405Z") + "-" + hex.EncodeToString(suffix)
	aead, err := newAEAD(dek)
	if err != nil {
		return "", fmt.Errorf("codec: data key %s: %w", id, err)
	}
	w, err := r.wrapper.Wrap(ctx, dek)
	if err != nil {
		return "", fmt.Errorf("codec: wrap data key %s: %w", id, err)
	}
	if err := r.store.Add(StoredDataKey{ID: id, Wrapped: w, Created: now}); err != nil {
		return "", err
	}
	r.mu.Lock()
	r.aeads[id] = aead
	r.mu.Unlock()
	// The store decides which key is newest (another process may have
	// rotated too); reload picks it, and unwraps any key it has not seen.
	if err := r.reload(ctx); err != nil {
		return "", err
	}
	return id, nil
}

// CurrentKeyID returns the id of the key that encrypts new payloads.
func (r *KeyRing) CurrentKeyID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// KeyIDs returns the ids of the keys the ring can decrypt with, sorted.
func (r *KeyRing) KeyIDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, 0, len(r.aeads))
	for id := range r.aeads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// encrypter returns the current key.
func (r *KeyRing) encrypter() (string, cipher.AEAD) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current, r.aeads[r.current]
}

// decrypter returns key id, reloading the store (at most every few
// seconds) when the id is unknown, in case another process rotated.
func (r *KeyRing) decrypter(id string) (cipher.AEAD, error) {
	r.mu.RLock()
	a, ok := r.aeads[id]
	r.mu.RUnlock()
	if ok {
		return a, nil
	}
	if !dataKeyID.MatchString(id) {
		return nil, fmt.Errorf("malformed data key id %q: %w", id, ErrUnknownDataKey)
	}
	r.reloadMu.Lock()
	if time.Since(r.lastReload) >= reloadInterval {
		if err := r.reload(context.Background()); err != nil {
			r.reloadMu.Unlock()
			return nil, fmt.Errorf("look for data key %s: %w", id, err)
		}
	}
	r.reloadMu.Unlock()
	r.mu.RLock()
	a, ok = r.aeads[id]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("data key %s is not in the key ring: %w", id, ErrUnknownDataKey)
	}
	return a, nil
}
