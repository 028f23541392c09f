package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/config"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func TestRoundTrip(t *testing.T) { forEachBackend(t, testRoundTrip) }

func testRoundTrip(t *testing.T, bc backendCase) {
	const seg = 1024
	sizes := []int{0, 1, seg - 1, seg, seg + 1, 3 * seg, 5*seg + 17}
	f := newFixtureOn(t, bc, seg)
	for i, n := range sizes {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			body := randomBytes(n, uint64(i))
			ref := f.put("inc-rt", fmt.Sprintf("file-%d.bin", n), ClassOperational, body)
			sum := sha256.Sum256(body)
			if want := NewRef("inc-rt", hex.EncodeToString(sum[:])); ref != want {
				t.Fatalf("ref = %s, want %s", ref, want)
			}
			got, meta, err := f.get(ref)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("Get: %d bytes, err %v; want %d bytes back", len(got), err, n)
			}
			want := Meta{
				Ref: ref, Incident: "inc-rt", SHA256: hex.EncodeToString(sum[:]), Size: int64(n),
				Name: fmt.Sprintf("file-%d.bin", n), MediaType: "application/octet-stream", Class: ClassOperational,
				CollectedBy: "system:worker", Source: "pve/node1/lxc/101:/var/log/auth.log",
				CollectedAt: f.clock.Now(), RetainUntil: f.clock.Now().Add(365 * 24 * time.Hour), KeyID: "test-kek",
				blob: meta.blob,
			}
			if meta != want {
				t.Fatalf("meta = %+v\nwant %+v", meta, want)
			}
			// At rest the object is ciphertext: the plaintext does not appear.
			stored := f.stored(ref)
			if n >= 16 && bytes.Contains(stored, body[:16]) {
				t.Fatal("plaintext found in the stored object")
			}
		})
	}
	rep, err := f.locker.Verify(f.ctx, "inc-rt")
	if err != nil || rep.Objects != len(sizes) || rep.Events != 2*len(sizes) {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func TestDefaultSegmentRoundTrip(t *testing.T) { forEachBackend(t, testDefaultSegmentRoundTrip) }

func testDefaultSegmentRoundTrip(t *testing.T, bc backendCase) {
	f := newFixtureOn(t, bc, 0)
	body := randomBytes(3*defaultSegment+5, 9)
	ref := f.put("inc-1", "mem.dump", ClassOperational, body)
	got, _, err := f.get(ref)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
}

func TestCustodyRecordsCollectionAndReads(t *testing.T) {
	forEachBackend(t, testCustodyRecordsCollectionAndReads)
}

func testCustodyRecordsCollectionAndReads(t *testing.T, bc backendCase) {
	f := newFixtureOn(t, bc, 0)
	ref := f.put("inc-c", "auth.log", ClassPII, []byte("log line"))
	f.clock.Add(time.Minute)
	if _, _, err := f.get(ref); err != nil {
		t.Fatal(err)
	}
	bob := Reader{Identity: "keycloak:iru/bob", Reason: "second opinion"}
	rc, _, err := f.locker.Get(f.ctx, ref, bob)
	if err != nil {
		t.Fatal(err)
	}
	_ = rc.Close()
	m, err := f.locker.Manifest(f.ctx, "inc-c")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Events) != 3 || m.Head != m.Events[2].Hash {
		t.Fatalf("events = %+v", m.Events)
	}
	tests := []struct {
		kind   EventKind
		actor  string
		reason string
		at     time.Time
	}{
		{EventCollected, "system:worker", "", f.clock.Now().Add(-time.Minute)},
		{EventRead, alice.Identity, alice.Reason, f.clock.Now()},
		{EventRead, bob.Identity, bob.Reason, f.clock.Now()},
	}
	for i, tt := range tests {
		e := m.Events[i]
		if e.Kind != tt.kind || e.Actor != tt.actor || e.Reason != tt.reason || !e.Time.Equal(tt.at) || e.Seq != int64(i+1) {
			t.Errorf("event %d = %+v, want %+v", i, e, tt)
		}
	}
	if m.Events[0].Source != "pve/node1/lxc/101:/var/log/auth.log" || m.Events[0].Size != 8 || m.Events[0].Class != ClassPII {
		t.Errorf("collected event = %+v", m.Events[0])
	}
	if _, _, err := f.locker.Get(f.ctx, ref, Reader{Identity: "keycloak:iru/bob"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Get without a reason: err = %v, want ErrInvalid", err)
	}
}

func countFiles(t *testing.T, dir, suffix string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, suffix) {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIdenticalContentDedups(t *testing.T) { forEachBackend(t, testIdenticalContentDedups) }

func testIdenticalContentDedups(t *testing.T, bc backendCase) {
	f := newFixtureOn(t, bc, 0)
	body := []byte("same bytes")
	a := f.put("inc-d", "first.txt", ClassOperational, body)
	r := request("inc-d", "copy.txt", ClassFinancial, bytes.NewReader(body))
	r.CollectedBy, r.Source = "keycloak:iru/alice", "laptop-17:/tmp/copy.txt"
	b, err := f.locker.Put(f.ctx, r)
	if err != nil || a != b {
		t.Fatalf("second Put = %s, %v; want %s", b, err, a)
	}
	objs, _ := f.locker.List(f.ctx, "inc-d")
	if len(objs) != 1 || objs[0].Name != "first.txt" || objs[0].Class != ClassOperational {
		t.Fatalf("objects = %+v; want the first collection kept", objs)
	}
	if n := len(f.blobs(".obj")); n != 1 {
		t.Fatalf("%d object blobs, want 1", n)
	}
	if n := len(f.blobs(".key")); n != 1 {
		t.Fatalf("%d key blobs, want 1", n)
	}
	m, _ := f.locker.Manifest(f.ctx, "inc-d")
	if last := m.Events[len(m.Events)-1]; last.Kind != EventDuplicate || last.Actor != "keycloak:iru/alice" || last.Source != "laptop-17:/tmp/copy.txt" {
		t.Fatalf("duplicate not recorded: %+v", last)
	}
	// Another incident gets its own object.
	if c := f.put("inc-e", "first.txt", ClassOperational, body); c == a {
		t.Fatal("two incidents share a reference")
	}
}

func TestConcurrentPuts(t *testing.T) { forEachBackend(t, testConcurrentPuts) }

func testConcurrentPuts(t *testing.T, bc backendCase) {
	f := newFixtureOn(t, bc, 512)
	var wg sync.WaitGroup
	refs := make([]Ref, 12)
	errs := make([]error, len(refs))
	for i := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := randomBytes(2000, uint64(i%4)) // 4 distinct contents, 3 puts each
			refs[i], errs[i] = f.locker.Put(f.ctx, request("inc-par", fmt.Sprint(i), ClassOperational, bytes.NewReader(body)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if refs[i] != refs[i%4] {
			t.Fatalf("put %d = %s, want %s", i, refs[i], refs[i%4])
		}
	}
	rep, err := f.locker.Verify(f.ctx, "inc-par")
	if err != nil || rep.Objects != 4 || rep.Events != 12 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	if n := len(f.blobs(".obj")); n != 4 {
		t.Fatalf("%d object blobs, want 4", n)
	}
}

func TestRetention(t *testing.T) {
	f := newFixture(t, 0)
	pii := f.put("inc-r", "users.csv", ClassPII, []byte("alice,bob"))
	ops := f.put("inc-r", "ps.txt", ClassOperational, []byte("ps output"))
	fin := f.put("inc-r", "ledger.xlsx", ClassFinancial, []byte("invoices"))
	start := f.clock.Now()
	admin := Reader{Identity: "keycloak:iru/admin", Reason: "cleanup"}

	t.Run("delete before retention is refused", func(t *testing.T) {
		f.clock.Add(29 * 24 * time.Hour)
		if err := f.locker.Delete(f.ctx, pii, admin); !errors.Is(err, ErrRetained) {
			t.Fatalf("Delete: err = %v, want ErrRetained", err)
		}
		if got, _, err := f.get(pii); err != nil || string(got) != "alice,bob" {
			t.Fatalf("object gone after a refused delete: %q %v", got, err)
		}
	})
	t.Run("overwrite is refused", func(t *testing.T) {
		m := f.meta(pii)
		_, err := f.locker.backend.Put(f.ctx, objectKey(m.Incident, m.blob), strings.NewReader("replacement"))
		if !errors.Is(err, ErrExists) {
			t.Fatalf("backend Put over an object: err = %v, want ErrExists", err)
		}
		if got, _, err := f.get(pii); err != nil || string(got) != "alice,bob" {
			t.Fatalf("object changed: %q %v", got, err)
		}
	})
	t.Run("sweep before expiry deletes nothing", func(t *testing.T) {
		rep, err := f.locker.Sweep(f.ctx, start.Add(30*24*time.Hour-time.Second))
		if err != nil || len(rep.Deleted) != 0 {
			t.Fatalf("Sweep = %+v, %v", rep, err)
		}
	})
	var keyFile, objFile string
	t.Run("sweep after expiry destroys pii only", func(t *testing.T) {
		keyFile, objFile = f.keyPath(pii), f.objectPath(pii)
		rep, err := f.locker.Sweep(f.ctx, start.Add(30*24*time.Hour))
		if err != nil || len(rep.Deleted) != 1 || rep.Deleted[0] != pii {
			t.Fatalf("Sweep = %+v, %v; want %s deleted", rep, err, pii)
		}
		for _, p := range []string{keyFile, objFile} {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s still exists: %v", p, err)
			}
		}
		if _, _, err := f.get(pii); !errors.Is(err, ErrDeleted) {
			t.Fatalf("Get after sweep: err = %v, want ErrDeleted", err)
		}
		for _, ref := range []Ref{ops, fin} {
			if _, _, err := f.get(ref); err != nil {
				t.Fatalf("Get %s after sweep: %v", ref, err)
			}
		}
		m, _ := f.locker.Manifest(f.ctx, "inc-r")
		var del *Event
		for i := range m.Events {
			if m.Events[i].Kind == EventDeleted {
				del = &m.Events[i]
			}
		}
		if del == nil || del.Actor != SweeperIdentity || !strings.Contains(del.Reason, "pii") || !m.Objects[0].Deleted {
			t.Fatalf("deletion not recorded: %+v", m)
		}
		if rep, err := f.locker.Verify(f.ctx, "inc-r"); err != nil || rep.Objects != 2 {
			t.Fatalf("Verify after sweep = %+v, %v", rep, err)
		}
	})
	t.Run("operational and financial expire in turn", func(t *testing.T) {
		rep, err := f.locker.Sweep(f.ctx, start.Add(365*24*time.Hour))
		if err != nil || len(rep.Deleted) != 1 || rep.Deleted[0] != ops {
			t.Fatalf("Sweep at 1y = %+v, %v", rep, err)
		}
		rep, err = f.locker.Sweep(f.ctx, start.Add(7*366*24*time.Hour))
		if err != nil || len(rep.Deleted) != 1 || rep.Deleted[0] != fin {
			t.Fatalf("Sweep at 7y = %+v, %v", rep, err)
		}
	})
	t.Run("content can be collected again after deletion", func(t *testing.T) {
		if again := f.put("inc-r", "users.csv", ClassPII, []byte("alice,bob")); again != pii {
			t.Fatalf("ref = %s, want %s", again, pii)
		}
		if got, _, err := f.get(pii); err != nil || string(got) != "alice,bob" {
			t.Fatalf("Get = %q, %v", got, err)
		}
	})
	t.Run("delete after retention", func(t *testing.T) {
		f.clock.Add(31 * 24 * time.Hour)
		if err := f.locker.Delete(f.ctx, pii, admin); err != nil {
			t.Fatal(err)
		}
		if err := f.locker.Delete(f.ctx, pii, admin); !errors.Is(err, ErrDeleted) {
			t.Fatalf("second Delete: err = %v, want ErrDeleted", err)
		}
	})
}

func TestRetentionOptions(t *testing.T) {
	l, err := Open(t.TempDir(), newSoftWrapper(t, "k"), Options{Retention: map[Class]time.Duration{ClassPII: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := l.Retention(ClassPII); d != time.Hour {
		t.Fatalf("pii retention %s", d)
	}
	if d, _ := l.Retention(ClassFinancial); d != DefaultRetention[ClassFinancial] {
		t.Fatalf("financial retention %s", d)
	}
	for _, bad := range []map[Class]time.Duration{{"secret": time.Hour}, {ClassPII: 0}} {
		if _, err := Open(t.TempDir(), newSoftWrapper(t, "k"), Options{Retention: bad}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Open with retention %v: err = %v", bad, err)
		}
	}
}

// TestTamper changes stored bytes as an attacker with disk access would;
// Verify and Get must fail and name what was changed.
func TestTamper(t *testing.T) {
	const seg = 256
	tests := []struct {
		name     string
		tamper   func(f *fixture, ref Ref)
		wantLine int64 // custody line named, 0 when the object is named
		getErr   bool  // Get itself fails (rather than the read)
	}{
		{"object header byte", func(f *fixture, ref Ref) {
			editFile(f.t, f.objectPath(ref), func(b []byte) []byte { b[7] ^= 1; return b })
		}, 0, false},
		{"object middle byte", func(f *fixture, ref Ref) {
			editFile(f.t, f.objectPath(ref), func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
		}, 0, false},
		{"object last byte", func(f *fixture, ref Ref) {
			editFile(f.t, f.objectPath(ref), func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
		}, 0, false},
		{"object truncated at a segment boundary", func(f *fixture, ref Ref) {
			editFile(f.t, f.objectPath(ref), func(b []byte) []byte { return b[:headerLen+2*(seg+tagLen)] })
		}, 0, false},
		{"object extended", func(f *fixture, ref Ref) {
			editFile(f.t, f.objectPath(ref), func(b []byte) []byte { return append(b, b[headerLen:headerLen+seg+tagLen]...) })
		}, 0, false},
		{"object segments reordered", func(f *fixture, ref Ref) {
			editFile(f.t, f.objectPath(ref), func(b []byte) []byte {
				s1 := append([]byte(nil), b[headerLen:headerLen+seg+tagLen]...)
				copy(b[headerLen:], b[headerLen+seg+tagLen:headerLen+2*(seg+tagLen)])
				copy(b[headerLen+seg+tagLen:], s1)
				return b
			})
		}, 0, false},
		{"object file removed", func(f *fixture, ref Ref) {
			if err := os.Remove(f.objectPath(ref)); err != nil {
				f.t.Fatal(err)
			}
		}, 0, true},
		{"wrapped key byte", func(f *fixture, ref Ref) {
			editFile(f.t, f.keyPath(ref), func(b []byte) []byte {
				i := bytes.Index(b, []byte(`"ciphertext":"`)) + len(`"ciphertext":"`) + 3
				b[i] ^= 1
				return b
			})
		}, 0, true},
		{"wrapped key id", func(f *fixture, ref Ref) {
			editFile(f.t, f.keyPath(ref), func(b []byte) []byte { return bytes.Replace(b, []byte("test-kek"), []byte("test-kel"), 1) })
		}, 0, true},
		{"manifest byte", func(f *fixture, ref Ref) {
			editFile(f.t, f.custodyPath("inc-t"), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"actor":"system:worker"`), []byte(`"actor":"system:wOrker"`), 1)
			})
		}, 1, true},
		{"manifest retention extended", func(f *fixture, ref Ref) {
			editFile(f.t, f.custodyPath("inc-t"), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"retain_until":"2027`), []byte(`"retain_until":"2099`), 1)
			})
		}, 1, true},
		{"manifest line removed", func(f *fixture, ref Ref) {
			editFile(f.t, f.custodyPath("inc-t"), func(b []byte) []byte {
				lines := bytes.SplitAfter(b, []byte("\n"))
				return bytes.Join(append(lines[:1], lines[2:]...), nil)
			})
		}, 2, true},
		{"manifest whitespace", func(f *fixture, ref Ref) {
			editFile(f.t, f.custodyPath("inc-t"), func(b []byte) []byte { return bytes.Replace(b, []byte(`{"seq":2,`), []byte(`{"seq":2, `), 1) })
		}, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, seg)
			other := f.put("inc-t", "other.bin", ClassOperational, randomBytes(500, 1))
			ref := f.put("inc-t", "mem.bin", ClassOperational, randomBytes(4*seg+10, 2))
			if _, _, err := f.get(ref); err != nil { // custody: collected, collected, read
				t.Fatal(err)
			}
			if _, err := f.locker.Verify(f.ctx, "inc-t"); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}
			tt.tamper(f, ref)

			rep, err := f.locker.Verify(f.ctx, "inc-t")
			if !errors.Is(err, ErrIntegrity) || len(rep.Problems) != 1 {
				t.Fatalf("Verify = %+v, %v; want one problem and ErrIntegrity", rep, err)
			}
			p := rep.Problems[0]
			if tt.wantLine != 0 {
				if p.Line != tt.wantLine || !strings.Contains(err.Error(), fmt.Sprintf("line %d", tt.wantLine)) {
					t.Fatalf("problem = %+v, err %v; want custody line %d named", p, err, tt.wantLine)
				}
			} else if p.Ref != ref || !strings.Contains(err.Error(), string(ref)) {
				t.Fatalf("problem = %+v, err %v; want %s named", p, err, ref)
			}

			rc, _, err := f.locker.Get(f.ctx, ref, alice)
			if tt.getErr {
				if !errors.Is(err, ErrIntegrity) {
					t.Fatalf("Get: err = %v, want ErrIntegrity", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get: %v (want the error from Read)", err)
			}
			_, err = io.ReadAll(rc)
			_ = rc.Close()
			if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), string(ref)) {
				t.Fatalf("reading tampered object: err = %v, want ErrIntegrity naming %s", err, ref)
			}
			// io.Copy takes the whole-segment path (WriteTo): the same verdict.
			if rc, _, err = f.locker.Get(f.ctx, ref, alice); err != nil {
				t.Fatalf("Get again: %v", err)
			}
			_, err = io.Copy(io.Discard, rc)
			_ = rc.Close()
			if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), string(ref)) {
				t.Fatalf("copying tampered object: err = %v, want ErrIntegrity naming %s", err, ref)
			}
			// The untouched object still reads.
			if _, _, err := f.get(other); err != nil {
				t.Fatalf("Get of untouched object: %v", err)
			}
		})
	}
}

// TestSwappedObjects swaps the blobs of two objects (both key and
// ciphertext): each decrypts, but its content no longer matches its
// reference, which Get reports at the end of the stream.
func TestSwappedObjects(t *testing.T) {
	f := newFixture(t, 0)
	a := f.put("inc-s", "a", ClassOperational, []byte("content a"))
	b := f.put("inc-s", "b", ClassOperational, []byte("content b"))
	for _, pair := range [][2]string{{f.objectPath(a), f.objectPath(b)}, {f.keyPath(a), f.keyPath(b)}} {
		tmp := pair[0] + ".swap"
		for _, mv := range [][2]string{{pair[0], tmp}, {pair[1], pair[0]}, {tmp, pair[1]}} {
			if err := os.Rename(mv[0], mv[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, _, err := f.get(a)
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), string(a)) {
		t.Fatalf("Get of swapped object = %q, %v; want ErrIntegrity", got, err)
	}
	if rep, err := f.locker.Verify(f.ctx, "inc-s"); !errors.Is(err, ErrIntegrity) || len(rep.Problems) != 2 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func TestInvalidRequests(t *testing.T) { forEachBackend(t, testInvalidRequests) }

func testInvalidRequests(t *testing.T, bc backendCase) {
	f := newFixtureOn(t, bc, 0)
	tests := []struct {
		name string
		mod  func(r *PutRequest)
	}{
		{"incident path traversal", func(r *PutRequest) { r.Incident = "../etc" }},
		{"empty incident", func(r *PutRequest) { r.Incident = "" }},
		{"unknown class", func(r *PutRequest) { r.Class = "secret" }},
		{"collector not an identity", func(r *PutRequest) { r.CollectedBy = "alice" }},
		{"no name", func(r *PutRequest) { r.Name = "" }},
		{"no source", func(r *PutRequest) { r.Source = "" }},
		{"newline in name", func(r *PutRequest) { r.Name = "a\nb" }},
		{"no body", func(r *PutRequest) { r.Body = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request("inc-v", "x", ClassPII, strings.NewReader("x"))
			tt.mod(&r)
			if _, err := f.locker.Put(f.ctx, r); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Put: err = %v, want ErrInvalid", err)
			}
		})
	}
	refs := []Ref{"", "evidence://inc/sha256:abc", "http://inc/sha256:" + Ref(strings.Repeat("a", 64)),
		"evidence://../x/sha256:" + Ref(strings.Repeat("a", 64)), "evidence://inc/sha256:" + Ref(strings.Repeat("A", 64))}
	for _, ref := range refs {
		if _, _, err := f.locker.Get(f.ctx, ref, alice); !errors.Is(err, ErrInvalid) {
			t.Errorf("Get(%q): err = %v, want ErrInvalid", ref, err)
		}
	}
	missing := NewRef("inc-v", strings.Repeat("0", 64))
	if _, _, err := f.locker.Get(f.ctx, missing, alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of unknown object: err = %v, want ErrNotFound", err)
	}
	if n := len(f.blobs(".obj")); n != 0 {
		t.Errorf("%d object blobs left by rejected puts", n)
	}
}

// failingReader fails after n bytes, like a collection cut off midway.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

func TestFailedPutLeavesNothing(t *testing.T) { forEachBackend(t, testFailedPutLeavesNothing) }

func testFailedPutLeavesNothing(t *testing.T, bc backendCase) {
	f := newFixtureOn(t, bc, 1024)
	_, err := f.locker.Put(f.ctx, request("inc-f", "x", ClassPII, &failingReader{n: 5000}))
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("Put: err = %v", err)
	}
	if n := countFiles(t, f.dir, ""); n != 0 {
		t.Fatalf("%d files left after a failed put", n)
	}
	if n := len(f.blobs("")); n != 0 {
		t.Fatalf("%d blobs left after a failed put", n)
	}
	if objs, err := f.locker.List(f.ctx, "inc-f"); err != nil || len(objs) != 0 {
		t.Fatalf("List = %+v, %v", objs, err)
	}
}

// TestStreamingMemory puts and gets a 32 MiB object and checks that the
// heap never grows by more than a small fraction of it. The 100 MB figure
// is BenchmarkLocker100MB's.
func TestStreamingMemory(t *testing.T) {
	const size = 32 << 20
	const limit = 4 << 20
	f := newFixture(t, 0)
	var ref Ref
	putPeak := peakHeap(func() {
		var err error
		ref, err = f.locker.Put(f.ctx, request("inc-m", "disk.img", ClassOperational, randomReader(size, 1)))
		if err != nil {
			t.Fatal(err)
		}
	})
	var n int64
	getPeak := peakHeap(func() {
		rc, _, err := f.locker.Get(f.ctx, ref, alice)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = rc.Close() }()
		if n, err = io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("32 MiB object: peak heap growth put %d KiB, get %d KiB", putPeak>>10, getPeak>>10)
	if n != size {
		t.Fatalf("read %d bytes, want %d", n, size)
	}
	if putPeak > limit || getPeak > limit {
		t.Fatalf("peak heap growth put %d, get %d bytes; want under %d for a %d-byte object", putPeak, getPeak, limit, size)
	}
}

func TestConfig(t *testing.T) {
	var c Config
	if err := config.LoadFrom(&c, nil); err != nil {
		t.Fatal(err)
	}
	opts := c.Options()
	for class, d := range DefaultRetention {
		if opts.Retention[class] != d {
			t.Errorf("default config retention of %s = %s, want DefaultRetention's %s", class, opts.Retention[class], d)
		}
	}
	err := config.LoadFrom(&c, []string{"IRU_EVIDENCE_RETENTION_PII=-1h"})
	if err == nil || !strings.Contains(err.Error(), "IRU_EVIDENCE_RETENTION_PII") {
		t.Fatalf("negative retention: err = %v", err)
	}
	if err := config.LoadFrom(&c, []string{"IRU_EVIDENCE_RETENTION_PII=2160h"}); err != nil || c.RetentionPII != 90*24*time.Hour {
		t.Fatalf("override: %+v, %v", c, err)
	}
}

func TestFSBackend(t *testing.T) {
	ctx := context.Background()
	b, err := NewFSBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "inc/x.obj", strings.NewReader("one")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"put existing", func() error { _, err := b.Put(ctx, "inc/x.obj", strings.NewReader("two")); return err }, ErrExists},
		{"get missing", func() error { _, err := b.Get(ctx, "inc/none"); return err }, ErrNotFound},
		{"stat missing", func() error { _, err := b.Stat(ctx, "inc/none"); return err }, ErrNotFound},
		{"traversal", func() error { _, err := b.Get(ctx, "../x"); return err }, ErrInvalid},
		{"absolute", func() error { _, err := b.Put(ctx, "/etc/x", strings.NewReader("")); return err }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	info, err := b.Stat(ctx, "inc/x.obj")
	if err != nil || info.Size != 3 {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	if err := b.Shred(ctx, "inc/x.obj"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "inc/x.obj"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat after Shred: %v", err)
	}
}

// TestTwoLockersOneFolder is the worker and the API server writing the
// same incident's evidence at once: the per-incident file lock keeps the
// custody chain whole.
func TestTwoLockersOneFolder(t *testing.T) {
	dir := t.TempDir()
	w := newSoftWrapper(t, "kek-1")
	a, err := Open(dir, w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Put(context.Background(), PutRequest{Incident: "INC-1", Name: fmt.Sprintf("item-%d", i), Class: ClassOperational,
				MediaType: "text/plain", CollectedBy: "system:test", Source: "test", Body: strings.NewReader(fmt.Sprintf("content %d", i))})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rep, err := a.Verify(context.Background(), "INC-1")
	if err != nil || len(rep.Problems) != 0 || rep.Objects != 40 {
		t.Fatalf("verify after concurrent writers: %+v %v", rep, err)
	}
	objs, err := b.List(context.Background(), "INC-1")
	if err != nil || len(objs) != 40 {
		t.Fatalf("%d objects, want 40 (%v)", len(objs), err)
	}
}

func TestConfigBackend(t *testing.T) {
	s3 := []string{"IRU_EVIDENCE_BACKEND=s3", "IRU_EVIDENCE_S3_ENDPOINT=minio:9000", "IRU_EVIDENCE_S3_ACCESS_KEY=iru-evidence", "IRU_EVIDENCE_S3_SECRET_KEY=s3cr3t-value"}
	tests := []struct {
		name    string
		env     []string
		wantErr string // a variable the error names; "" for none
	}{
		{"folder by default", nil, ""},
		{"s3 complete", s3, ""},
		{"s3 without credentials", s3[:2], "IRU_EVIDENCE_S3_ACCESS_KEY"},
		{"s3 endpoint with a scheme", append(slicesClone(s3), "IRU_EVIDENCE_S3_ENDPOINT=http://minio:9000"), "IRU_EVIDENCE_S3_ENDPOINT"},
		{"s3 CA file missing", append(slicesClone(s3), "IRU_EVIDENCE_S3_CA=/nonexistent/ca.pem"), "IRU_EVIDENCE_S3_CA"},
		{"unknown backend", []string{"IRU_EVIDENCE_BACKEND=nfs"}, "IRU_EVIDENCE_BACKEND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			err := config.LoadFrom(&c, tt.env)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3t-value") {
				t.Fatalf("the secret key is in the error: %v", err)
			}
		})
	}
	var c Config
	if err := config.LoadFrom(&c, append(slicesClone(s3), "IRU_EVIDENCE_S3_CA="+os.Args[0])); err != nil {
		t.Fatal(err)
	}
	if o := c.S3Options(); !o.TLS || o.SecretKey != "s3cr3t-value" || o.Bucket != "iru-evidence" || o.Endpoint != "minio:9000" {
		t.Fatalf("S3Options = %+v: want TLS implied by the CA, the bucket's default name", o)
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// TestReadsObjectsOfOtherSegmentSizes checks that objects written with the
// old default segment size (64 KiB) and others read back with today's
// default: the size is in each object's header.
func TestReadsObjectsOfOtherSegmentSizes(t *testing.T) {
	dir := t.TempDir()
	wrapper := newSoftWrapper(t, "test-kek")
	ctx := context.Background()
	type stored struct {
		ref  Ref
		body []byte
	}
	var objs []stored
	for i, segment := range []int{64 << 10, 1000, maxSegment} {
		old, err := Open(dir, wrapper, Options{SegmentSize: segment})
		if err != nil {
			t.Fatal(err)
		}
		body := randomBytes(3*segment+17, uint64(i))
		ref, err := old.Put(ctx, request("inc-s", fmt.Sprintf("seg-%d", segment), ClassOperational, bytesReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, stored{ref, body})
	}
	l, err := Open(dir, wrapper, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		rc, _, err := l.Get(ctx, o.ref, alice)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil || !bytes.Equal(got, o.body) {
			t.Fatalf("%s: read %d of %d bytes: %v", o.ref, len(got), len(o.body), err)
		}
	}
}
