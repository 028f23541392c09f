// Package keys keeps the platform's root keys in a PKCS#11 HSM (SoftHSM2 in
// development, tests and CI; any PKCS#11 HSM in production) through
// github.com/ThalesGroup/crypto11.
//
// Two kinds of key live in the token, generated there, sensitive and
// non-extractable, so their values never reach this process:
//
//   - versioned AES-256 key-encryption keys (KEKs) labelled iru-kek-v1,
//     iru-kek-v2, ...; the current one is the highest version still in the
//     token. [Manager.Wrap] and [Manager.Unwrap] protect data-encryption
//     keys with AES-GCM computed inside the HSM; [Manager.RotateKEK] adds a
//     version, [Manager.Rewrap] moves stored wrapped keys to it (resumably),
//     and [Manager.RetireKEK] destroys an old version once nothing needs it.
//   - an ECDSA P-256 signing key for audit checkpoints ([Manager.Sign]);
//     its public key is exported as PEM so signatures can be verified
//     offline ([VerifyPEM]).
//   - a separate ECDSA P-256 key for responder decision statements
//     ([Manager.DecisionSigner], [Manager.DecisionKey]): the API server
//     signs each decision with it, workflows verify with its public key.
package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

const (
	// KEKLabelPrefix starts the label (and the key id) of every
	// key-encryption key; the version number follows it.
	KEKLabelPrefix = "iru-kek-v"
	// SigningKeyLabel is the label of the audit checkpoint signing key.
	SigningKeyLabel = "iru-audit-sign-v1"
	// DecisionKeyLabel is the label of the key that signs responder
	// decision statements (package decision), separate from the audit key.
	DecisionKeyLabel = "iru-decision-sign-v1"

	gcmNonceSize = 12
	maxDEKSize   = 1024
	wrapAADTag   = "iru-kek-wrap/v1:"
)

var (
	// ErrWrongPIN is returned by [Open] when the token refuses the PIN.
	ErrWrongPIN = errors.New("the HSM token refused the PIN")
	// ErrUnknownKey is returned for a key id the token does not hold.
	ErrUnknownKey = errors.New("unknown key")
	// ErrCurrentKEK is returned by [Manager.RetireKEK] for the current KEK.
	ErrCurrentKEK = errors.New("refusing to retire the current key-encryption key")
	// ErrBadSignature is returned when a signature does not verify.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrUnwrap is returned when a wrapped key fails authentication:
	// tampered data, or a different key of the same id.
	ErrUnwrap = errors.New("wrapped key failed authentication (tampered or wrong key)")
)

// Wrapped is a data-encryption key encrypted (AES-256-GCM, inside the HSM)
// under the key-encryption key KeyID.
type Wrapped struct {
	KeyID      string `json:"key_id"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// Signature is an ASN.1 DER ECDSA P-256 signature by the signing key KeyID.
type Signature struct {
	KeyID string `json:"key_id"`
	Sig   []byte `json:"sig"`
}

// KEK describes one version of the key-encryption key.
type KEK struct {
	ID      string // label in the token, e.g. iru-kek-v2
	Version int
	Current bool // the version Wrap uses
}

// Manager holds a session pool to the token. It is safe for concurrent use.
type Manager struct {
	hsm       *crypto11.Context
	closeOnce sync.Once

	mu sync.Mutex // serializes changes to the token's KEKs

	signer crypto11.Signer
	signID string
	// decision is the key pair that signs responder decision statements.
	decision *keyPair
	pub      *ecdsa.PublicKey
	pubPEM   []byte
}

// Open logs in to the token described by cfg and makes sure it holds a KEK
// and a signing key, generating them on first use. Errors never contain the
// PIN; a refused PIN is reported as [ErrWrongPIN].
func Open(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if cfg.SoftHSMConf != "" && os.Getenv("SOFTHSM2_CONF") != cfg.SoftHSMConf {
		if err := os.Setenv("SOFTHSM2_CONF", cfg.SoftHSMConf); err != nil {
			return nil, fmt.Errorf("keys: SOFTHSM2_CONF: %w", err)
		}
	}
	hsm, err := crypto11.Configure(&crypto11.Config{
		Path:            cfg.Module,
		TokenLabel:      cfg.TokenLabel,
		Pin:             cfg.PIN,
		GCMIVLength:     gcmNonceSize,
		MaxSessions:     32,
		PoolWaitTimeout: 30 * time.Second,
	})
	if err != nil {
		var p11 pkcs11.Error
		if errors.As(err, &p11) && (p11 == pkcs11.CKR_PIN_INCORRECT || p11 == pkcs11.CKR_PIN_LOCKED || p11 == pkcs11.CKR_PIN_INVALID || p11 == pkcs11.CKR_PIN_LEN_RANGE) {
			return nil, fmt.Errorf("keys: log in to HSM token %q (module %s): %w (%v)", cfg.TokenLabel, cfg.Module, ErrWrongPIN, p11)
		}
		return nil, fmt.Errorf("keys: open HSM token %q (module %s): %s", cfg.TokenLabel, cfg.Module, redact(err.Error(), cfg.PIN))
	}
	m := &Manager{hsm: hsm}
	if err := m.init(); err != nil {
		_ = hsm.Close()
		return nil, err
	}
	return m, nil
}

// redact removes the PIN from a message in case a module ever echoes it.
func redact(msg, pin string) string {
	if pin == "" {
		return msg
	}
	return strings.ReplaceAll(msg, pin, "(pin)")
}

func (m *Manager) init() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keks, err := m.listKEKs()
	if err != nil {
		return err
	}
	if len(keks) == 0 {
		if _, err := m.generateKEK(1, callKeyID("initial")); err != nil {
			return err
		}
	}
	return m.loadSigningKey()
}

// Close ends the sessions with the token. Calls after the first do nothing.
func (m *Manager) Close() error {
	var err error
	m.closeOnce.Do(func() { err = m.hsm.Close() })
	if err != nil {
		return fmt.Errorf("keys: close HSM context: %w", err)
	}
	return nil
}

// kekObject is one KEK object in the token. Two processes racing to create
// the same version can leave two objects with one label; Unwrap tries both.
type kekObject struct {
	id      string
	version int
	ckaID   []byte
	key     *crypto11.SecretKey
}

func kekLabel(version int) string { return KEKLabelPrefix + strconv.Itoa(version) }

func parseKEKID(id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, KEKLabelPrefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(rest)
	if err != nil || v < 1 || strconv.Itoa(v) != rest {
		return 0, false
	}
	return v, true
}

// callKeyID derives the CKA_ID that marks the KEK created for a rotation
// call key, which makes RotateKEK idempotent across retries and restarts.
func callKeyID(callKey string) []byte {
	sum := sha256.Sum256([]byte("iru-kek-rotation:" + callKey))
	return sum[:16]
}

// listAttempts bounds [Manager.listKEKs]'s tries.
const listAttempts = 3

// listKEKs returns the KEK objects of the token, highest version first. A
// key destroyed by another process while the token is being listed (a KEK
// retired by a rotation on another worker) makes the listing fail with
// CKR_OBJECT_HANDLE_INVALID; the token is then listed again.
func (m *Manager) listKEKs() ([]kekObject, error) {
	for attempt := 1; ; attempt++ {
		out, err := m.listKEKsOnce()
		var perr pkcs11.Error
		if err == nil || attempt == listAttempts || !errors.As(err, &perr) || perr != pkcs11.CKR_OBJECT_HANDLE_INVALID {
			return out, err
		}
	}
}

func (m *Manager) listKEKsOnce() ([]kekObject, error) {
	all, err := m.hsm.FindAllKeys()
	if err != nil {
		return nil, fmt.Errorf("keys: list secret keys in the token: %w", err)
	}
	var out []kekObject
	for _, k := range all {
		attrs, err := m.hsm.GetAttributes(k, []crypto11.AttributeType{crypto11.CkaLabel, crypto11.CkaId})
		if err != nil {
			return nil, fmt.Errorf("keys: read label of a secret key: %w", err)
		}
		label := string(attrs[crypto11.CkaLabel].Value)
		v, ok := parseKEKID(label)
		if !ok {
			continue
		}
		out = append(out, kekObject{id: label, version: v, ckaID: attrs[crypto11.CkaId].Value, key: k})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].version > out[j].version })
	return out, nil
}

func (m *Manager) generateKEK(version int, ckaID []byte) (string, error) {
	label := kekLabel(version)
	tmpl, err := crypto11.NewAttributeSetWithIDAndLabel(ckaID, []byte(label))
	if err != nil {
		return "", fmt.Errorf("keys: template for %s: %w", label, err)
	}
	for _, a := range []struct {
		t crypto11.AttributeType
		v bool
	}{
		{crypto11.CkaToken, true},
		{crypto11.CkaPrivate, true},
		{crypto11.CkaSensitive, true},
		{crypto11.CkaExtractable, false},
		{crypto11.CkaEncrypt, true},
		{crypto11.CkaDecrypt, true},
		{crypto11.CkaWrap, false},
		{crypto11.CkaUnwrap, false},
	} {
		if err := tmpl.Set(a.t, a.v); err != nil {
			return "", fmt.Errorf("keys: template for %s: %w", label, err)
		}
	}
	if _, err := m.hsm.GenerateSecretKeyWithAttributes(tmpl, 256, crypto11.CipherAES); err != nil {
		return "", fmt.Errorf("keys: generate AES-256 key %s in the token: %w", label, err)
	}
	return label, nil
}

// current returns the KEK object Wrap uses.
func (m *Manager) current() (kekObject, error) {
	keks, err := m.listKEKs()
	if err != nil {
		return kekObject{}, err
	}
	if len(keks) == 0 {
		return kekObject{}, fmt.Errorf("keys: the token holds no key-encryption key: %w", ErrUnknownKey)
	}
	return keks[0], nil
}

// CurrentKEK returns the id of the KEK that Wrap uses now.
func (m *Manager) CurrentKEK(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("keys: current KEK: %w", err)
	}
	k, err := m.current()
	if err != nil {
		return "", err
	}
	return k.id, nil
}

// KEKs lists the KEK versions in the token, oldest first.
func (m *Manager) KEKs(ctx context.Context) ([]KEK, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: list KEKs: %w", err)
	}
	keks, err := m.listKEKs()
	if err != nil {
		return nil, err
	}
	var out []KEK
	seen := map[string]bool{}
	for i := len(keks) - 1; i >= 0; i-- {
		k := keks[i]
		if seen[k.id] {
			continue
		}
		seen[k.id] = true
		out = append(out, KEK{ID: k.id, Version: k.version, Current: k.version == keks[0].version})
	}
	return out, nil
}

// RotateKEK generates a new KEK version, which becomes current, and returns
// its id. It is idempotent per callKey (use e.g. the workflow and activity
// id of a rotation activity): a repeated call with the same key returns
// the version the first call created instead of creating another.
// Existing wraps stay readable until their KEK is retired.
func (m *Manager) RotateKEK(ctx context.Context, callKey string) (string, error) {
	if callKey == "" {
		return "", errors.New("keys: rotate KEK: empty call key")
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("keys: rotate KEK: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	keks, err := m.listKEKs()
	if err != nil {
		return "", err
	}
	want := callKeyID(callKey)
	next := 1
	for _, k := range keks {
		if bytes.Equal(k.ckaID, want) {
			return k.id, nil
		}
		next = max(next, k.version+1)
	}
	return m.generateKEK(next, want)
}

// RetireKEK destroys the KEK id in the token. It refuses the current KEK.
// Anything still wrapped under id becomes unreadable, so call it only after
// [Manager.Rewrap] has moved every stored wrap to the current KEK.
func (m *Manager) RetireKEK(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keys: retire KEK %s: %w", id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	keks, err := m.listKEKs()
	if err != nil {
		return err
	}
	if len(keks) > 0 && keks[0].id == id {
		return fmt.Errorf("keys: retire KEK %s: %w", id, ErrCurrentKEK)
	}
	found := false
	for _, k := range keks {
		if k.id != id {
			continue
		}
		found = true
		if err := k.key.Delete(); err != nil {
			return fmt.Errorf("keys: retire KEK %s: destroy token object: %w", id, err)
		}
	}
	if !found {
		return fmt.Errorf("keys: retire KEK %s: %w", id, ErrUnknownKey)
	}
	return nil
}

func wrapAAD(keyID string) []byte { return []byte(wrapAADTag + keyID) }

// Wrap encrypts dek under the current KEK inside the HSM.
func (m *Manager) Wrap(ctx context.Context, dek []byte) (Wrapped, error) {
	if err := ctx.Err(); err != nil {
		return Wrapped{}, fmt.Errorf("keys: wrap: %w", err)
	}
	if len(dek) == 0 || len(dek) > maxDEKSize {
		return Wrapped{}, fmt.Errorf("keys: wrap: key of %d bytes, want 1 to %d", len(dek), maxDEKSize)
	}
	k, err := m.current()
	if err != nil {
		return Wrapped{}, err
	}
	aead, err := k.key.NewGCM()
	if err != nil {
		return Wrapped{}, fmt.Errorf("keys: wrap with %s: AES-GCM in the HSM: %w", k.id, err)
	}
	nonce := make([]byte, gcmNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return Wrapped{}, fmt.Errorf("keys: wrap: nonce: %w", err)
	}
	ct, err := seal(aead, nonce, dek, wrapAAD(k.id))
	if err != nil {
		return Wrapped{}, fmt.Errorf("keys: wrap with %s: %w", k.id, err)
	}
	return Wrapped{KeyID: k.id, Nonce: nonce, Ciphertext: ct}, nil
}

// seal calls Seal, which panics in crypto11 when the token fails.
func seal(aead cipher.AEAD, nonce, plaintext, ad []byte) (ct []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("HSM encrypt failed: %v", r)
		}
	}()
	return aead.Seal(nil, nonce, plaintext, ad), nil
}

// Unwrap decrypts w inside the HSM with the KEK that wrapped it.
func (m *Manager) Unwrap(ctx context.Context, w Wrapped) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: unwrap: %w", err)
	}
	if _, ok := parseKEKID(w.KeyID); !ok {
		return nil, fmt.Errorf("keys: unwrap: %q is not a KEK id: %w", w.KeyID, ErrUnknownKey)
	}
	if len(w.Nonce) != gcmNonceSize {
		return nil, fmt.Errorf("keys: unwrap with %s: nonce of %d bytes, want %d", w.KeyID, len(w.Nonce), gcmNonceSize)
	}
	objs, err := m.hsm.FindKeys(nil, []byte(w.KeyID))
	if err != nil {
		return nil, fmt.Errorf("keys: unwrap: find %s in the token: %w", w.KeyID, err)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("keys: unwrap: %s is not in the token (retired?): %w", w.KeyID, ErrUnknownKey)
	}
	var lastErr error
	for _, k := range objs {
		aead, err := k.NewGCM()
		if err != nil {
			return nil, fmt.Errorf("keys: unwrap with %s: AES-GCM in the HSM: %w", w.KeyID, err)
		}
		dek, err := aead.Open(nil, w.Nonce, w.Ciphertext, wrapAAD(w.KeyID))
		if err == nil {
			return dek, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("keys: unwrap with %s: %w: %v", w.KeyID, ErrUnwrap, lastErr)
}

func (m *Manager) loadSigningKey() error {
	p, err := m.loadKeyPair(SigningKeyLabel)
	if err != nil {
		return err
	}
	m.signer, m.pub, m.signID = p.s, p.pub, signingKeyID(p.der)
	m.pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p.der})
	p, err = m.loadKeyPair(DecisionKeyLabel)
	if err != nil {
		return err
	}
	m.decision = p
	return nil
}

// keyPair is an ECDSA P-256 key pair of the token.
type keyPair struct {
	s   crypto11.Signer
	pub *ecdsa.PublicKey
	der []byte
}

// loadKeyPair finds (or generates, sensitive and non-extractable) the
// ECDSA P-256 key pair labelled label.
func (m *Manager) loadKeyPair(label string) (*keyPair, error) {
	signers, err := m.hsm.FindKeyPairs(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("keys: find key pair %s: %w", label, err)
	}
	if len(signers) == 0 {
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return nil, fmt.Errorf("keys: signing key id: %w", err)
		}
		pubT, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
		if err != nil {
			return nil, fmt.Errorf("keys: signing key template: %w", err)
		}
		privT, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
		if err != nil {
			return nil, fmt.Errorf("keys: signing key template: %w", err)
		}
		for _, a := range []struct {
			t crypto11.AttributeType
			v bool
		}{{crypto11.CkaPrivate, true}, {crypto11.CkaSensitive, true}, {crypto11.CkaExtractable, false}} {
			if err := privT.Set(a.t, a.v); err != nil {
				return nil, fmt.Errorf("keys: signing key template: %w", err)
			}
		}
		s, err := m.hsm.GenerateECDSAKeyPairWithAttributes(pubT, privT, elliptic.P256())
		if err != nil {
			return nil, fmt.Errorf("keys: generate ECDSA P-256 signing key in the token: %w", err)
		}
		signers = []crypto11.Signer{s}
	}
	// Two processes racing on first start may both generate a key pair;
	// every process then picks the same one: the lowest fingerprint.
	var best *keyPair
	bestID := ""
	for _, s := range signers {
		pub, ok := s.Public().(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			continue
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("keys: encode signing public key: %w", err)
		}
		if id := signingKeyID(der); best == nil || id < bestID {
			best, bestID = &keyPair{s: s, pub: pub, der: der}, id
		}
	}
	if best == nil {
		return nil, fmt.Errorf("keys: %s is not an ECDSA P-256 key pair", label)
	}
	return best, nil
}

// signingKeyID names a signing key by label and public key fingerprint, so
// a signature names exactly the key that verifies it.
func signingKeyID(spkiDER []byte) string {
	sum := sha256.Sum256(spkiDER)
	return SigningKeyLabel + ":" + hex.EncodeToString(sum[:8])
}

// SigningKeyID returns the id that [Manager.Sign] puts in signatures.
func (m *Manager) SigningKeyID() string { return m.signID }

// PublicKeyPEM returns the signing public key as a PKIX "PUBLIC KEY" PEM
// block, for offline verification with [VerifyPEM].
func (m *Manager) PublicKeyPEM() []byte { return bytes.Clone(m.pubPEM) }

// Sign signs a SHA-256 digest with the signing key inside the HSM.
func (m *Manager) Sign(ctx context.Context, digest []byte) (Signature, error) {
	if err := ctx.Err(); err != nil {
		return Signature{}, fmt.Errorf("keys: sign: %w", err)
	}
	if len(digest) != sha256.Size {
		return Signature{}, fmt.Errorf("keys: sign: digest of %d bytes, want a %d-byte SHA-256 digest", len(digest), sha256.Size)
	}
	sig, err := m.signer.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		return Signature{}, fmt.Errorf("keys: sign with %s: %w", m.signID, err)
	}
	return Signature{KeyID: m.signID, Sig: sig}, nil
}

// Verify checks sig over digest with the signing public key.
func (m *Manager) Verify(ctx context.Context, digest []byte, sig Signature) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keys: verify: %w", err)
	}
	if sig.KeyID != m.signID {
		return fmt.Errorf("keys: verify: signature by %q, this token signs as %q: %w", sig.KeyID, m.signID, ErrUnknownKey)
	}
	return verify(m.pub, digest, sig)
}

// VerifyPEM checks sig over digest with a public key exported by
// [Manager.PublicKeyPEM], without access to the HSM.
func VerifyPEM(publicKeyPEM, digest []byte, sig Signature) error {
	block, _ := pem.Decode(publicKeyPEM)
	if block == nil || block.Type != "PUBLIC KEY" {
		return errors.New("keys: verify: no PUBLIC KEY PEM block")
	}
	if id := signingKeyID(block.Bytes); sig.KeyID != id {
		return fmt.Errorf("keys: verify: signature by %q, public key is %q: %w", sig.KeyID, id, ErrUnknownKey)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("keys: verify: parse public key: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("keys: verify: public key is %T, want ECDSA", k)
	}
	return verify(pub, digest, sig)
}

func verify(pub *ecdsa.PublicKey, digest []byte, sig Signature) error {
	if len(digest) != sha256.Size {
		return fmt.Errorf("keys: verify: digest of %d bytes, want %d", len(digest), sha256.Size)
	}
	if !ecdsa.VerifyASN1(pub, digest, sig.Sig) {
		return fmt.Errorf("keys: verify with %s: %w", sig.KeyID, ErrBadSignature)
	}
	return nil
}
