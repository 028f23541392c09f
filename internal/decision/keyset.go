package decision

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// KeyIDPrefix starts every decision key id; the public key's fingerprint
// follows, so an id names exactly one key.
const KeyIDPrefix = "iru-decision:"

// ClockSkew is how far in the future a statement's issue time may be.
const ClockSkew = time.Minute

// KeyID names the decision key with PKIX DER public key der.
func KeyID(der []byte) string {
	sum := sha256.Sum256(der)
	return KeyIDPrefix + hex.EncodeToString(sum[:8])
}

// Key is one public key that verifies statements, valid from NotBefore
// (zero: always) until NotAfter (zero: no end).
type Key struct {
	ID string
	// PublicKey is the PKIX DER encoding of an ECDSA P-256 public key.
	PublicKey []byte
	NotBefore time.Time `json:",omitzero"`
	NotAfter  time.Time `json:",omitzero"`
}

// NewKey returns the key of a PKIX DER public key with its validity window.
func NewKey(der []byte, notBefore, notAfter time.Time) (Key, error) {
	if _, err := parsePublic(der); err != nil {
		return Key{}, err
	}
	return Key{ID: KeyID(der), PublicKey: der, NotBefore: notBefore, NotAfter: notAfter}, nil
}

// validAt reports whether t is inside the key's window.
func (k Key) validAt(t time.Time) bool {
	return (k.NotBefore.IsZero() || !t.Before(k.NotBefore)) && (k.NotAfter.IsZero() || t.Before(k.NotAfter))
}

func parsePublic(der []byte) (*ecdsa.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("decision: parse public key: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("decision: public key is %T, want ECDSA P-256", k)
	}
	return pub, nil
}

// KeySet is the set of keys a verifier trusts: during a rotation the old
// and the new key overlap, each within its window.
type KeySet struct {
	Keys []Key `json:",omitempty"`
}

// Lookup returns the key with id.
func (ks KeySet) Lookup(id string) (Key, bool) {
	for _, k := range ks.Keys {
		if k.ID == id {
			return k, true
		}
	}
	return Key{}, false
}

// Verify checks s at time now: a key of the set that is valid now and was
// valid when the statement was issued, the signature, the canonical
// encoding, and the statement's own validity. It returns the statement.
// It is deterministic: now is the caller's clock (workflow.Now in workflows).
func (ks KeySet) Verify(s Signed, now time.Time) (Statement, error) {
	if s.Empty() {
		return Statement{}, ErrMissing
	}
	k, ok := ks.Lookup(s.KeyID)
	if !ok {
		return Statement{}, fmt.Errorf("%w %q", ErrUnknownKey, s.KeyID)
	}
	if !k.validAt(now) {
		return Statement{}, fmt.Errorf("%w: %s at %s", ErrKeyNotValid, k.ID, now.UTC().Format(time.RFC3339))
	}
	pub, err := parsePublic(k.PublicKey)
	if err != nil {
		return Statement{}, err
	}
	if !ecdsa.VerifyASN1(pub, Digest(s.Payload), s.Sig) {
		return Statement{}, fmt.Errorf("%w (key %s)", ErrBadSignature, k.ID)
	}
	st, err := Decode(s.Payload)
	if err != nil {
		return Statement{}, err
	}
	if !k.validAt(st.IssuedAt) {
		return Statement{}, fmt.Errorf("%w: %s when the statement was issued (%s)", ErrKeyNotValid, k.ID, st.IssuedAt.Format(time.RFC3339))
	}
	if now.After(st.ExpiresAt) || st.IssuedAt.After(now.Add(ClockSkew)) {
		return Statement{}, fmt.Errorf("%w: valid %s to %s, now %s", ErrExpired,
			st.IssuedAt.Format(time.RFC3339), st.ExpiresAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return st, nil
}

// ParsePEM reads public keys from PEM "PUBLIC KEY" blocks. Optional block
// headers Not-Before and Not-After (RFC 3339) give each key's window.
func ParsePEM(data []byte) (KeySet, error) {
	var ks KeySet
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "PUBLIC KEY" {
			return KeySet{}, fmt.Errorf("decision: PEM block %q, want PUBLIC KEY", b.Type)
		}
		var nb, na time.Time
		for h, t := range map[string]*time.Time{"Not-Before": &nb, "Not-After": &na} {
			if v := b.Headers[h]; v != "" {
				p, err := time.Parse(time.RFC3339, v)
				if err != nil {
					return KeySet{}, fmt.Errorf("decision: PEM header %s: %w", h, err)
				}
				*t = p.UTC()
			}
		}
		k, err := NewKey(b.Bytes, nb, na)
		if err != nil {
			return KeySet{}, err
		}
		ks.Keys = append(ks.Keys, k)
	}
	if len(strings.TrimSpace(string(data))) > 0 {
		return KeySet{}, errors.New("decision: trailing data after the PEM blocks")
	}
	return ks, nil
}

// EncodePEM writes k as a PEM block with its window as headers.
func (k Key) EncodePEM() []byte {
	h := map[string]string{}
	if !k.NotBefore.IsZero() {
		h["Not-Before"] = k.NotBefore.UTC().Format(time.RFC3339)
	}
	if !k.NotAfter.IsZero() {
		h["Not-After"] = k.NotAfter.UTC().Format(time.RFC3339)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: h, Bytes: k.PublicKey})
}

// LocalSigner signs with an ECDSA P-256 key held in process: for tests and
// offline tools. The platform signs with the HSM's key (keys.DecisionSigner).
type LocalSigner struct {
	key *ecdsa.PrivateKey
	der []byte
}

// NewLocalSigner generates a P-256 key.
func NewLocalSigner() (*LocalSigner, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("decision: generate key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("decision: encode public key: %w", err)
	}
	return &LocalSigner{key: k, der: der}, nil
}

// SignDigest implements [Signer].
func (l *LocalSigner) SignDigest(_ context.Context, digest []byte) (string, []byte, error) {
	sig, err := ecdsa.SignASN1(rand.Reader, l.key, digest)
	if err != nil {
		return "", nil, fmt.Errorf("decision: sign: %w", err)
	}
	return KeyID(l.der), sig, nil
}

// Key returns the signer's public key with the given window.
func (l *LocalSigner) Key(notBefore, notAfter time.Time) Key {
	return Key{ID: KeyID(l.der), PublicKey: l.der, NotBefore: notBefore, NotAfter: notAfter}
}
