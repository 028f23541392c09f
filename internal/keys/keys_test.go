package keys_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWrapUnwrapRoundTrip(t *testing.T) {
	m, _ := hsmtest.Manager(t)
	ctx := context.Background()
	for _, size := range []int{1, 16, 32, 64, 1024} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			dek := randomBytes(t, size)
			w, err := m.Wrap(ctx, dek)
			if err != nil {
				t.Fatalf("Wrap: %v", err)
			}
			if w.KeyID != "iru-kek-v1" {
				t.Errorf("KeyID = %q, want iru-kek-v1", w.KeyID)
			}
			if len(w.Nonce) != 12 || len(w.Ciphertext) != size+16 {
				t.Errorf("nonce %d bytes, ciphertext %d bytes; want 12 and %d", len(w.Nonce), len(w.Ciphertext), size+16)
			}
			if size >= 16 && bytes.Contains(w.Ciphertext, dek) {
				t.Error("ciphertext contains the key in clear")
			}
			got, err := m.Unwrap(ctx, w)
			if err != nil {
				t.Fatalf("Unwrap: %v", err)
			}
			if !bytes.Equal(got, dek) {
				t.Error("Unwrap returned a different key")
			}
		})
	}
}

func TestConcurrentWrapUnwrap(t *testing.T) {
	m, _ := hsmtest.Manager(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dek := make([]byte, 32)
			for range 20 {
				if _, err := rand.Read(dek); err != nil {
					errs <- err
					return
				}
				w, err := m.Wrap(ctx, dek)
				if err != nil {
					errs <- err
					return
				}
				got, err := m.Unwrap(ctx, w)
				if err != nil || !bytes.Equal(got, dek) {
					errs <- fmt.Errorf("round trip: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestUnwrapRejects(t *testing.T) {
	m, _ := hsmtest.Manager(t)
	ctx := context.Background()
	dek := randomBytes(t, 32)
	w, err := m.Wrap(ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RotateKEK(ctx, "other-key"); err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
	tests := []struct {
		name string
		w    keys.Wrapped
		want error
	}{
		{"ciphertext bit flipped", keys.Wrapped{KeyID: w.KeyID, Nonce: w.Nonce, Ciphertext: flip(w.Ciphertext, 3)}, keys.ErrUnwrap},
		{"tag bit flipped", keys.Wrapped{KeyID: w.KeyID, Nonce: w.Nonce, Ciphertext: flip(w.Ciphertext, len(w.Ciphertext)-1)}, keys.ErrUnwrap},
		{"nonce bit flipped", keys.Wrapped{KeyID: w.KeyID, Nonce: flip(w.Nonce, 0), Ciphertext: w.Ciphertext}, keys.ErrUnwrap},
		{"claims another KEK", keys.Wrapped{KeyID: "iru-kek-v2", Nonce: w.Nonce, Ciphertext: w.Ciphertext}, keys.ErrUnwrap},
		{"KEK not in token", keys.Wrapped{KeyID: "iru-kek-v9", Nonce: w.Nonce, Ciphertext: w.Ciphertext}, keys.ErrUnknownKey},
		{"not a KEK id", keys.Wrapped{KeyID: "iru-audit-sign-v1", Nonce: w.Nonce, Ciphertext: w.Ciphertext}, keys.ErrUnknownKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Unwrap(ctx, tc.w)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Unwrap error = %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Error("Unwrap returned key material with an error")
			}
		})
	}
	if got, err := m.Unwrap(ctx, w); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("untampered wrap no longer unwraps: %v", err)
	}
	for _, size := range []int{0, 1025} {
		if _, err := m.Wrap(ctx, make([]byte, size)); err == nil {
			t.Errorf("Wrap accepted a %d-byte key", size)
		}
	}
}

// TestKeysAreNonExtractable looks at the token with its own crypto11
// context, independent of the Manager, and asks for the key values.
func TestKeysAreNonExtractable(t *testing.T) {
	m, cfg := hsmtest.Manager(t)
	if _, err := m.RotateKEK(context.Background(), "second"); err != nil {
		t.Fatal(err)
	}
	hsm, err := crypto11.Configure(&crypto11.Config{Path: cfg.Module, TokenLabel: cfg.TokenLabel, Pin: cfg.PIN})
	if err != nil {
		t.Fatalf("crypto11.Configure: %v", err)
	}
	defer func() { _ = hsm.Close() }()

	objects := map[string]any{}
	for _, label := range []string{"iru-kek-v1", "iru-kek-v2"} {
		k, err := hsm.FindKey(nil, []byte(label))
		if err != nil || k == nil {
			t.Fatalf("FindKey %s: %v (found %v)", label, err, k != nil)
		}
		objects[label] = k
	}
	signer, err := hsm.FindKeyPair(nil, []byte(keys.SigningKeyLabel))
	if err != nil || signer == nil {
		t.Fatalf("FindKeyPair: %v", err)
	}
	objects[keys.SigningKeyLabel] = signer

	for label, obj := range objects {
		t.Run(label, func(t *testing.T) {
			attrs, err := hsm.GetAttributes(obj, []crypto11.AttributeType{
				crypto11.CkaSensitive, crypto11.CkaExtractable, crypto11.CkaAlwaysSensitive, crypto11.CkaNeverExtractable, crypto11.CkaToken,
			})
			if err != nil {
				t.Fatalf("GetAttributes: %v", err)
			}
			want := map[crypto11.AttributeType]bool{
				crypto11.CkaSensitive: true, crypto11.CkaExtractable: false,
				crypto11.CkaAlwaysSensitive: true, crypto11.CkaNeverExtractable: true, crypto11.CkaToken: true,
			}
			for typ, w := range want {
				a := attrs[typ]
				if a == nil || len(a.Value) != 1 || (a.Value[0] != 0) != w {
					t.Errorf("attribute %#x = %v, want %v", typ, a, w)
				}
			}
			v, err := hsm.GetAttribute(obj, crypto11.CkaValue)
			if err == nil {
				t.Fatalf("reading CKA_VALUE succeeded (%d bytes); the key is extractable", len(v.Value))
			}
			if !strings.Contains(err.Error(), "CKR_ATTRIBUTE_SENSITIVE") {
				t.Errorf("reading CKA_VALUE failed with %v, want CKR_ATTRIBUTE_SENSITIVE", err)
			}
		})
	}
}

// memStore is an in-memory WrappedKeyStore. failAfter > 0 makes the
// failAfter-th replacement fail, as a crash would; conflictOnce makes the
// first replacement of that ref report a concurrent change.
type memStore struct {
	mu           sync.Mutex
	keys         map[string]keys.Wrapped
	replaced     int
	failAfter    int
	conflictOnce string
}

var errCrash = errors.New("simulated crash")

func (s *memStore) StaleWrappedKeys(_ context.Context, current string, limit int) ([]keys.StoredKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []keys.StoredKey
	for ref, w := range s.keys {
		if w.KeyID != current {
			out = append(out, keys.StoredKey{Ref: ref, Wrapped: w})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memStore) ReplaceWrappedKey(_ context.Context, ref string, old, updated keys.Wrapped) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ref == s.conflictOnce {
		s.conflictOnce = ""
		return keys.ErrWrappedKeyChanged
	}
	if s.failAfter > 0 && s.replaced+1 == s.failAfter {
		s.failAfter = 0
		return errCrash
	}
	cur, ok := s.keys[ref]
	if !ok || cur.KeyID != old.KeyID || !bytes.Equal(cur.Ciphertext, old.Ciphertext) {
		return keys.ErrWrappedKeyChanged
	}
	s.keys[ref] = updated
	s.replaced++
	return nil
}

func TestRotationRewrapRetire(t *testing.T) {
	m, cfg := hsmtest.Manager(t)
	ctx := context.Background()

	deks := map[string][]byte{}
	store := &memStore{keys: map[string]keys.Wrapped{}}
	for i := range 5 {
		ref := fmt.Sprintf("k%02d", i)
		deks[ref] = randomBytes(t, 32)
		w, err := m.Wrap(ctx, deks[ref])
		if err != nil {
			t.Fatal(err)
		}
		store.keys[ref] = w
	}

	v2, err := m.RotateKEK(ctx, "rotation-1")
	if err != nil || v2 != "iru-kek-v2" {
		t.Fatalf("RotateKEK = %q, %v; want iru-kek-v2", v2, err)
	}
	again, err := m.RotateKEK(ctx, "rotation-1")
	if err != nil || again != v2 {
		t.Fatalf("repeated RotateKEK with the same call key = %q, %v; want %q", again, err, v2)
	}
	assertKEKs(t, m, "iru-kek-v1", "iru-kek-v2*")

	// Old wraps stay readable; new wraps use v2.
	for ref, w := range store.keys {
		if got, err := m.Unwrap(ctx, w); err != nil || !bytes.Equal(got, deks[ref]) {
			t.Fatalf("after rotation, %s under %s: %v", ref, w.KeyID, err)
		}
	}
	if w, err := m.Wrap(ctx, deks["k00"]); err != nil || w.KeyID != v2 {
		t.Fatalf("Wrap after rotation used %q (%v), want %s", w.KeyID, err, v2)
	}
	if err := m.RetireKEK(ctx, v2); !errors.Is(err, keys.ErrCurrentKEK) {
		t.Fatalf("RetireKEK(current) = %v, want ErrCurrentKEK", err)
	}

	var last int
	if err := m.Rewrap(ctx, store, func(done int) { last = done }); err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if last != 5 {
		t.Errorf("last progress = %d, want 5", last)
	}
	if err := m.RetireKEK(ctx, "iru-kek-v1"); err != nil {
		t.Fatalf("RetireKEK(v1): %v", err)
	}
	if err := m.RetireKEK(ctx, "iru-kek-v1"); !errors.Is(err, keys.ErrUnknownKey) {
		t.Fatalf("RetireKEK(v1) twice = %v, want ErrUnknownKey", err)
	}
	assertKEKs(t, m, "iru-kek-v2*")
	for ref, w := range store.keys {
		if w.KeyID != v2 {
			t.Errorf("%s still under %s", ref, w.KeyID)
		}
		if got, err := m.Unwrap(ctx, w); err != nil || !bytes.Equal(got, deks[ref]) {
			t.Errorf("after rewrap and retire, %s: %v", ref, err)
		}
	}

	// The call key is remembered in the token: a retried rotation after a
	// restart returns the same version, a new call key makes v3.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2, err := keys.Open(cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = m2.Close() })
	assertKEKs(t, m2, "iru-kek-v2*")
	if id, err := m2.RotateKEK(ctx, "rotation-1"); err != nil || id != v2 {
		t.Fatalf("RotateKEK(rotation-1) after reopen = %q, %v; want %s", id, err, v2)
	}
	if id, err := m2.RotateKEK(ctx, "rotation-2"); err != nil || id != "iru-kek-v3" {
		t.Fatalf("RotateKEK(rotation-2) = %q, %v; want iru-kek-v3", id, err)
	}
	assertKEKs(t, m2, "iru-kek-v2", "iru-kek-v3*")
}

// assertKEKs checks the listed versions; a trailing * marks the current one.
func assertKEKs(t *testing.T, m *keys.Manager, want ...string) {
	t.Helper()
	list, err := m.KEKs(context.Background())
	if err != nil {
		t.Fatalf("KEKs: %v", err)
	}
	var got []string
	for _, k := range list {
		s := k.ID
		if k.Current {
			s += "*"
		}
		got = append(got, s)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("KEKs = %v, want %v", got, want)
	}
}

func TestRewrapResumesAfterCrash(t *testing.T) {
	tests := []struct {
		name         string
		n            int
		failAfter    int
		conflictOnce string
	}{
		{"crash in the second batch", 150, 70, ""},
		{"crash on the first key", 10, 1, ""},
		{"concurrent change is retried", 20, 0, "k0005"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := hsmtest.Manager(t)
			ctx := context.Background()
			deks := map[string][]byte{}
			store := &memStore{keys: map[string]keys.Wrapped{}}
			for i := range tc.n {
				ref := fmt.Sprintf("k%04d", i)
				deks[ref] = randomBytes(t, 32)
				w, err := m.Wrap(ctx, deks[ref])
				if err != nil {
					t.Fatal(err)
				}
				store.keys[ref] = w
			}
			current, err := m.RotateKEK(ctx, "resume")
			if err != nil {
				t.Fatal(err)
			}
			store.failAfter, store.conflictOnce = tc.failAfter, tc.conflictOnce

			total := 0
			var progress []int
			err = m.Rewrap(ctx, store, func(done int) { progress = append(progress, done) })
			if tc.failAfter > 0 {
				if !errors.Is(err, errCrash) {
					t.Fatalf("first Rewrap = %v, want the simulated crash", err)
				}
				if store.replaced != tc.failAfter-1 {
					t.Fatalf("replaced %d before the crash, want %d", store.replaced, tc.failAfter-1)
				}
				total += len(progress)
				progress = nil
				err = m.Rewrap(ctx, store, func(done int) { progress = append(progress, done) })
			}
			if err != nil {
				t.Fatalf("Rewrap: %v", err)
			}
			total += len(progress)
			for i, p := range progress {
				if p != i+1 {
					t.Fatalf("progress %v is not 1, 2, 3, ...", progress)
				}
			}
			if total != tc.n || store.replaced != tc.n {
				t.Errorf("rewrapped %d (store replaced %d), want %d", total, store.replaced, tc.n)
			}
			for ref, w := range store.keys {
				if w.KeyID != current {
					t.Fatalf("%s under %s after Rewrap", ref, w.KeyID)
				}
				if got, err := m.Unwrap(ctx, w); err != nil || !bytes.Equal(got, deks[ref]) {
					t.Fatalf("%s: %v", ref, err)
				}
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	m, cfg := hsmtest.Manager(t)
	ctx := context.Background()
	digest := sha256.Sum256([]byte("audit checkpoint 42: root=ab12"))
	sig, err := m.Sign(ctx, digest[:])
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if !strings.HasPrefix(sig.KeyID, keys.SigningKeyLabel+":") || sig.KeyID != m.SigningKeyID() {
		t.Errorf("KeyID = %q, want %s", sig.KeyID, m.SigningKeyID())
	}
	pemKey := m.PublicKeyPEM()
	if !bytes.HasPrefix(pemKey, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("PublicKeyPEM = %q", pemKey)
	}

	other := sha256.Sum256([]byte("audit checkpoint 42: root=ab13"))
	badSig := bytes.Clone(sig.Sig)
	badSig[len(badSig)-2] ^= 0x40
	tests := []struct {
		name   string
		digest []byte
		sig    keys.Signature
		want   error
	}{
		{"valid", digest[:], sig, nil},
		{"tampered digest", other[:], sig, keys.ErrBadSignature},
		{"tampered signature", digest[:], keys.Signature{KeyID: sig.KeyID, Sig: badSig}, keys.ErrBadSignature},
		{"truncated signature", digest[:], keys.Signature{KeyID: sig.KeyID, Sig: sig.Sig[:len(sig.Sig)-1]}, keys.ErrBadSignature},
		{"other key id", digest[:], keys.Signature{KeyID: keys.SigningKeyLabel + ":0000000000000000", Sig: sig.Sig}, keys.ErrUnknownKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for via, err := range map[string]error{
				"Verify":    m.Verify(ctx, tc.digest, tc.sig),
				"VerifyPEM": keys.VerifyPEM(pemKey, tc.digest, tc.sig),
			} {
				if tc.want == nil && err != nil {
					t.Errorf("%s: %v", via, err)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("%s = %v, want %v", via, err, tc.want)
				}
			}
		})
	}
	if _, err := m.Sign(ctx, []byte("not a digest")); err == nil {
		t.Error("Sign accepted a 12-byte digest")
	}

	// The signing key persists in the token: after reopening, old
	// signatures verify and the public key is the same.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2, err := keys.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m2.Close() }()
	if !bytes.Equal(m2.PublicKeyPEM(), pemKey) {
		t.Error("reopening the token produced another signing key")
	}
	if err := m2.Verify(ctx, digest[:], sig); err != nil {
		t.Errorf("Verify after reopen: %v", err)
	}
	list, err := m2.KEKs(ctx)
	if err != nil || len(list) != 1 {
		t.Errorf("reopen created KEKs: %v, %v", list, err)
	}
}

func TestOpenErrors(t *testing.T) {
	cfg := hsmtest.Config(t)
	const wrongPIN = "wrong-pin-0123456789"
	tests := []struct {
		name    string
		mutate  func(*keys.Config)
		wantIs  error
		wantMsg string
	}{
		{"wrong PIN", func(c *keys.Config) { c.PIN = wrongPIN }, keys.ErrWrongPIN, "refused the PIN"},
		{"unknown token", func(c *keys.Config) { c.TokenLabel = "no-such-token" }, nil, "no-such-token"},
		{"missing module", func(c *keys.Config) { c.Module = "/nonexistent/libpkcs11.so" }, nil, "IRU_HSM_MODULE"},
		{"empty PIN", func(c *keys.Config) { c.PIN = "" }, nil, "IRU_HSM_PIN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.mutate(&c)
			m, err := keys.Open(c)
			if err == nil {
				_ = m.Close()
				t.Fatal("Open succeeded")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v, want %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
			for _, pin := range []string{cfg.PIN, wrongPIN} {
				if strings.Contains(err.Error(), pin) {
					t.Errorf("error %q contains a PIN", err)
				}
			}
		})
	}
	// The right PIN still works after the failures.
	m, err := keys.Open(cfg)
	if err != nil {
		t.Fatalf("Open with the right PIN: %v", err)
	}
	_ = m.Close()
}

func TestConfigLoadAndDescribe(t *testing.T) {
	var c keys.Config
	fields, err := config.Describe(&c)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]config.Field{}
	for _, f := range fields {
		got[f.Name] = f
	}
	for _, name := range []string{"IRU_HSM_MODULE", "IRU_HSM_TOKEN_LABEL", "IRU_HSM_PIN"} {
		if got[name].Doc == "" {
			t.Errorf("%s: missing or undocumented", name)
		}
	}
	if !got["IRU_HSM_PIN"].Secret {
		t.Error("IRU_HSM_PIN is not marked secret")
	}
	err = config.LoadFrom(&c, []string{"IRU_HSM_TOKEN_LABEL=prod", "IRU_HSM_PIN=s3cret-pin"})
	if err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	if c.Module != keys.DefaultModule || c.TokenLabel != "prod" || c.PIN != "s3cret-pin" {
		t.Errorf("loaded %+v", c)
	}
	for _, line := range config.Redacted(&c) {
		if strings.Contains(line, "s3cret-pin") {
			t.Errorf("Redacted shows the PIN: %s", line)
		}
	}
	var empty keys.Config
	if err := config.LoadFrom(&empty, nil); err == nil || !strings.Contains(err.Error(), "IRU_HSM_PIN") {
		t.Errorf("LoadFrom without a PIN = %v, want an IRU_HSM_PIN error", err)
	}
}

// TestDecisionKey: the decision key is its own key pair in the token (not
// the audit key), survives reopening, and its statements verify with its
// public key and not with the audit key.
func TestDecisionKey(t *testing.T) {
	cfg := hsmtest.Config(t)
	m, err := keys.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k := m.DecisionKey(time.Time{})
	st := decision.Statement{WorkflowID: "incident:x", RunID: "r", Decision: decision.Abort, Subject: "s", Nonce: "n",
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute)}
	sg, err := decision.Sign(context.Background(), m.DecisionSigner(), st)
	if err != nil {
		t.Fatal(err)
	}
	if sg.KeyID != k.ID {
		t.Fatalf("signed by %s, key is %s", sg.KeyID, k.ID)
	}
	if _, err := (decision.KeySet{Keys: []decision.Key{k}}).Verify(sg, time.Now()); err != nil {
		t.Fatal(err)
	}
	audit, _ := pem.Decode(m.PublicKeyPEM())
	if bytes.Equal(audit.Bytes, k.PublicKey) {
		t.Fatal("the decision key is the audit signing key")
	}
	_ = m.Close()
	m2, err := keys.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m2.DecisionKey(time.Time{}).ID != k.ID {
		t.Fatal("reopening the token changed the decision key")
	}
}
