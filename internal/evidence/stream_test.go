package evidence

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"
)

// TestEncryptPipelineHashesInOrder checks the hashing stage of the encrypt
// pipeline: the plaintext hook sees every segment once and in order (the
// SHA-256 it computes is the body's), the ciphertext decrypts to the body,
// and closing the stream early returns while the stages are busy.
func TestEncryptPipelineHashesInOrder(t *testing.T) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		t.Fatal(err)
	}
	for _, segment := range []int{1, 1000, 64 << 10} {
		for _, size := range []int{0, 1, 999, 1000, 5000, 300_000} {
			t.Run(fmt.Sprintf("segment%d/size%d", segment, size), func(t *testing.T) {
				body := make([]byte, size)
				_, _ = rand.Read(body)
				h := sha256.New()
				enc, err := newEncryptReader(dek, bytes.NewReader(body), segment, func(b []byte) { h.Write(b) })
				if err != nil {
					t.Fatal(err)
				}
				sealed, err := io.ReadAll(enc)
				if err != nil {
					t.Fatal(err)
				}
				_ = enc.Close()
				if got, want := h.Sum(nil), sha256.Sum256(body); !bytes.Equal(got, want[:]) {
					t.Fatalf("hook hashed %x, body is %x", got, want)
				}
				checkDecrypts(t, dek, sealed, body)
			})
		}
	}
	t.Run("early close", func(t *testing.T) {
		enc, err := newEncryptReader(dek, randomReader(1<<30, 3), 1000, func([]byte) { time.Sleep(time.Millisecond) })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(enc, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		closed := make(chan struct{})
		go func() { _ = enc.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatal("Close did not return: a pipeline stage is stuck")
		}
	})
}

// writeSizes keeps what is written and records the size of every Write
// (it has no ReadFrom, so io.Copy calls Write).
type writeSizes struct {
	buf   bytes.Buffer
	sizes []int
}

func (w *writeSizes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return w.buf.Write(p)
}

// failAfter fails every Write after the first n bytes.
type failAfter struct{ n int }

var errWriterFull = errors.New("writer full")

func (w *failAfter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, errWriterFull
	}
	w.n -= len(p)
	return len(p), nil
}

// TestEncryptWriteTo checks that io.Copy from the encrypt stream writes the
// header and then each sealed segment whole, in one Write each (no copy
// through io.Copy's buffer), that the result decrypts to the body, and
// that a failing writer's error is returned.
func TestEncryptWriteTo(t *testing.T) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		t.Fatal(err)
	}
	const segment = 64 << 10
	for _, size := range []int{0, 1, segment, 3*segment + 7} {
		t.Run(fmt.Sprintf("size%d", size), func(t *testing.T) {
			body := make([]byte, size)
			_, _ = rand.Read(body)
			enc, err := newEncryptReader(dek, bytes.NewReader(body), segment, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = enc.Close() }()
			var w writeSizes
			n, err := io.Copy(&w, enc)
			if err != nil || n != int64(w.buf.Len()) {
				t.Fatalf("io.Copy: %d bytes (%d written), %v", n, w.buf.Len(), err)
			}
			want := []int{headerLen}
			for rest := size; ; rest -= segment {
				want = append(want, min(rest, segment)+tagLen)
				if rest <= segment {
					break
				}
			}
			if fmt.Sprint(w.sizes) != fmt.Sprint(want) {
				t.Fatalf("writes of %v bytes, want %v", w.sizes, want)
			}
			checkDecrypts(t, dek, w.buf.Bytes(), body)
		})
	}
	t.Run("writer fails", func(t *testing.T) {
		enc, err := newEncryptReader(dek, randomReader(10*segment, 4), segment, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = enc.Close() }()
		n, err := io.Copy(&failAfter{n: headerLen + segment}, enc)
		if !errors.Is(err, errWriterFull) || n != int64(headerLen+segment) {
			t.Fatalf("io.Copy into a full writer: %d bytes, %v; want %d bytes, %v", n, err, headerLen+segment, errWriterFull)
		}
	})
}

// TestSmallStreamMakesOneBuffer checks that the pipeline makes segment
// buffers only as the stream needs them: encrypting and decrypting a
// 10-byte body with 1 MiB segments allocates about one segment, not the
// pipeline's full depth.
func TestSmallStreamMakesOneBuffer(t *testing.T) {
	dek := make([]byte, 32)
	const segment = 1 << 20
	body := []byte("ten bytes.")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	enc, err := newEncryptReader(dek, bytes.NewReader(body), segment, nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := io.ReadAll(enc)
	_ = enc.Close()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := newDecryptReader(dek, bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(dec)
	dec.close(nil)
	runtime.ReadMemStats(&after)
	if err != nil || !bytes.Equal(plain, body) {
		t.Fatalf("decrypted %q (%v), want %q", plain, err, body)
	}
	// One buffer each way, plus small change.
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(2*segment+segment/2); got > limit {
		t.Fatalf("a 10-byte stream allocated %d KiB, want at most %d KiB (one segment buffer each way)", got>>10, limit>>10)
	}
}

// checkDecrypts fails t unless sealed decrypts under dek to body.
func checkDecrypts(t *testing.T, dek, sealed, body []byte) {
	t.Helper()
	dec, err := newDecryptReader(dek, bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.close(nil)
	plain, err := io.ReadAll(dec)
	if err != nil || !bytes.Equal(plain, body) {
		t.Fatalf("decrypted %d bytes (%v), want the %d-byte body", len(plain), err, len(body))
	}
}
