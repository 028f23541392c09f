package evidence

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
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
				dec, err := newDecryptReader(dek, bytes.NewReader(sealed))
				if err != nil {
					t.Fatal(err)
				}
				defer dec.close(nil)
				plain, err := io.ReadAll(dec)
				if err != nil || !bytes.Equal(plain, body) {
					t.Fatalf("decrypted %d bytes (%v), want the %d-byte body", len(plain), err, size)
				}
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
