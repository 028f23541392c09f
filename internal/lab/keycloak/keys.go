package keycloak

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// signingKey is one RS256 realm key. A key with a zero retireAt is the active one; older keys stay
// in the JWKS and keep verifying until retireAt (the rotation overlap).
type signingKey struct {
	kid      string
	priv     *rsa.PrivateKey
	signer   jose.Signer
	created  time.Time
	retireAt time.Time
}

func newSigningKey(bits int, now time.Time) (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("generate rsa signing key: %w", err)
	}
	jwk := jose.JSONWebKey{Key: &priv.PublicKey, Algorithm: string(jose.RS256), Use: "sig"}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("thumbprint signing key: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(thumb)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.RS256)}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, fmt.Errorf("create jose signer: %w", err)
	}
	return &signingKey{kid: kid, priv: priv, signer: signer, created: now}, nil
}

// usable reports whether k may still verify tokens at now.
func (k *signingKey) usable(now time.Time) bool {
	return k.retireAt.IsZero() || now.Before(k.retireAt)
}

// activeKey returns the key that signs new tokens.
func (r *realm) activeKey() *signingKey { return r.keys[len(r.keys)-1] }

// verificationKey finds a usable key by kid.
func (r *realm) verificationKey(kid string, now time.Time) *signingKey {
	for _, k := range r.keys {
		if k.kid == kid && k.usable(now) {
			return k
		}
	}
	return nil
}

// jwks returns the realm's JSON Web Key Set (usable keys only), in Keycloak's certs format.
func (r *realm) jwks(now time.Time) map[string]any {
	keys := []map[string]any{}
	for i := len(r.keys) - 1; i >= 0; i-- {
		k := r.keys[i]
		if !k.usable(now) {
			continue
		}
		pub := &k.priv.PublicKey
		keys = append(keys, map[string]any{
			"kid": k.kid,
			"kty": "RSA",
			"alg": "RS256",
			"use": "sig",
			"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e":   base64.RawURLEncoding.EncodeToString(bigEndian(pub.E)),
		})
	}
	return map[string]any{"keys": keys}
}

// publicKeyPEMBody returns the active key as base64 DER SubjectPublicKeyInfo, as Keycloak's
// realm endpoint ("public_key") reports it.
func (r *realm) publicKeyPEMBody() string {
	der, err := x509.MarshalPKIXPublicKey(&r.activeKey().priv.PublicKey)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(der)
}

func bigEndian(e int) []byte {
	var b []byte
	for e > 0 {
		b = append([]byte{byte(e & 0xff)}, b...)
		e >>= 8
	}
	return b
}
