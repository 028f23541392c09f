package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Backend stores the locker's blobs (encrypted objects and wrapped keys).
// Keys are slash-separated paths of [A-Za-z0-9._-] segments. A blob store
// (S3 with Object Lock, say) can implement it; the [Locker] enforces
// retention before it deletes anything.
type Backend interface {
	// Put stores r under key, all or nothing, and returns the bytes
	// written. It fails with ErrExists when key is already stored: blobs
	// are never overwritten.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get opens key for reading, or fails with ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes key, or fails with ErrNotFound.
	Stat(ctx context.Context, key string) (BlobInfo, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Lister is implemented by backends that can list the folders under a
// prefix (the folder and S3 backends): the locker lists the incidents whose
// custody logs it keeps in the store.
type Lister interface {
	// Children returns the names of the folders directly under prefix
	// (a key prefix ending in "/"), sorted.
	Children(ctx context.Context, prefix string) ([]string, error)
}

// Shredder is implemented by backends that can overwrite a blob before
// removing it. The locker shreds wrapped data keys when it can.
type Shredder interface {
	Shred(ctx context.Context, key string) error
}

// Holder is implemented by backends whose store enforces retention itself
// (S3 Object Lock). Such a backend writes every blob under a legal hold:
// the store refuses to delete it until the hold is released. The [Locker]
// locks each blob it records until the object's retention ends, and
// releases the holds of an incident when it closes ([Locker.ReleaseHold]).
type Holder interface {
	// Retain locks key in compliance mode until until: nobody can delete
	// or overwrite it before then. Retention can be extended, never
	// shortened; setting the same date again is not an error.
	Retain(ctx context.Context, key string, until time.Time) error
	// SetLegalHold sets (on) or releases the legal hold on key.
	SetLegalHold(ctx context.Context, key string, on bool) error
}

// Versioned is implemented by backends that keep every version of a blob
// (S3 with Object Lock, where a locked version cannot be replaced). A
// wrapped data key moved to a new KEK is written as a new version of its
// blob, held and locked like the first; the [Locker] reads a wrapped key
// from the newest version that unwraps.
type Versioned interface {
	// Versions lists the data versions of key, newest first.
	Versions(ctx context.Context, key string) ([]string, error)
	// GetVersion opens one version of key.
	GetVersion(ctx context.Context, key, version string) (io.ReadCloser, error)
	// PutVersion writes r as a new version of key, which must exist, with
	// the legal hold and retention of its first version.
	PutVersion(ctx context.Context, key string, r io.Reader) error
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

var blobKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)

func checkBlobKey(key string) error {
	if !blobKeyRE.MatchString(key) || len(key) > 512 {
		return fmt.Errorf("%w: blob key %q", ErrInvalid, key)
	}
	return nil
}

// FSBackend is a [Backend] in a folder of the local filesystem: each blob
// is a read-only file, written to a temporary file, synced, and then linked
// into place (which fails if the name exists), so a blob is either complete
// or absent. The disk writes of a large blob start while it is still being
// written (every 8 MiB), so that its fsync waits only for the tail.
type FSBackend struct {
	root string
	// writeback starts the disk writes of a blob being written (see
	// writebackWriter); nil means startWriteback.
	writeback writebackFunc
}

// NewFSBackend returns a backend rooted at root, creating it when missing.
func NewFSBackend(root string) (*FSBackend, error) {
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("evidence: backend %s: %w", root, err)
	}
	return &FSBackend{root: root}, nil
}

// Path returns the file that holds key.
func (b *FSBackend) Path(key string) string {
	return filepath.Join(b.root, filepath.FromSlash(key))
}

// Children implements [Lister].
func (b *FSBackend) Children(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(b.Path(prefix))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: list %s: %w", prefix, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Put implements [Backend].
func (b *FSBackend) Put(ctx context.Context, key string, r io.Reader) (n int64, err error) {
	if err := checkBlobKey(key); err != nil {
		return 0, err
	}
	final := b.Path(key)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, fmt.Errorf("evidence: put %s: %w", key, err)
	}
	if _, err := os.Lstat(final); err == nil {
		return 0, fmt.Errorf("%w: %s", ErrExists, key)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("evidence: put %s: %w", key, err)
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	start := b.writeback
	if start == nil {
		start = startWriteback
	}
	w := newWritebackWriter(ctx, tmp, start)
	n, err = io.Copy(w, r)
	w.finish()
	if err != nil {
		return 0, fmt.Errorf("evidence: put %s: %w", key, err)
	}
	if err := tmp.Chmod(0o440); err != nil {
		return 0, fmt.Errorf("evidence: put %s: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("evidence: put %s: sync: %w", key, err)
	}
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("%w: %s", ErrExists, key)
		}
		return 0, fmt.Errorf("evidence: put %s: %w", key, err)
	}
	if err := syncDir(dir); err != nil {
		return 0, fmt.Errorf("evidence: put %s: %w", key, err)
	}
	return n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}

// Get implements [Backend].
func (b *FSBackend) Get(_ context.Context, key string) (io.ReadCloser, error) {
	if err := checkBlobKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(b.Path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: get %s: %w", key, err)
	}
	return f, nil
}

// Stat implements [Backend].
func (b *FSBackend) Stat(_ context.Context, key string) (BlobInfo, error) {
	if err := checkBlobKey(key); err != nil {
		return BlobInfo{}, err
	}
	fi, err := os.Stat(b.Path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return BlobInfo{}, fmt.Errorf("%w: blob %s", ErrNotFound, key)
	}
	if err != nil {
		return BlobInfo{}, fmt.Errorf("evidence: stat %s: %w", key, err)
	}
	return BlobInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements [Backend].
func (b *FSBackend) Delete(_ context.Context, key string) error {
	if err := checkBlobKey(key); err != nil {
		return err
	}
	if err := os.Remove(b.Path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("evidence: delete %s: %w", key, err)
	}
	return syncDir(filepath.Dir(b.Path(key)))
}

// Shred implements [Shredder]: it overwrites the file with zeros, syncs it
// and removes it. On copy-on-write or flash storage the old blocks may
// survive; what makes the ciphertext unrecoverable is that the wrapped key
// is gone and only the HSM could have unwrapped it.
func (b *FSBackend) Shred(ctx context.Context, key string) error {
	if err := checkBlobKey(key); err != nil {
		return err
	}
	path := b.Path(key)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("evidence: shred %s: %w", key, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("evidence: shred %s: %w", key, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("evidence: shred %s: %w", key, err)
	}
	_, werr := io.CopyN(f, zeroReader{}, fi.Size())
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("evidence: shred %s: %w", key, err)
	}
	return b.Delete(ctx, key)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
