//go:build integration

package sharedstate_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/internal/sharedstate/sharedtest"
)

// ring opens a payload key ring over store with its own HSM session on
// the token of cfg (one key set, as every host has).
func ring(t *testing.T, cfg keys.Config, store codec.KeyStore) *codec.KeyRing {
	t.Helper()
	m, err := keys.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	r, err := codec.OpenKeyRing(context.Background(), m, store)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// secret is what the payloads carry.
type secret struct{ Password string }

// TestCodecKeysAcrossHosts: two processes with their own connections to
// the shared state (an API server and a worker on different hosts) share
// the payload keys: what one encrypts the other decrypts, after a data key
// rotation by one of them and after the KEK is rotated and the keys
// rewrapped in the database. Control: with a key folder each, the second
// process makes its own key and cannot read the first one's payload.
func TestCodecKeysAcrossHosts(t *testing.T) {
	ctx := context.Background()
	hsm, kcfg := hsmtest.Manager(t)
	cfg := sharedtest.Config(t)
	hostA, hostB := sharedtest.Open(t, cfg), sharedtest.Open(t, cfg)
	a := ring(t, kcfg, hostA.CodecKeys())
	b := ring(t, kcfg, hostB.CodecKeys())
	if a.CurrentKeyID() == "" || a.CurrentKeyID() != b.CurrentKeyID() {
		t.Fatalf("current keys %q and %q: the second process made its own", a.CurrentKeyID(), b.CurrentKeyID())
	}
	roundTrip := func(what string, from, to *codec.KeyRing) {
		t.Helper()
		p, err := codec.NewDataConverter(from).ToPayload(secret{"Tr0ub4dor&3"})
		if err != nil {
			t.Fatal(err)
		}
		var got secret
		if err := codec.NewDataConverter(to).FromPayload(p, &got); err != nil || got.Password != "Tr0ub4dor&3" {
			t.Fatalf("%s: decoded %+v, %v", what, got, err)
		}
	}
	roundTrip("A to B", a, b)
	roundTrip("B to A", b, a)

	k2, err := a.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(ctx); err != nil { // as an unknown key id makes it do
		t.Fatal(err)
	}
	if b.CurrentKeyID() != k2 {
		t.Fatalf("B's current key %q after A rotated to %q", b.CurrentKeyID(), k2)
	}
	roundTrip("A to B after a data key rotation", a, b)

	// KEK rotation: the stored data keys are rewrapped in the database,
	// once, for every host; new processes read them under the new KEK.
	if _, err := hsm.RotateKEK(ctx, "test-rotation"); err != nil {
		t.Fatal(err)
	}
	if err := hsm.Rewrap(ctx, hostA.CodecKeys(), nil); err != nil {
		t.Fatal(err)
	}
	kek, err := hsm.CurrentKEK(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := hostB.CodecKeys().StaleWrappedKeys(ctx, kek, 10)
	if err != nil || len(stale) != 0 {
		t.Fatalf("keys left under the old KEK: %d, %v", len(stale), err)
	}
	roundTrip("after the rewrap, old ring to a new one", a, ring(t, kcfg, hostB.CodecKeys()))

	// A stale replace (another host rewrapped first) is refused.
	all, err := hostA.CodecKeys().List()
	if err != nil || len(all) != 2 {
		t.Fatalf("%d keys stored, %v", len(all), err)
	}
	err = hostB.CodecKeys().ReplaceWrappedKey(ctx, all[0].ID, keys.Wrapped{KeyID: "old"}, all[0].Wrapped)
	if !errors.Is(err, keys.ErrWrappedKeyChanged) {
		t.Errorf("stale replace: %v, want ErrWrappedKeyChanged", err)
	}
	if err := hostB.CodecKeys().Add(all[0]); err == nil {
		t.Error("an id already stored was added again")
	}

	// Control: a key folder per host.
	fa, err := codec.NewFileKeyStore(filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := codec.NewFileKeyStore(filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := codec.NewDataConverter(ring(t, kcfg, fa)).ToPayload(secret{"x"})
	if err != nil {
		t.Fatal(err)
	}
	var got secret
	if err := codec.NewDataConverter(ring(t, kcfg, fb)).FromPayload(p, &got); err == nil {
		t.Fatal("control: a process with its own key folder read another's payload")
	}
}

var _ codec.KeyStore = sharedstate.CodecKeys{}
