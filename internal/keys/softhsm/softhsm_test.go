package softhsm

import (
	"context"
	"os"
	"testing"

	"github.com/iru-responder/responder/internal/keys"
)

// TestEnsureIsStable creates a token, opens it, signs, then prepares it
// again: the second call reuses the token and PIN, and the key made the
// first time still verifies.
func TestEnsureIsStable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOFTHSM2_CONF", "") // restored after the test
	tok, err := Ensure(dir, "iru-dev")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(tok.PINFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pin file %v %v", fi, err)
	}
	m, err := keys.Open(tok.Config)
	if err != nil {
		t.Fatal(err)
	}
	digest := make([]byte, 32)
	sig, err := m.Sign(context.Background(), digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Ensure(dir, "iru-dev")
	if err != nil {
		t.Fatal(err)
	}
	if again.Config.PIN != tok.Config.PIN {
		t.Fatal("PIN changed on the second Ensure")
	}
	m2, err := keys.Open(again.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if err := m2.Verify(context.Background(), digest, sig); err != nil {
		t.Fatalf("key from the first open does not verify after re-Ensure: %v", err)
	}
}
