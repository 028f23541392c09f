//go:build integration

package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/iru-responder/responder/internal/objectstore"
)

// The locker's test-suite also runs against S3 on a real MinIO (the
// pinned .tools/bin/minio, or IRU_MINIO_BIN), one bucket with Object Lock
// per test, written with the platform's restricted credentials.
func init() {
	backendCases = append(backendCases, backendCase{name: "s3", realClock: true, custody: true, open: func(t testing.TB) Backend {
		return newS3Env(t).backend
	}})
}

var minioShared struct {
	once sync.Once
	srv  *objectstore.Server
	err  error
	n    atomic.Int64
}

// minioServer returns the package's MinIO server, starting it on first use.
func minioServer(t testing.TB) *objectstore.Server {
	t.Helper()
	minioShared.once.Do(func() {
		dir, err := os.MkdirTemp("", "iru-minio-*")
		if err != nil {
			minioShared.err = err
			return
		}
		logf, err := os.CreateTemp("", "iru-minio-*.log")
		if err != nil {
			minioShared.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		minioShared.srv, minioShared.err = objectstore.Start(ctx, objectstore.Options{Dir: dir, Log: logf})
	})
	if minioShared.err != nil {
		t.Fatalf("MinIO: %v", minioShared.err)
	}
	return minioShared.srv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if minioShared.srv != nil {
		_ = minioShared.srv.Stop()
	}
	os.Exit(code)
}

// s3Env is one test's bucket: the backend on the platform's credentials,
// and raw clients as the platform user and as root, for the attacks.
type s3Env struct {
	srv      *objectstore.Server
	bucket   string
	backend  *S3Backend
	platform *minio.Client
	root     *minio.Client
}

func newS3Env(t testing.TB) *s3Env {
	t.Helper()
	srv := minioServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bucket := fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e9, minioShared.n.Add(1))
	creds, err := srv.NewBucket(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewS3Backend(ctx, S3Options{Endpoint: srv.Endpoint(), Bucket: bucket,
		AccessKey: creds.AccessKey, SecretKey: creds.SecretKey, SessionToken: creds.SessionToken})
	if err != nil {
		t.Fatal(err)
	}
	platform, err := srv.Client(creds)
	if err != nil {
		t.Fatal(err)
	}
	root, err := srv.Client(srv.Root())
	if err != nil {
		t.Fatal(err)
	}
	return &s3Env{srv: srv, bucket: bucket, backend: b, platform: platform, root: root}
}

func (e *s3Env) fixture(t testing.TB, retention map[Class]time.Duration) *fixture {
	t.Helper()
	dir := t.TempDir()
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	l, err := Open(dir, newSoftWrapper(t, "test-kek"), Options{Now: c.Now, Backend: e.backend, Retention: retention, CustodyInStore: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &fixture{t: t, ctx: ctx, dir: dir, locker: l, clock: c}
}

// firstVersion returns the first version of key and its bytes, read
// directly from the store as root.
func (e *s3Env) firstVersion(t testing.TB, ctx context.Context, key string) (string, []byte) {
	t.Helper()
	v, err := e.backend.first(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.root.GetObject(ctx, e.bucket, key, minio.GetObjectOptions{VersionID: v.VersionID})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = obj.Close() }()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(obj); err != nil {
		t.Fatal(err)
	}
	return v.VersionID, buf.Bytes()
}

// isLockRefusal reports whether err is the store refusing a change to a
// locked version: AWS S3 answers AccessDenied; MinIO answers 400
// InvalidRequest "Object is WORM protected and cannot be overwritten".
func isLockRefusal(err error) bool {
	r := minio.ToErrorResponse(err)
	return err != nil && (r.Code == "AccessDenied" || r.Code == "InvalidRequest" && strings.Contains(r.Message, "WORM protected"))
}

// TestS3LockedObjectRefusesThePlatformUser attacks a locked object with
// the platform's own S3 credentials (as a thief of the worker's secrets
// would) and as root: every destructive call is refused by the store, and
// the locker still reads the original bytes, verified.
func TestS3LockedObjectRefusesThePlatformUser(t *testing.T) {
	e := newS3Env(t)
	f := e.fixture(t, nil)
	body := []byte("auth.log: Accepted password for root from 203.0.113.9")
	ref := f.put("inc-attack", "auth.log", ClassPII, body)
	m := f.meta(ref)
	keys := []string{objectKey(m.Incident, m.blob), wrapKey(m.Incident, m.blob)}
	before := map[string][32]byte{}
	versions := map[string]string{}
	for _, k := range keys {
		v, b := e.firstVersion(t, f.ctx, k)
		before[k], versions[k] = sha256.Sum256(b), v
	}
	mode := minio.Compliance
	gov := minio.Governance
	// soon is a retain-until date shorter than the object's and still in
	// the future when the call is made (a date already past is refused as
	// malformed, not as the lock's refusal the attack must meet).
	soon := func() *time.Time { t := time.Now().Add(time.Minute); return &t }
	off := minio.LegalHoldDisabled
	for _, k := range keys {
		attacks := []struct {
			name string
			as   *minio.Client
			do   func(c *minio.Client) error
		}{
			{"delete the version (legal hold on)", e.platform, func(c *minio.Client) error {
				return c.RemoveObject(f.ctx, e.bucket, k, minio.RemoveObjectOptions{VersionID: versions[k]})
			}},
			{"release the hold, then delete the version (compliance retention)", e.platform, func(c *minio.Client) error {
				if err := c.PutObjectLegalHold(f.ctx, e.bucket, k, minio.PutObjectLegalHoldOptions{VersionID: versions[k], Status: &off}); err != nil {
					return fmt.Errorf("release hold: %w", err)
				}
				return c.RemoveObject(f.ctx, e.bucket, k, minio.RemoveObjectOptions{VersionID: versions[k]})
			}},
			{"delete the version bypassing governance", e.platform, func(c *minio.Client) error {
				return c.RemoveObject(f.ctx, e.bucket, k, minio.RemoveObjectOptions{VersionID: versions[k], GovernanceBypass: true})
			}},
			{"shorten the retention", e.platform, func(c *minio.Client) error {
				return c.PutObjectRetention(f.ctx, e.bucket, k, minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: soon(), VersionID: versions[k]})
			}},
			{"switch to governance mode", e.platform, func(c *minio.Client) error {
				return c.PutObjectRetention(f.ctx, e.bucket, k, minio.PutObjectRetentionOptions{Mode: &gov, RetainUntilDate: soon(), VersionID: versions[k], GovernanceBypass: true})
			}},
			{"delete the version as root", e.root, func(c *minio.Client) error {
				return c.RemoveObject(f.ctx, e.bucket, k, minio.RemoveObjectOptions{VersionID: versions[k], GovernanceBypass: true})
			}},
		}
		for _, a := range attacks {
			t.Run(strings.TrimPrefix(k, "inc-attack/")[32:]+"/"+a.name, func(t *testing.T) {
				err := a.do(a.as)
				if !isLockRefusal(err) {
					t.Fatalf("err = %v (code %q), want the store's refusal (AccessDenied, or MinIO's WORM protected)", err, minio.ToErrorResponse(err).Code)
				}
			})
		}
		// The locker's own backend refuses too, with ErrRetained.
		if err := e.backend.Delete(f.ctx, k); !errors.Is(err, ErrRetained) {
			t.Fatalf("backend Delete %s: err = %v, want ErrRetained", k, err)
		}
		// Overwrite: the backend refuses (ErrExists); a raw PUT and a raw
		// DELETE only add a version and a delete marker on top of the
		// locked version, which is what the backend reads.
		if _, err := e.backend.Put(f.ctx, k, strings.NewReader("replacement")); !errors.Is(err, ErrExists) {
			t.Fatalf("backend Put over %s: err = %v, want ErrExists", k, err)
		}
		if _, err := e.platform.PutObject(f.ctx, e.bucket, k, strings.NewReader("replacement"), -1, minio.PutObjectOptions{}); err != nil {
			t.Logf("raw overwrite of %s: %v", k, err)
		}
		if err := e.platform.RemoveObject(f.ctx, e.bucket, k, minio.RemoveObjectOptions{}); err != nil {
			t.Logf("raw delete of %s: %v", k, err)
		}
	}
	for _, k := range keys {
		v, b := e.firstVersion(t, f.ctx, k)
		if v != versions[k] || sha256.Sum256(b) != before[k] {
			t.Fatalf("%s: first version %s changed (was %s), or its bytes did", k, v, versions[k])
		}
		lock, err := e.backend.Lock(f.ctx, k)
		if err != nil || lock.Mode != "COMPLIANCE" || !lock.RetainUntil.Equal(m.RetainUntil) {
			t.Fatalf("%s: lock = %+v, %v; want COMPLIANCE until %s", k, lock, err, m.RetainUntil)
		}
	}
	if got, _, err := f.get(ref); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get after the attacks = %q, %v; want the original bytes", got, err)
	}
	if _, err := f.locker.Verify(f.ctx, "inc-attack"); err != nil {
		t.Fatalf("Verify after the attacks: %v", err)
	}
}

// TestS3LegalHold: objects are held while their incident is open, the
// close releases the holds (recorded once in the custody log), their
// compliance retention stays, and evidence put after the close is not held.
func TestS3LegalHold(t *testing.T) {
	e := newS3Env(t)
	f := e.fixture(t, nil)
	a := f.put("inc-hold", "a.txt", ClassOperational, []byte("a"))
	b := f.put("inc-hold", "b.txt", ClassFinancial, []byte("b"))
	check := func(ref Ref, held bool) {
		t.Helper()
		m := f.meta(ref)
		for _, k := range []string{objectKey(m.Incident, m.blob), wrapKey(m.Incident, m.blob)} {
			lock, err := e.backend.Lock(f.ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if lock.LegalHold != held || lock.Mode != "COMPLIANCE" || !lock.RetainUntil.Equal(m.RetainUntil) {
				t.Fatalf("%s: lock %+v, want hold %v, COMPLIANCE until %s", k, lock, held, m.RetainUntil)
			}
		}
	}
	check(a, true)
	check(b, true)
	if man, _ := f.locker.Manifest(f.ctx, "inc-hold"); !man.Held {
		t.Fatal("manifest of an open incident not held")
	}
	closer := Reader{Identity: HoldReleaser, Reason: "incident resolved"}
	for range 2 { // releasing twice is harmless and recorded once
		n, err := f.locker.ReleaseHold(f.ctx, "inc-hold", closer)
		if err != nil || n != 2 {
			t.Fatalf("ReleaseHold = %d, %v; want 2", n, err)
		}
	}
	check(a, false)
	check(b, false)
	man, err := f.locker.Manifest(f.ctx, "inc-hold")
	if err != nil || man.Held {
		t.Fatalf("manifest after release: held %v, %v", man.Held, err)
	}
	var released int
	for _, ev := range man.Events {
		if ev.Kind == EventHoldReleased && ev.Actor == HoldReleaser && ev.Reason == "incident resolved" {
			released++
		}
	}
	if released != 1 {
		t.Fatalf("%d hold_released events, want 1: %+v", released, man.Events)
	}
	late := f.put("inc-hold", "late.txt", ClassOperational, []byte("late"))
	check(late, false)
	if _, err := f.locker.Verify(f.ctx, "inc-hold"); err != nil {
		t.Fatal(err)
	}
}

// TestS3CryptoShredAfterRetention uses a 3-second pii retention (MinIO
// takes a per-object retain-until seconds ahead): before it ends the store
// refuses the deletion and the sweep leaves the object; while the incident
// is open the hold keeps it past its retention; once released and expired
// the sweep destroys the wrapped key and the ciphertext, every version.
func TestS3CryptoShredAfterRetention(t *testing.T) {
	e := newS3Env(t)
	f := e.fixture(t, map[Class]time.Duration{ClassPII: 3 * time.Second})
	ref := f.put("inc-shred", "users.csv", ClassPII, []byte("alice,bob"))
	m := f.meta(ref)
	if err := e.backend.Delete(f.ctx, wrapKey(m.Incident, m.blob)); !errors.Is(err, ErrRetained) {
		t.Fatalf("early delete of the wrapped key: err = %v, want ErrRetained", err)
	}
	// Past the retention, the incident still open: held.
	time.Sleep(time.Until(m.RetainUntil) + 500*time.Millisecond)
	f.clock.Add(time.Since(f.clock.Now())) // the clock follows real time
	rep, err := f.locker.Sweep(f.ctx, time.Now())
	if err != nil || len(rep.Deleted) != 0 {
		t.Fatalf("sweep of an open incident = %+v, %v; want nothing destroyed", rep, err)
	}
	if err := e.backend.Delete(f.ctx, objectKey(m.Incident, m.blob)); !errors.Is(err, ErrRetained) {
		t.Fatalf("delete under legal hold: err = %v, want ErrRetained", err)
	}
	if _, err := f.locker.ReleaseHold(f.ctx, "inc-shred", Reader{Identity: HoldReleaser, Reason: "incident resolved"}); err != nil {
		t.Fatal(err)
	}
	rep, err = f.locker.Sweep(f.ctx, time.Now())
	if err != nil || len(rep.Deleted) != 1 || rep.Deleted[0] != ref {
		t.Fatalf("sweep after retention = %+v, %v; want %s destroyed", rep, err, ref)
	}
	// The object and its wrapped key are gone (every version); the
	// custody events stay, the record of what was destroyed and when.
	if left := append(f.blobs(".obj"), f.blobs(".key")...); len(left) != 0 {
		t.Fatalf("blobs left after the shred: %v", left)
	}
	if events := f.blobs(".event"); len(events) == 0 {
		t.Fatal("the custody events went with the evidence")
	}
	if _, _, err := f.get(ref); !errors.Is(err, ErrDeleted) {
		t.Fatalf("Get after the shred: err = %v, want ErrDeleted", err)
	}
}

// BenchmarkPut puts objects of 4 KiB and 1 MiB (distinct content, no
// dedup) into the folder backend and into S3 (MinIO on loopback, Object
// Lock: one PUT, a retention and nothing more per blob); the ratio of the
// two is the cost of the shared store.
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		for _, backend := range []string{"dir", "s3"} {
			b.Run(fmt.Sprintf("%s/%dKiB", backend, size>>10), func(b *testing.B) {
				var f *fixture
				if backend == "s3" {
					f = newS3Env(b).fixture(b, nil)
				} else {
					f = newFixture(b, 0)
				}
				benchPut(b, f, size)
			})
		}
	}
}

func benchPut(b *testing.B, f *fixture, size int) {
	body := randomBytes(size, 5)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		body[0], body[1], body[2] = byte(i), byte(i>>8), byte(i>>16) // distinct content: no dedup
		if _, err := f.locker.Put(f.ctx, request("inc-bench", "x", ClassOperational, bytes.NewReader(body))); err != nil {
			b.Fatal(err)
		}
	}
}

// kekRing is a KeyWrapper with several KEKs: it wraps under the current
// one and unwraps under any it still has, as the HSM key manager during a
// rotation.
type kekRing struct {
	mu      sync.Mutex
	current string
	keks    map[string]*softWrapper
}

func (r *kekRing) Wrap(ctx context.Context, dek []byte) (Wrapped, error) {
	r.mu.Lock()
	w := r.keks[r.current]
	r.mu.Unlock()
	return w.Wrap(ctx, dek)
}

func (r *kekRing) Unwrap(ctx context.Context, wr Wrapped) ([]byte, error) {
	r.mu.Lock()
	w, ok := r.keks[wr.KeyID]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("KEK %q retired", wr.KeyID)
	}
	return w.Unwrap(ctx, wr)
}

// TestS3RewrapKeepsEvidenceReadable rotates the KEK over locked evidence:
// each wrapped key gets a new version under the new KEK (locked and held
// like the first), the old KEK is retired, and every object still reads
// and verifies. A garbage version written on top by the platform user does
// not hide the real one, and a stale replacement is refused.
func TestS3RewrapKeepsEvidenceReadable(t *testing.T) {
	e := newS3Env(t)
	ring := &kekRing{current: "k1", keks: map[string]*softWrapper{"k1": newSoftWrapper(t, "k1")}}
	l, err := Open(t.TempDir(), ring, Options{Backend: e.backend})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bodies := map[Ref][]byte{}
	for i := range 3 {
		body := []byte(fmt.Sprintf("evidence %d", i))
		ref, err := l.Put(ctx, request("inc-rot", fmt.Sprint(i), ClassOperational, bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		bodies[ref] = body
	}
	ring.mu.Lock()
	ring.keks["k2"], ring.current = newSoftWrapper(t, "k2"), "k2"
	ring.mu.Unlock()
	stale, err := l.StaleWrappedKeys(ctx, "k2", 100)
	if err != nil || len(stale) != 3 {
		t.Fatalf("stale keys = %d, %v; want 3", len(stale), err)
	}
	for _, s := range stale {
		dek, err := ring.Unwrap(ctx, s.Wrapped)
		if err != nil {
			t.Fatal(err)
		}
		w, err := ring.Wrap(ctx, dek)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.ReplaceWrappedKey(ctx, s.Ref, s.Wrapped, w); err != nil {
			t.Fatalf("replace %s: %v", s.Ref, err)
		}
		// A second rotation run that read the old key is refused.
		if err := l.ReplaceWrappedKey(ctx, s.Ref, s.Wrapped, w); !errors.Is(err, ErrWrappedKeyChanged) {
			t.Fatalf("stale replace of %s: err = %v, want ErrWrappedKeyChanged", s.Ref, err)
		}
		// The new version is locked and held like the first.
		versions, err := e.backend.Versions(ctx, s.Ref)
		if err != nil || len(versions) != 2 {
			t.Fatalf("versions of %s = %v, %v", s.Ref, versions, err)
		}
		mode, until, err := e.root.GetObjectRetention(ctx, e.bucket, s.Ref, versions[0])
		first, ferr := e.backend.Lock(ctx, s.Ref)
		if err != nil || ferr != nil || mode == nil || *mode != minio.Compliance || !until.Equal(first.RetainUntil) {
			t.Fatalf("new version of %s: mode %v until %v (%v %v); want COMPLIANCE until %s", s.Ref, mode, until, err, ferr, first.RetainUntil)
		}
	}
	if stale, err := l.StaleWrappedKeys(ctx, "k2", 100); err != nil || len(stale) != 0 {
		t.Fatalf("after the rewrap: %d stale keys, %v", len(stale), err)
	}
	ring.mu.Lock()
	delete(ring.keks, "k1") // retired: destroyed in the HSM
	ring.mu.Unlock()
	// The platform user (a thief of its credentials) writes a garbage
	// version of one wrapped key on top.
	first := stale[0].Ref
	if _, err := e.platform.PutObject(ctx, e.bucket, first, strings.NewReader(`{"key_id":"k2","nonce":"AAAA","ciphertext":"AAAA"}`), -1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	for ref, body := range bodies {
		rc, _, err := l.Get(ctx, ref, alice)
		if err != nil {
			t.Fatalf("Get %s after the rotation: %v", ref, err)
		}
		var got bytes.Buffer
		_, err = got.ReadFrom(rc)
		_ = rc.Close()
		if err != nil || !bytes.Equal(got.Bytes(), body) {
			t.Fatalf("Get %s after the rotation = %q, %v", ref, got.Bytes(), err)
		}
	}
	if _, err := l.Verify(ctx, "inc-rot"); err != nil {
		t.Fatal(err)
	}
}

// TestS3LargeObject: an object above the single-PUT size goes up as a
// multipart upload, held and locked like a small one, and reads back.
func TestS3LargeObject(t *testing.T) {
	e := newS3Env(t)
	f := e.fixture(t, nil)
	body := randomBytes(3<<20+17, 11)
	ref := f.put("inc-large", "disk.img", ClassOperational, body)
	if got, _, err := f.get(ref); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
	lock, err := f.locker.StoreLock(f.ctx, ref)
	if err != nil || lock.Mode != "COMPLIANCE" || !lock.LegalHold || !lock.RetainUntil.Equal(f.meta(ref).RetainUntil) {
		t.Fatalf("lock = %+v, %v", lock, err)
	}
	m := f.meta(ref)
	if _, err := f.locker.backend.Put(f.ctx, objectKey(m.Incident, m.blob), bytes.NewReader(body)); !errors.Is(err, ErrExists) {
		t.Fatalf("Put over the large object: err = %v, want ErrExists", err)
	}
}

// TestS3CustodySharedByHosts: two lockers on different hosts (their own
// folders, one bucket) with the custody logs in the bucket: what one
// collects the other reads and verifies, each read is in the one chain
// both see, and two appends of the same event number cannot both land (the
// loser gets ErrCustodyConflict, nothing is overwritten, and it succeeds
// after reading again). Control: with the logs in each host's folder, the
// second host cannot read the first one's evidence.
func TestS3CustodySharedByHosts(t *testing.T) {
	e := newS3Env(t)
	ctx := context.Background()
	w := newSoftWrapper(t, "test-kek")
	open := func(inStore bool) *Locker {
		l, err := Open(t.TempDir(), w, Options{Backend: e.backend, CustodyInStore: inStore})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := open(true), open(true)
	ref, err := a.Put(ctx, request("inc-hosts", "shell.log", ClassOperational, bytesReader([]byte("uid=0(root)"))))
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := b.Get(ctx, ref, alice)
	if err != nil {
		t.Fatalf("host B reads what host A collected: %v", err)
	}
	body, _ := io.ReadAll(rc)
	_ = rc.Close()
	if string(body) != "uid=0(root)" {
		t.Fatalf("host B read %q", body)
	}
	for name, l := range map[string]*Locker{"A": a, "B": b} {
		rep, err := l.Verify(ctx, "inc-hosts")
		if err != nil || len(rep.Problems) != 0 || rep.Objects != 1 {
			t.Fatalf("verify on host %s: %+v %v", name, rep, err)
		}
		m, err := l.Manifest(ctx, "inc-hosts")
		if err != nil || len(m.Events) < 2 || m.Events[len(m.Events)-1].Kind != EventRead {
			t.Fatalf("host %s's custody chain does not end with B's read: %+v %v", name, m.Events, err)
		}
	}

	// Two hosts append event n at once: one lands, the other is refused.
	ca, cb := &blobCustody{b: e.backend}, &blobCustody{b: e.backend}
	la, err := ca.read(ctx, "inc-hosts")
	if err != nil {
		t.Fatal(err)
	}
	lb, err := cb.read(ctx, "inc-hosts")
	if err != nil {
		t.Fatal(err)
	}
	n := len(la.events)
	if _, err := lb.append(ctx, cb, Event{Time: time.Now(), Kind: EventRead, SHA256: la.events[0].SHA256, Actor: "keycloak:iru/bob", Reason: "host B"}); err != nil {
		t.Fatal(err)
	}
	if _, err := la.append(ctx, ca, Event{Time: time.Now(), Kind: EventRead, SHA256: la.events[0].SHA256, Actor: "keycloak:iru/alice", Reason: "host A"}); !errors.Is(err, ErrCustodyConflict) {
		t.Fatalf("the second append of event %d: %v, want ErrCustodyConflict", n+1, err)
	}
	again, err := ca.read(ctx, "inc-hosts")
	if err != nil || len(again.events) != n+1 || again.events[n].Reason != "host B" {
		t.Fatalf("after the conflict host A reads %d events (%v), want B's event %d kept", len(again.events), err, n+1)
	}
	if _, err := again.append(ctx, ca, Event{Time: time.Now(), Kind: EventRead, SHA256: la.events[0].SHA256, Actor: "keycloak:iru/alice", Reason: "host A"}); err != nil {
		t.Fatalf("host A's append after reading again: %v", err)
	}

	// Control: custody in each host's folder.
	c, d := open(false), open(false)
	ref, err = c.Put(ctx, request("inc-folders", "shell.log", ClassOperational, bytesReader([]byte("x"))))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Get(ctx, ref, alice); err == nil {
		t.Fatal("control: a host read evidence collected on another host without its custody log")
	}
}
