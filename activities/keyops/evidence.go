package keyops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/keys"
)

// EvidenceKeys is the evidence locker's wrapped data keys as a
// [keys.WrappedKeyStore], so that [keys.Manager.Rewrap] can move them to a
// new KEK.
//
// The locker offers no such view yet, so this one works on its folder
// through the exported file backend ([evidence.FSBackend]): one wrapped key
// per object, at <incident>/<blob>.key under <dir>/blobs, JSON-encoded
// [evidence.Wrapped]. Blobs are write-once for the locker; replacing a
// wrapped key is the one exception, done atomically (temporary file, sync,
// rename over, directory sync) and only when the file still holds the key
// that was read. A key whose object was destroyed meanwhile is removed
// again. It belongs in package evidence (Locker.WrappedKeys); until then it
// must follow the locker's blob layout.
type EvidenceKeys struct {
	backend *evidence.FSBackend
	root    string
}

var _ keys.WrappedKeyStore = (*EvidenceKeys)(nil)

// evidenceKeyRef is the reference of a wrapped key: <incident>/<blob>.key.
var evidenceKeyRef = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]{0,127})/([0-9a-f]{32})\.key$`)

// NewEvidenceKeys opens the wrapped keys of the evidence locker in dir
// (IRU_EVIDENCE_DIR).
func NewEvidenceKeys(dir string) (*EvidenceKeys, error) {
	root := filepath.Join(dir, "blobs")
	if _, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("keyops: evidence locker %s: %w", dir, err)
	}
	b, err := evidence.NewFSBackend(root)
	if err != nil {
		return nil, fmt.Errorf("keyops: evidence locker %s: %w", dir, err)
	}
	return &EvidenceKeys{backend: b, root: root}, nil
}

// refs lists every wrapped key reference, sorted.
func (e *EvidenceKeys) refs() ([]string, error) {
	incidents, err := os.ReadDir(e.root)
	if err != nil {
		return nil, fmt.Errorf("keyops: list evidence incidents: %w", err)
	}
	var out []string
	for _, inc := range incidents {
		if !inc.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(e.root, inc.Name()))
		if err != nil {
			return nil, fmt.Errorf("keyops: list evidence keys of %s: %w", inc.Name(), err)
		}
		for _, f := range files {
			ref := inc.Name() + "/" + f.Name()
			if f.Type().IsRegular() && evidenceKeyRef.MatchString(ref) {
				out = append(out, ref)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func (e *EvidenceKeys) read(ref string) (evidence.Wrapped, error) {
	b, err := os.ReadFile(e.backend.Path(ref))
	if err != nil {
		return evidence.Wrapped{}, fmt.Errorf("keyops: read evidence key %s: %w", ref, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w evidence.Wrapped
	if err := dec.Decode(&w); err != nil {
		return evidence.Wrapped{}, fmt.Errorf("keyops: parse evidence key %s: %w", ref, err)
	}
	return w, nil
}

// StaleWrappedKeys implements [keys.WrappedKeyStore].
func (e *EvidenceKeys) StaleWrappedKeys(ctx context.Context, currentKEK string, limit int) ([]keys.StoredKey, error) {
	refs, err := e.refs()
	if err != nil {
		return nil, err
	}
	var out []keys.StoredKey
	for _, ref := range refs {
		if len(out) >= limit {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("keyops: list stale evidence keys: %w", err)
		}
		w, err := e.read(ref)
		if errors.Is(err, fs.ErrNotExist) {
			continue // destroyed since it was listed
		}
		if err != nil {
			return nil, err
		}
		if w.KeyID != currentKEK {
			out = append(out, keys.StoredKey{Ref: ref, Wrapped: keys.Wrapped{KeyID: w.KeyID, Nonce: w.Nonce, Ciphertext: w.Ciphertext}})
		}
	}
	return out, nil
}

// ReplaceWrappedKey implements [keys.WrappedKeyStore].
func (e *EvidenceKeys) ReplaceWrappedKey(ctx context.Context, ref string, old, updated keys.Wrapped) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keyops: replace evidence key %s: %w", ref, err)
	}
	m := evidenceKeyRef.FindStringSubmatch(ref)
	if m == nil {
		return fmt.Errorf("keyops: replace evidence key: malformed reference %q", ref)
	}
	cur, err := e.read(ref)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyops: replace evidence key %s: destroyed: %w", ref, keys.ErrWrappedKeyChanged)
	}
	if err != nil {
		return err
	}
	if cur.KeyID != old.KeyID || !bytes.Equal(cur.Nonce, old.Nonce) || !bytes.Equal(cur.Ciphertext, old.Ciphertext) {
		return fmt.Errorf("keyops: replace evidence key %s: %w", ref, keys.ErrWrappedKeyChanged)
	}
	body, err := json.Marshal(evidence.Wrapped{KeyID: updated.KeyID, Nonce: updated.Nonce, Ciphertext: updated.Ciphertext})
	if err != nil {
		return fmt.Errorf("keyops: encode evidence key %s: %w", ref, err)
	}
	path := e.backend.Path(ref)
	if err := fsutil.WriteFile(path, body, 0o440); err != nil {
		return fmt.Errorf("keyops: replace evidence key %s: %w", ref, err)
	}
	// The object may have been destroyed (key shredded, ciphertext
	// removed) while the new key was written: do not bring its key back.
	obj := e.backend.Path(strings.TrimSuffix(ref, ".key") + ".obj")
	if _, err := os.Stat(obj); errors.Is(err, fs.ErrNotExist) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("keyops: remove the key of destroyed evidence %s: %w", ref, err)
		}
		return fmt.Errorf("keyops: replace evidence key %s: object destroyed meanwhile: %w", ref, keys.ErrWrappedKeyChanged)
	}
	return nil
}

// LockerKeys is the evidence locker's wrapped data keys as a
// [keys.WrappedKeyStore] when the locker keeps them on a backend with
// versions (IRU_EVIDENCE_BACKEND=s3, Object Lock): a rewrapped key is a
// new version of its blob, held and locked like the first, and the locker
// reads the newest version that unwraps. See [evidence.Locker.StaleWrappedKeys].
type LockerKeys struct{ L *evidence.Locker }

var _ keys.WrappedKeyStore = LockerKeys{}

// StaleWrappedKeys implements [keys.WrappedKeyStore].
func (k LockerKeys) StaleWrappedKeys(ctx context.Context, currentKEK string, limit int) ([]keys.StoredKey, error) {
	refs, err := k.L.StaleWrappedKeys(ctx, currentKEK, limit)
	if err != nil {
		return nil, fmt.Errorf("keyops: list stale evidence keys: %w", err)
	}
	out := make([]keys.StoredKey, 0, len(refs))
	for _, r := range refs {
		out = append(out, keys.StoredKey{Ref: r.Ref, Wrapped: keys.Wrapped{KeyID: r.Wrapped.KeyID, Nonce: r.Wrapped.Nonce, Ciphertext: r.Wrapped.Ciphertext}})
	}
	return out, nil
}

// ReplaceWrappedKey implements [keys.WrappedKeyStore].
func (k LockerKeys) ReplaceWrappedKey(ctx context.Context, ref string, old, updated keys.Wrapped) error {
	err := k.L.ReplaceWrappedKey(ctx, ref,
		evidence.Wrapped{KeyID: old.KeyID, Nonce: old.Nonce, Ciphertext: old.Ciphertext},
		evidence.Wrapped{KeyID: updated.KeyID, Nonce: updated.Nonce, Ciphertext: updated.Ciphertext})
	if errors.Is(err, evidence.ErrWrappedKeyChanged) {
		return fmt.Errorf("keyops: replace evidence key %s: %w: %w", ref, keys.ErrWrappedKeyChanged, err)
	}
	if err != nil {
		return fmt.Errorf("keyops: replace evidence key %s: %w", ref, err)
	}
	return nil
}
