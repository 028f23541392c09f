// Package decision is the proof of a responder's decision: a statement,
// signed by the API server with an ECDSA P-256 key that never leaves its
// HSM, that binds who decided what (approve, deny, abort, escalate,
// acknowledge), on which incident run and step, with which token session,
// authentication methods, time and nonce.
//
// The API server signs a [Statement] ([Sign]) for each decision from the
// verified Keycloak token; the incident workflow verifies it ([KeySet.Verify])
// against the public keys the worker gives it. Verification is pure and
// deterministic (no clock, no I/O, no randomness), so it runs inside
// workflow code and in update validators.
//
// The encoding is canonical and versioned: the signed bytes are the JSON
// of a [Statement] with fixed field order, UTC times at millisecond
// precision and version [Version], prefixed with a domain tag before
// hashing. A statement whose payload is not exactly its own canonical
// encoding is refused, so one decision has one byte form.
package decision

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Version is the version of the statement encoding.
const Version = 1

// domain separates decision signatures from any other use of the key.
const domain = "iru-decision/v1\n"

// Kind is what a responder decided.
type Kind string

// The decisions a statement can carry.
const (
	Approve     Kind = "approve"
	Deny        Kind = "deny"
	Abort       Kind = "abort"
	Escalate    Kind = "escalate"
	Acknowledge Kind = "acknowledge"
	// Reroute moves an unknown-asset triage to the asset a responder
	// picked; the statement's StepID binds that asset.
	Reroute Kind = "reroute"
)

// Valid reports whether k is one of the decisions.
func (k Kind) Valid() bool {
	return slices.Contains([]Kind{Approve, Deny, Abort, Escalate, Acknowledge, Reroute}, k)
}

// Errors of [KeySet.Verify] and [Statement.Check]; every refusal wraps one.
var (
	// ErrMissing: no statement at all.
	ErrMissing = errors.New("decision: no signed statement")
	// ErrUnknownKey: the statement names a key the verifier does not hold.
	ErrUnknownKey = errors.New("decision: unknown key")
	// ErrKeyNotValid: the key is outside its validity window.
	ErrKeyNotValid = errors.New("decision: key outside its validity window")
	// ErrBadSignature: the signature does not verify (forged or altered).
	ErrBadSignature = errors.New("decision: signature does not verify")
	// ErrMalformed: the payload is not a canonical statement of this version.
	ErrMalformed = errors.New("decision: malformed statement")
	// ErrExpired: the statement is past its expiry (or issued in the future).
	ErrExpired = errors.New("decision: statement expired")
	// ErrMisbound: the statement is for another workflow, run, step or decision.
	ErrMisbound = errors.New("decision: statement bound to another decision")
	// ErrReplayed: the statement's nonce was used already.
	ErrReplayed = errors.New("decision: statement replayed")
	// ErrNoSecondFactor: the decision needs a second factor the token lacks.
	ErrNoSecondFactor = errors.New("decision: a second authentication factor (otp) is required")
)

// Statement is one decision as the API server verified it.
type Statement struct {
	// V is the encoding version ([Version]).
	V int `json:"v"`
	// WorkflowID is the incident workflow; RunID its first run id (stable
	// across continue-as-new, new for every incident reusing the id).
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// StepID is the step decided on (approve, deny), or the asset picked
	// (reroute); empty otherwise.
	StepID   string `json:"step_id"`
	Decision Kind   `json:"decision"`
	// Subject is the actor ("keycloak:<realm>/<username>"), Username the
	// token's preferred_username, Roles its realm roles.
	Subject  string   `json:"subject"`
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
	SourceIP string   `json:"source_ip"`
	// SessionID and TokenID are the token's sid and jti.
	SessionID string `json:"sid"`
	TokenID   string `json:"jti"`
	// AMR and ACR are the token's authentication methods and context class.
	AMR    []string `json:"amr"`
	ACR    string   `json:"acr"`
	Reason string   `json:"reason"`
	// IssuedAt and ExpiresAt bound when the statement counts.
	IssuedAt  time.Time `json:"iat"`
	ExpiresAt time.Time `json:"exp"`
	// Nonce is unique per statement: a second use is a replay.
	Nonce string `json:"nonce"`
}

// SecondFactorMethods are the amr values (RFC 8176) that prove a second
// factor: a one-time password, multiple factors, or a hardware-held key
// (the platform's own HSM-signed system decisions).
var SecondFactorMethods = []string{"otp", "mfa", "hwk"}

// HasSecondFactor reports whether the statement's amr shows a second factor.
func (s Statement) HasSecondFactor() bool {
	return slices.ContainsFunc(s.AMR, func(m string) bool { return slices.Contains(SecondFactorMethods, m) })
}

// normalize puts s in canonical form: UTC millisecond times, non-nil lists.
func (s Statement) normalize() Statement {
	s.V = Version
	s.IssuedAt = s.IssuedAt.UTC().Truncate(time.Millisecond)
	s.ExpiresAt = s.ExpiresAt.UTC().Truncate(time.Millisecond)
	if s.Roles == nil {
		s.Roles = []string{}
	}
	if s.AMR == nil {
		s.AMR = []string{}
	}
	return s
}

// Encode returns the canonical encoding of s (the bytes that are signed).
func (s Statement) Encode() ([]byte, error) {
	b, err := json.Marshal(s.normalize())
	if err != nil {
		return nil, fmt.Errorf("decision: encode statement: %w", err)
	}
	return b, nil
}

// Decode parses a canonical encoding; anything else is [ErrMalformed].
func Decode(payload []byte) (Statement, error) {
	var s Statement
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Statement{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Statement{}, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	if s.V != Version {
		return Statement{}, fmt.Errorf("%w: version %d, want %d", ErrMalformed, s.V, Version)
	}
	again, err := s.Encode()
	if err != nil || !bytes.Equal(again, payload) {
		return Statement{}, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	if !s.Decision.Valid() || s.WorkflowID == "" || s.RunID == "" || s.Subject == "" || s.Nonce == "" {
		return Statement{}, fmt.Errorf("%w: decision, workflow, run, subject and nonce are required", ErrMalformed)
	}
	return s, nil
}

// Signed is a statement with the API server's signature: what the
// workflow messages carry and the ledger stores.
type Signed struct {
	// Payload is the canonical encoding of the statement.
	Payload []byte `json:"payload"`
	// KeyID names the key that signed ([KeyID]).
	KeyID string `json:"key_id"`
	// Sig is the ASN.1 DER ECDSA P-256 signature over [Digest] of Payload.
	Sig []byte `json:"sig"`
}

// Empty reports whether no statement is present.
func (s Signed) Empty() bool { return len(s.Payload) == 0 && len(s.Sig) == 0 && s.KeyID == "" }

// Digest is the SHA-256 of the domain tag and the payload: what is signed.
func Digest(payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(payload)
	return h.Sum(nil)
}

// Signer signs a SHA-256 digest with an ECDSA P-256 key and names the key;
// keys.DecisionSigner (HSM) and [LocalSigner] (tests, tools) implement it.
type Signer interface {
	SignDigest(ctx context.Context, digest []byte) (keyID string, sig []byte, err error)
}

// Sign encodes s canonically and signs it.
func Sign(ctx context.Context, signer Signer, s Statement) (Signed, error) {
	if !s.Decision.Valid() {
		return Signed{}, fmt.Errorf("decision: sign: unknown decision %q", s.Decision)
	}
	payload, err := s.Encode()
	if err != nil {
		return Signed{}, err
	}
	id, sig, err := signer.SignDigest(ctx, Digest(payload))
	if err != nil {
		return Signed{}, fmt.Errorf("decision: sign: %w", err)
	}
	return Signed{Payload: payload, KeyID: id, Sig: sig}, nil
}

// Binding is what a statement must be about to count for a message.
type Binding struct {
	WorkflowID string
	RunID      string
	StepID     string
	Decision   Kind
}

// Check refuses a statement bound to another workflow, run, step or
// decision ([ErrMisbound]).
func (s Statement) Check(b Binding) error {
	var bad []string
	if s.WorkflowID != b.WorkflowID {
		bad = append(bad, fmt.Sprintf("workflow %q, not %q", s.WorkflowID, b.WorkflowID))
	}
	if s.RunID != b.RunID {
		bad = append(bad, fmt.Sprintf("run %q, not %q", s.RunID, b.RunID))
	}
	if s.StepID != b.StepID {
		bad = append(bad, fmt.Sprintf("step %q, not %q", s.StepID, b.StepID))
	}
	if s.Decision != b.Decision {
		bad = append(bad, fmt.Sprintf("decision %q, not %q", s.Decision, b.Decision))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrMisbound, strings.Join(bad, "; "))
	}
	return nil
}

// DefaultTTL is how long a statement counts after it is signed: long
// enough for the message to reach the workflow, short enough that a
// captured statement is soon worthless (its nonce also works only once).
const DefaultTTL = 5 * time.Minute

// NewNonce returns a random nonce for a statement.
func NewNonce() string { return uuid.NewString() }
