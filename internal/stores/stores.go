// Package stores opens the platform's stores of proof: the audit ledger and
// the evidence locker, with their keys in the HSM (the evidence data keys
// wrapped by the HSM key-encryption key, ledger checkpoints signed by the
// HSM signing key). The worker and the starter both use it.
package stores

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/ledger"
)

// Config is the stores' part of a binary's configuration.
type Config struct {
	Ledger   ledger.Config
	Evidence evidence.Config
}

// Validate implements config.Validator.
func (c *Config) Validate() error { return errors.Join(c.Ledger.Validate(), c.Evidence.Validate()) }

// Stores are the open stores.
type Stores struct {
	Ledger   *ledger.Ledger
	Evidence *evidence.Locker
	// Signer signs and verifies ledger checkpoints with the HSM key.
	Signer Signer
}

// Open opens the ledger and the evidence locker; km holds the keys.
func Open(ctx context.Context, cfg Config, km *keys.Manager) (*Stores, error) {
	st, err := ledger.Open(ctx, cfg.Ledger)
	if err != nil {
		return nil, err
	}
	backend, err := cfg.Evidence.OpenBackend(ctx)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	opts := cfg.Evidence.Options()
	opts.Backend = backend
	locker, err := evidence.Open(cfg.Evidence.Dir, KEK{km}, opts)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &Stores{Ledger: ledger.New(st, nil), Evidence: locker, Signer: Signer{km}}, nil
}

// Close closes the ledger store.
func (s *Stores) Close() error { return s.Ledger.Store().Close() }

// KEK adapts the HSM key manager to evidence.KeyWrapper.
type KEK struct{ M *keys.Manager }

// Wrap implements evidence.KeyWrapper.
func (k KEK) Wrap(ctx context.Context, dek []byte) (evidence.Wrapped, error) {
	w, err := k.M.Wrap(ctx, dek)
	return evidence.Wrapped{KeyID: w.KeyID, Nonce: w.Nonce, Ciphertext: w.Ciphertext}, err
}

// Unwrap implements evidence.KeyWrapper.
func (k KEK) Unwrap(ctx context.Context, w evidence.Wrapped) ([]byte, error) {
	return k.M.Unwrap(ctx, keys.Wrapped{KeyID: w.KeyID, Nonce: w.Nonce, Ciphertext: w.Ciphertext})
}

// Signer adapts the HSM key manager to ledger.Signer and ledger.Verifier.
type Signer struct{ M *keys.Manager }

// Sign implements ledger.Signer.
func (s Signer) Sign(ctx context.Context, digest []byte) (ledger.Signature, error) {
	sig, err := s.M.Sign(ctx, digest)
	return ledger.Signature{KeyID: sig.KeyID, Sig: sig.Sig}, err
}

// Verify implements ledger.Verifier.
func (s Signer) Verify(ctx context.Context, digest []byte, sig ledger.Signature) error {
	return s.M.Verify(ctx, digest, keys.Signature{KeyID: sig.KeyID, Sig: sig.Sig})
}

// EvidenceSink adapts the locker to activities.EvidenceStore.
type EvidenceSink struct{ L *evidence.Locker }

// PutEvidence implements activities.EvidenceStore.
func (e EvidenceSink) PutEvidence(ctx context.Context, item activities.EvidenceItem) (string, error) {
	class := evidence.Class(item.Class)
	if class == "" {
		class = evidence.Class(activities.ClassOperational)
	}
	ref, err := e.L.Put(ctx, evidence.PutRequest{
		Incident: item.IncidentID, Name: item.Name, Class: class, MediaType: item.MediaType,
		CollectedBy: item.CollectedBy, Source: item.Source, Body: item.Body,
	})
	if err != nil {
		return "", fmt.Errorf("evidence %s of incident %s: %w", item.Name, item.IncidentID, err)
	}
	return string(ref), nil
}

// ReadEvidence returns the content of ref, recording who read it and why.
func (e EvidenceSink) ReadEvidence(ctx context.Context, ref, who, why string) ([]byte, error) {
	rc, _, err := e.L.Get(ctx, evidence.Ref(ref), evidence.Reader{Identity: who, Reason: why})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref, err)
	}
	return b, nil
}
