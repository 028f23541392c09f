package evidence

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// softWrapper is a software KeyWrapper (AES-256-GCM key wrap under a KEK),
// standing in for the HSM key manager.
type softWrapper struct {
	id   string
	aead cipher.AEAD
}

func newSoftWrapper(t testing.TB, id string) *softWrapper {
	t.Helper()
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	block, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &softWrapper{id: id, aead: aead}
}

func (w *softWrapper) Wrap(_ context.Context, dek []byte) (Wrapped, error) {
	nonce := make([]byte, w.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return Wrapped{KeyID: w.id, Nonce: nonce, Ciphertext: w.aead.Seal(nil, nonce, dek, []byte(w.id))}, nil
}

func (w *softWrapper) Unwrap(_ context.Context, wr Wrapped) ([]byte, error) {
	if wr.KeyID != w.id {
		return nil, fmt.Errorf("unknown key %q", wr.KeyID)
	}
	if len(wr.Nonce) != w.aead.NonceSize() {
		return nil, fmt.Errorf("nonce of %d bytes", len(wr.Nonce))
	}
	return w.aead.Open(nil, wr.Nonce, wr.Ciphertext, []byte(w.id))
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	t      testing.TB
	ctx    context.Context
	dir    string
	locker *Locker
	clock  *clock
}

func newFixture(t testing.TB, segment int) *fixture {
	t.Helper()
	return newFixtureOn(t, backendCases[0], segment)
}

// backendCase is a backend the locker's test-suite runs against: the
// folder always, S3 on a real MinIO with the integration tag
// (s3_integration_test.go).
type backendCase struct {
	name string
	// open returns a fresh, empty backend; nil means the locker's default
	// folder backend.
	open func(t testing.TB) Backend
	// realClock: the store checks retention against its own clock, so the
	// fixture's clock starts at the real time.
	realClock bool
	// custody keeps the custody logs in the backend (Options.CustodyInStore).
	custody bool
}

var backendCases = []backendCase{{name: "dir"}, {name: "dir-custody-in-store", custody: true}}

// forEachBackend runs fn against every backend of backendCases.
func forEachBackend(t *testing.T, fn func(t *testing.T, bc backendCase)) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) { fn(t, bc) })
	}
}

func newFixtureOn(t testing.TB, bc backendCase, segment int) *fixture {
	t.Helper()
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	if bc.realClock {
		c.t = time.Now().UTC().Truncate(time.Second)
	}
	opts := Options{Now: c.Now, SegmentSize: segment, CustodyInStore: bc.custody}
	if bc.open != nil {
		opts.Backend = bc.open(t)
	}
	l, err := Open(dir, newSoftWrapper(t, "test-kek"), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &fixture{t: t, ctx: ctx, dir: dir, locker: l, clock: c}
}

// blobs lists the stored blob keys ending in suffix, whatever the backend.
func (f *fixture) blobs(suffix string) []string {
	f.t.Helper()
	var out []string
	switch b := f.locker.backend.(type) {
	case *FSBackend:
		err := filepath.WalkDir(b.root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, suffix) {
				out = append(out, p)
			}
			return err
		})
		if err != nil {
			f.t.Fatal(err)
		}
	case *S3Backend:
		for o := range b.c.ListObjects(f.ctx, b.bucket, minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
			if o.Err != nil {
				f.t.Fatal(o.Err)
			}
			if !o.IsDeleteMarker && strings.HasSuffix(o.Key, suffix) {
				out = append(out, o.Key+"?versionId="+o.VersionID)
			}
		}
	default:
		f.t.Fatalf("no blob listing for %T", b)
	}
	return out
}

// stored returns the stored (encrypted) bytes of ref's object.
func (f *fixture) stored(ref Ref) []byte {
	f.t.Helper()
	m := f.meta(ref)
	rc, err := f.locker.backend.Get(f.ctx, objectKey(m.Incident, m.blob))
	if err != nil {
		f.t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func request(incident, name string, class Class, body io.Reader) PutRequest {
	return PutRequest{
		Incident: incident, Name: name, Class: class, MediaType: "application/octet-stream",
		CollectedBy: "system:worker", Source: "pve/node1/lxc/101:/var/log/auth.log", Body: body,
	}
}

var alice = Reader{Identity: "keycloak:iru/alice", Reason: "triage of the suspicious login"}

func (f *fixture) put(incident, name string, class Class, body []byte) Ref {
	f.t.Helper()
	ref, err := f.locker.Put(f.ctx, request(incident, name, class, bytesReader(body)))
	if err != nil {
		f.t.Fatalf("Put %s: %v", name, err)
	}
	return ref
}

// get reads ref to the end and returns the content and the error of the read.
func (f *fixture) get(ref Ref) ([]byte, Meta, error) {
	f.t.Helper()
	rc, meta, err := f.locker.Get(f.ctx, ref, alice)
	if err != nil {
		return nil, Meta{}, err
	}
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	return b, meta, err
}

// meta returns the live object of ref as the manifest has it.
func (f *fixture) meta(ref Ref) Meta {
	f.t.Helper()
	incident, _, _ := ref.Parse()
	objs, err := f.locker.List(f.ctx, incident)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, o := range objs {
		if o.Ref == ref {
			return o
		}
	}
	f.t.Fatalf("%s not listed", ref)
	return Meta{}
}

func (f *fixture) objectPath(ref Ref) string {
	m := f.meta(ref)
	return f.locker.backend.(*FSBackend).Path(objectKey(m.Incident, m.blob))
}

func (f *fixture) keyPath(ref Ref) string {
	m := f.meta(ref)
	return f.locker.backend.(*FSBackend).Path(wrapKey(m.Incident, m.blob))
}

func (f *fixture) custodyPath(incident string) string {
	return fileCustody{dir: f.locker.dir}.path(incident)
}

// editFile applies fn to the bytes of path, as an attacker with disk access.
func editFile(t testing.TB, path string, fn func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	_, _ = mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// randomReader streams n pseudo-random bytes without holding them.
func randomReader(n int64, seed byte) io.Reader {
	return io.LimitReader(mrand.NewChaCha8([32]byte{seed}), n)
}

// peakHeap runs fn and returns the peak of HeapInuse above what it was
// before, sampled every millisecond.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		peak := base
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var s runtime.MemStats
		for {
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
				runtime.ReadMemStats(&s)
				peak = max(peak, s.HeapInuse)
			}
		}
	}()
	fn()
	runtime.ReadMemStats(&ms)
	close(stop)
	peak := max(<-done, ms.HeapInuse)
	return peak - base
}
