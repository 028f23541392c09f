package keys

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/iru-responder/responder/internal/decision"
)

// DecisionSigner signs decision statements with the token's decision key
// (label [DecisionKeyLabel]); it implements decision.Signer.
type DecisionSigner struct{ m *Manager }

// DecisionSigner returns the signer of decision statements.
func (m *Manager) DecisionSigner() DecisionSigner { return DecisionSigner{m} }

// SignDigest signs a SHA-256 digest inside the HSM and names the key by
// decision.KeyID of its public key.
func (d DecisionSigner) SignDigest(ctx context.Context, digest []byte) (string, []byte, error) {
	if err := ctx.Err(); err != nil {
		return "", nil, fmt.Errorf("keys: sign decision: %w", err)
	}
	if len(digest) != sha256.Size {
		return "", nil, fmt.Errorf("keys: sign decision: digest of %d bytes, want %d", len(digest), sha256.Size)
	}
	p := d.m.decision
	id := decision.KeyID(p.der)
	sig, err := p.s.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		return "", nil, fmt.Errorf("keys: sign decision with %s: %w", id, err)
	}
	return id, sig, nil
}

// DecisionKey returns the decision key's public half, valid from notBefore
// (zero: always) with no end, for the verifiers' key sets.
func (m *Manager) DecisionKey(notBefore time.Time) decision.Key {
	return decision.Key{ID: decision.KeyID(m.decision.der), PublicKey: append([]byte(nil), m.decision.der...), NotBefore: notBefore}
}
