package codec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/keys"
)

// StoredDataKey is one codec data key as persisted: only wrapped by the HSM
// key-encryption key, never in clear.
type StoredDataKey struct {
	ID      string       `json:"id"`
	Wrapped keys.Wrapped `json:"wrapped"`
	Created time.Time    `json:"created"`
}

// dataKeyID matches the ids [KeyRing] generates; it keeps ids safe as file
// names and in payload metadata.
var dataKeyID = regexp.MustCompile(`^dk-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// CheckDataKeyID refuses an id [KeyRing] would not have generated.
func CheckDataKeyID(id string) error {
	if !dataKeyID.MatchString(id) {
		return fmt.Errorf("codec: malformed data key id %q", id)
	}
	return nil
}

// KeyStore keeps the wrapped data keys of a [KeyRing]: a [FileKeyStore]
// on one host, or the shared state's database across hosts. Rewrapping
// under a new KEK goes through its [keys.WrappedKeyStore] methods.
type KeyStore interface {
	// List returns every stored key, oldest first.
	List() ([]StoredDataKey, error)
	// Add stores a new key; it refuses an id already stored.
	Add(StoredDataKey) error
	keys.WrappedKeyStore
}

var _ KeyStore = (*FileKeyStore)(nil)

// FileKeyStore keeps wrapped data keys as one JSON file per key (mode 0600)
// in a state folder (mode 0700). Writes are atomic (temporary file, fsync,
// rename). It implements [keys.WrappedKeyStore], so [keys.Manager.Rewrap]
// can move its keys to a new KEK.
type FileKeyStore struct {
	dir string
	mu  sync.Mutex // serializes read-modify-write in this process
}

var _ keys.WrappedKeyStore = (*FileKeyStore)(nil)

// NewFileKeyStore opens (creating if needed) the key folder dir.
func NewFileKeyStore(dir string) (*FileKeyStore, error) {
	if dir == "" {
		return nil, errors.New("codec: key store folder not set")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("codec: create key store folder: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("codec: key store folder: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("codec: key store folder %s has mode %v; want no group or other access (0700)", dir, fi.Mode().Perm())
	}
	return &FileKeyStore{dir: dir}, nil
}

// Dir returns the store's folder.
func (s *FileKeyStore) Dir() string { return s.dir }

func (s *FileKeyStore) path(id string) string { return filepath.Join(s.dir, id+".json") }

// List returns every stored key, oldest first.
func (s *FileKeyStore) List() ([]StoredDataKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list()
}

func (s *FileKeyStore) list() ([]StoredDataKey, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("codec: list key store: %w", err)
	}
	var out []StoredDataKey
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || !dataKeyID.MatchString(id) {
			continue
		}
		k, err := s.read(id)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func (s *FileKeyStore) read(id string) (StoredDataKey, error) {
	b, err := os.ReadFile(s.path(id))
	if err != nil {
		return StoredDataKey{}, fmt.Errorf("codec: read data key %s: %w", id, err)
	}
	var k StoredDataKey
	if err := json.Unmarshal(b, &k); err != nil {
		return StoredDataKey{}, fmt.Errorf("codec: parse data key file %s: %w", s.path(id), err)
	}
	if k.ID != id {
		return StoredDataKey{}, fmt.Errorf("codec: data key file %s holds id %q", s.path(id), k.ID)
	}
	return k, nil
}

// Add stores a new key; it refuses to overwrite an existing id.
func (s *FileKeyStore) Add(k StoredDataKey) error {
	if !dataKeyID.MatchString(k.ID) {
		return fmt.Errorf("codec: add data key: malformed id %q", k.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Lstat(s.path(k.ID)); err == nil {
		return fmt.Errorf("codec: add data key %s: already stored", k.ID)
	}
	return s.write(k)
}

// write atomically replaces the key's file.
func (s *FileKeyStore) write(k StoredDataKey) error {
	b, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return fmt.Errorf("codec: encode data key %s: %w", k.ID, err)
	}
	if err := fsutil.WriteFile(s.path(k.ID), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("codec: store data key %s: %w", k.ID, err)
	}
	return nil
}

// StaleWrappedKeys implements [keys.WrappedKeyStore]; the reference of a
// key is its id.
func (s *FileKeyStore) StaleWrappedKeys(ctx context.Context, currentKEK string, limit int) ([]keys.StoredKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("codec: list stale data keys: %w", err)
	}
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []keys.StoredKey
	for _, k := range all {
		if k.Wrapped.KeyID != currentKEK && len(out) < limit {
			out = append(out, keys.StoredKey{Ref: k.ID, Wrapped: k.Wrapped})
		}
	}
	return out, nil
}

// ReplaceWrappedKey implements [keys.WrappedKeyStore].
func (s *FileKeyStore) ReplaceWrappedKey(ctx context.Context, ref string, old, updated keys.Wrapped) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("codec: replace data key %s: %w", ref, err)
	}
	if !dataKeyID.MatchString(ref) {
		return fmt.Errorf("codec: replace data key: malformed id %q", ref)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.read(ref)
	if err != nil {
		return err
	}
	if k.Wrapped.KeyID != old.KeyID || !bytes.Equal(k.Wrapped.Nonce, old.Nonce) || !bytes.Equal(k.Wrapped.Ciphertext, old.Ciphertext) {
		return fmt.Errorf("codec: replace data key %s: %w", ref, keys.ErrWrappedKeyChanged)
	}
	k.Wrapped = updated
	return s.write(k)
}
