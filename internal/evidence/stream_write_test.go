package evidence

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// limitWriter takes up to n bytes and then fails.
type limitWriter struct {
	n      int
	writes int
	buf    bytes.Buffer
}

var errDiskFull = errors.New("disk full")

func (w *limitWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.buf.Len()+len(p) > w.n {
		return 0, errDiskFull
	}
	return w.buf.Write(p)
}

// TestEncryptWriteTo: WriteTo (what io.Copy and the file backend use)
// writes the same object Read yields, whole segments per write, decrypts
// to the plaintext, and stops with the writer's error.
func TestEncryptWriteTo(t *testing.T) {
	dek := bytes.Repeat([]byte{7}, 32)
	const segment, size = 4096, 10*4096 + 123
	plain, _ := io.ReadAll(randomReader(size, 3))
	tests := []struct {
		name    string
		limit   int
		wantErr error
	}{
		{"whole object", 1 << 30, nil},
		{"writer fails midway", 3 * segment, errDiskFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := newEncryptReader(dek, bytes.NewReader(plain), segment)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			w := &limitWriter{n: tt.limit}
			n, err := io.Copy(w, ctxReader{context.Background(), enc})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("copy: %v, want %v", err, tt.wantErr)
			}
			if n != int64(w.buf.Len()) {
				t.Errorf("copy reported %d bytes, wrote %d", n, w.buf.Len())
			}
			if tt.wantErr != nil {
				return
			}
			// Header, then one write per sealed segment.
			if want := 1 + (size+segment-1)/segment; w.writes != want {
				t.Errorf("%d writes, want %d (header and one per segment)", w.writes, want)
			}
			dec, err := newDecryptReader(dek, &w.buf)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.close(nil)
			got, err := io.ReadAll(dec)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("decrypted %d bytes (err %v), want the %d plaintext bytes", len(got), err, len(plain))
			}
		})
	}
}

// TestPutStopsWhenCancelled: a put whose context ends stops writing and
// leaves nothing behind.
func TestPutStopsWhenCancelled(t *testing.T) {
	f := newFixture(t, 1024)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	if _, err := f.locker.Put(ctx, request("inc-c", "x", ClassPII, randomReader(1<<20, 1))); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put after cancel: %v, want context.Canceled", err)
	}
	if n := countFiles(t, f.dir, ""); n != 0 {
		t.Fatalf("%d files left after a cancelled put", n)
	}
}
