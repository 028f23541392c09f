package evidence

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// keyGateBackend is a folder backend whose object puts wait until the
// wrapped key's put has started (or fail after a while), and whose wrapped
// key puts fail with keyErr when it is set.
type keyGateBackend struct {
	*FSBackend
	keyStarted chan struct{}
	keyErr     error
	// objectDone, when set, makes the wrapped key's put fail only after
	// the object's put returned.
	objectDone chan struct{}
}

var errKeyStore = errors.New("key store unavailable")

func (b *keyGateBackend) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	switch {
	case strings.HasSuffix(key, ".key"):
		close(b.keyStarted)
		if b.objectDone != nil {
			<-b.objectDone
		}
		if b.keyErr != nil {
			return 0, b.keyErr
		}
	case strings.HasSuffix(key, ".obj"):
		select {
		case <-b.keyStarted:
		case <-time.After(10 * time.Second):
			return 0, errors.New("the wrapped key was not stored while the object was written")
		}
		if b.objectDone != nil {
			defer close(b.objectDone)
		}
	}
	return b.FSBackend.Put(ctx, key, r)
}

// TestPutStoresKeyBesideObject checks that Put stores the wrapped key
// while it writes the object (the object's put waits for the key's to
// start), and that a failed key put leaves no blob and no custody event.
func TestPutStoresKeyBesideObject(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keyErr error
		// late: the key's put fails after the object was stored.
		late bool
	}{
		{"stored", nil, false},
		{"key fails", errKeyStore, false},
		{"key canceled after the object", context.Canceled, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fs, err := NewFSBackend(filepath.Join(dir, "blobs"))
			if err != nil {
				t.Fatal(err)
			}
			b := &keyGateBackend{FSBackend: fs, keyStarted: make(chan struct{}), keyErr: tc.keyErr}
			if tc.late {
				b.objectDone = make(chan struct{})
			}
			l, err := Open(dir, newSoftWrapper(t, "test-kek"), Options{Backend: b, SegmentSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			body := randomBytes(50_000, 5)
			ref, err := l.Put(ctx, request("inc-k", "mem.dump", ClassOperational, bytesReader(body)))
			if tc.keyErr != nil {
				if !errors.Is(err, tc.keyErr) || !strings.Contains(err.Error(), "store wrapped key") {
					t.Fatalf("Put: %v, want the wrapped key's error", err)
				}
				if n := countFiles(t, filepath.Join(dir, "blobs"), ""); n != 0 {
					t.Fatalf("%d files left after the wrapped key failed", n)
				}
				if objs, err := l.List(ctx, "inc-k"); err != nil || len(objs) != 0 {
					t.Fatalf("List = %+v, %v", objs, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rc, _, err := l.Get(ctx, ref, alice)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = rc.Close() }()
			got, err := io.ReadAll(rc)
			if err != nil || string(got) != string(body) {
				t.Fatalf("Get: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestCustodyLogCreationSyncsFolder checks that the first event of an
// incident's custody log syncs the custody folder (the event is durable
// only once the new file's name is) and that later events do not.
func TestCustodyLogCreationSyncsFolder(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, newSoftWrapper(t, "test-kek"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var synced []string
	l.custody = fileCustody{dir: dir, syncDir: func(d string) error {
		synced = append(synced, d)
		return syncDir(d)
	}}
	ctx := context.Background()
	ref, err := l.Put(ctx, request("inc-d", "a.log", ClassOperational, bytesReader([]byte("first"))))
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "custody")
	if len(synced) != 1 || synced[0] != want {
		t.Fatalf("folders synced by the first event: %v, want [%s]", synced, want)
	}
	rc, _, err := l.Get(ctx, ref, alice)
	if err != nil {
		t.Fatal(err)
	}
	_ = rc.Close()
	if len(synced) != 1 {
		t.Fatalf("folders synced after a second event: %v, want only the first's", synced)
	}
}

// TestPutCanceledLeavesNothing checks that a Put whose context ends while
// it writes fails with the context's error and leaves neither the object
// nor the wrapped key (they are written at the same time) nor an event.
func TestPutCanceledLeavesNothing(t *testing.T) {
	f := newFixture(t, 1000)
	ctx, cancel := context.WithCancel(f.ctx)
	body := &cancelingReader{r: randomReader(1<<20, 6), after: 200_000, cancel: cancel}
	_, err := f.locker.Put(ctx, request("inc-x", "big.img", ClassOperational, body))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put: %v, want context.Canceled", err)
	}
	if n := len(f.blobs("")); n != 0 {
		t.Fatalf("%d blobs left after a canceled put: %v", n, f.blobs(""))
	}
	if objs, err := f.locker.List(f.ctx, "inc-x"); err != nil || len(objs) != 0 {
		t.Fatalf("List = %+v, %v", objs, err)
	}
}

// cancelingReader reads r and calls cancel once after bytes were read.
type cancelingReader struct {
	r      io.Reader
	after  int
	cancel context.CancelFunc
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.after -= n; c.after <= 0 {
		c.cancel()
	}
	return n, err
}
