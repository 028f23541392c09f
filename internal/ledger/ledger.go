// Package ledger is the tamper-evident audit ledger of IRU Responder.
//
// Every action taken on an incident is appended as an [Entry] to a chain
// kept per incident: each entry carries the SHA-256 hash of the previous one
// (the first entry points at 32 zero bytes), and its own hash covers all its
// fields (see [Entry.ComputeHash] for the exact encoding). An entry keeps
// its record, the structured account of the event as canonical JSON, and
// hashes the record's SHA-256. Changing, removing or reordering a stored
// entry or editing its record therefore breaks the chain, and
// [Ledger.Verify] names the first entry where it breaks.
//
// The sequence number of an entry is chosen by the incident workflow, so
// appends need no global lock: the store's unique (incident, seq) key orders
// them. Appends are group-committed (many entries per transaction, see
// group.go): an entry is chained onto a predecessor that is committed or in
// the same transaction, and Append returns once its transaction committed.
// A retried append with the same content returns the stored entry, an append
// whose predecessor is not there yet fails with [ErrGap] (retry it), and an
// append that disagrees with what is stored fails with [ErrConflict].
//
// A [Checkpoint] signs the head of a chain with a [Signer] (an HSM key in
// production), which also catches removal of entries at the tail. Entries
// and checkpoints live in a [Store]: [PostgresStore] for deployments and
// [SQLiteStore] as the embedded default. Both reject UPDATE and DELETE.
package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors callers branch on.
var (
	// ErrConflict is returned by [Ledger.Append] when the (incident, seq)
	// slot or the idempotency key is already taken by different content.
	// It is not retryable.
	ErrConflict = errors.New("ledger: conflicting entry")
	// ErrGap is returned by [Ledger.Append] when entry seq-1 does not exist
	// yet. It is retryable: a parallel step appends the missing entry.
	ErrGap = errors.New("ledger: previous entry missing")
	// ErrInvalid is returned for a malformed request.
	ErrInvalid = errors.New("ledger: invalid request")
	// ErrNotFound is returned when an incident has no entries.
	ErrNotFound = errors.New("ledger: not found")
	// ErrBroken is returned by [Ledger.Verify] when the chain or a
	// checkpoint does not verify; the [Report] names the first problem.
	ErrBroken = errors.New("ledger: chain does not verify")
)

// Digest is a SHA-256 value. It prints and marshals as lowercase hex.
type Digest [sha256.Size]byte

// String returns the digest as lowercase hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether all bytes are zero (the genesis prev hash).
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 2*sha256.Size {
		return fmt.Errorf("ledger: digest %q: want %d hex characters", b, 2*sha256.Size)
	}
	if _, err := hex.Decode(d[:], b); err != nil {
		return fmt.Errorf("ledger: digest: %w", err)
	}
	return nil
}

func digestFrom(b []byte, what string) (Digest, error) {
	var d Digest
	if len(b) != len(d) {
		return d, fmt.Errorf("ledger: %s: %d bytes, want %d", what, len(b), len(d))
	}
	copy(d[:], b)
	return d, nil
}

// Status is the outcome class of an audited action: a lowercase token
// ([a-z][a-z_]*, at most 32 bytes). The constants are the common ones.
type Status string

// Outcome statuses.
const (
	StatusOK        Status = "ok"        // the action did what it was asked
	StatusFailed    Status = "failed"    // the action was tried and failed
	StatusDenied    Status = "denied"    // the action was refused (approval, policy, authorization)
	StatusApproved  Status = "approved"  // a responder approved a step
	StatusSkipped   Status = "skipped"   // the action was deliberately not run
	StatusCancelled Status = "cancelled" // the action was stopped before it finished
	StatusTimedOut  Status = "timed_out" // the action did not finish in time
)

var statusRE = regexp.MustCompile(`^[a-z][a-z_]{0,31}$`)

func (s Status) valid() bool { return statusRE.MatchString(string(s)) }

// Outcome is the result of an audited action.
type Outcome struct {
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"` // short, human readable; no secrets
}

// Decision is what a responder decided, on the entry that records it (an
// approval, denial, escalation, acknowledgement, abort, or a refused
// decision): fields, not text in the outcome detail.
type Decision struct {
	// Approvals is the number of distinct approvals of the step so far and
	// Quorum how many it needs (approvals only).
	Approvals int `json:"approvals,omitempty"`
	Quorum    int `json:"quorum,omitempty"`
	// StatementKeyID, StatementSig and StatementPayload are the signed
	// decision statement as the API server signed it: `starter audit
	// verify` re-verifies it.
	StatementKeyID   string `json:"statement_key_id,omitempty"`
	StatementSig     []byte `json:"statement_sig,omitempty"`
	StatementPayload []byte `json:"statement_payload,omitempty"`
}

// HasStatement reports whether d holds a signed statement.
func (d *Decision) HasStatement() bool { return d != nil && len(d.StatementPayload) > 0 }

// equal reports whether d and o hold the same decision (both may be nil).
func (d *Decision) equal(o *Decision) bool {
	if d == nil || o == nil {
		return d == o
	}
	return d.Approvals == o.Approvals && d.Quorum == o.Quorum && d.StatementKeyID == o.StatementKeyID &&
		bytes.Equal(d.StatementSig, o.StatementSig) && bytes.Equal(d.StatementPayload, o.StatementPayload)
}

// Field limits, in bytes.
const (
	MaxIncidentLen = 128
	MaxActorLen    = 256
	MaxActionLen   = 128
	MaxTargetLen   = 512
	MaxDetailLen   = 8192
	MaxKeyLen      = 256
	// MaxStatementLen bounds a decision's statement payload and signature.
	MaxStatementLen = 8192
	// MaxRecordLen bounds an entry's record (its canonical JSON).
	MaxRecordLen = 4 << 20
)

// Entry is one link of an incident's chain.
type Entry struct {
	Version        int       `json:"version"`            // hash encoding version (HashVersion)
	Incident       string    `json:"incident"`           // incident id
	Seq            int64     `json:"seq"`                // 1, 2, 3… per incident
	Time           time.Time `json:"time"`               // UTC, microsecond precision
	Actor          string    `json:"actor"`              // verified identity, "issuer:subject" (keycloak:iru/alice, system:worker)
	Action         string    `json:"action"`             // what was done (an activity name)
	Target         string    `json:"target"`             // what it was done to
	ParamsDigest   Digest    `json:"params_sha256"`      // SHA-256 of Record, the canonical JSON of the request's Params
	Outcome        Outcome   `json:"outcome"`            // result
	Decision       *Decision `json:"decision,omitempty"` // a responder's decision, on the entries that record one
	IdempotencyKey string    `json:"idempotency_key"`    // unique per incident; retries reuse it
	PrevHash       Digest    `json:"prev_hash"`          // Hash of entry seq-1; zero for seq 1
	Hash           Digest    `json:"hash"`               // ComputeHash of this entry
	// Record is the canonical JSON of the request's Params; nil on the
	// entries of stores made before records were kept, which hold only
	// the digest.
	Record json.RawMessage `json:"record,omitempty"`
}

// recordMatches reports whether e's record is the one its digest (and so
// its hash) covers; an entry without a record has nothing to check.
func (e Entry) recordMatches() bool {
	return e.Record == nil || sha256.Sum256(e.Record) == e.ParamsDigest
}

// sameContent reports whether e and o record the same action. Time, prev
// hash and hash are not compared: a retried append carries a new time, and
// the chain fields are the store's. The record is compared through its
// digest.
func (e Entry) sameContent(o Entry) bool {
	return e.Incident == o.Incident && e.Seq == o.Seq && e.Actor == o.Actor &&
		e.Action == o.Action && e.Target == o.Target && e.ParamsDigest == o.ParamsDigest &&
		e.Outcome == o.Outcome && e.Decision.equal(o.Decision) && e.IdempotencyKey == o.IdempotencyKey
}

// seal sets the prev hash and the hash of e.
func (e Entry) seal(prev Digest) Entry {
	e.PrevHash = prev
	e.Hash = e.ComputeHash()
	return e
}

// resolve decides what an append of e returns when stored already holds
// (e.Incident, e.Seq).
func resolve(stored, e Entry) (Entry, error) {
	if stored.sameContent(e) {
		return stored, nil
	}
	return Entry{}, fmt.Errorf("%w: incident %s seq %d already holds %s by %s (idempotency key %q)",
		ErrConflict, e.Incident, e.Seq, stored.Action, stored.Actor, stored.IdempotencyKey)
}

// AppendRequest asks for one entry to be appended.
type AppendRequest struct {
	Incident       string
	Seq            int64     // assigned by the incident workflow, from 1
	Time           time.Time // when the action happened; zero means now
	Actor          string    // verified identity, "issuer:subject"
	Action         string
	Target         string
	Params         any // the entry's record: stored as canonical JSON (see CanonicalJSON) and hashed
	Outcome        Outcome
	Decision       *Decision // set on the entries that record a responder's decision
	IdempotencyKey string    // required; the same on every retry of the append
}

// entry validates r and returns the entry to store, without chain fields.
func (r AppendRequest) entry(now time.Time) (Entry, error) {
	var p []string
	check := func(name, v string, max int) {
		switch {
		case v == "":
			p = append(p, name+" is empty")
		case len(v) > max:
			p = append(p, fmt.Sprintf("%s is longer than %d bytes", name, max))
		case !utf8.ValidString(v):
			p = append(p, name+" is not valid UTF-8")
		}
	}
	check("incident", r.Incident, MaxIncidentLen)
	check("actor", r.Actor, MaxActorLen)
	check("action", r.Action, MaxActionLen)
	check("idempotency key", r.IdempotencyKey, MaxKeyLen)
	if len(r.Target) > MaxTargetLen || !utf8.ValidString(r.Target) {
		p = append(p, fmt.Sprintf("target must be valid UTF-8 of at most %d bytes", MaxTargetLen))
	}
	if len(r.Outcome.Detail) > MaxDetailLen || !utf8.ValidString(r.Outcome.Detail) {
		p = append(p, fmt.Sprintf("outcome detail must be valid UTF-8 of at most %d bytes", MaxDetailLen))
	}
	if iss, sub, ok := strings.Cut(r.Actor, ":"); r.Actor != "" && (!ok || iss == "" || sub == "") {
		p = append(p, fmt.Sprintf("actor %q is not of the form issuer:subject", r.Actor))
	}
	if d := r.Decision; d != nil {
		if d.Approvals < 0 || d.Quorum < 0 {
			p = append(p, "decision approvals and quorum must not be negative")
		}
		if len(d.StatementKeyID) > MaxKeyLen || !utf8.ValidString(d.StatementKeyID) ||
			len(d.StatementSig) > MaxStatementLen || len(d.StatementPayload) > MaxStatementLen {
			p = append(p, fmt.Sprintf("decision statement must be at most %d bytes with a UTF-8 key id", MaxStatementLen))
		}
	}
	if r.Seq < 1 {
		p = append(p, fmt.Sprintf("seq %d is not positive", r.Seq))
	}
	if !r.Outcome.Status.valid() {
		p = append(p, fmt.Sprintf("outcome status %q is not a lowercase token", r.Outcome.Status))
	}
	record, err := CanonicalJSON(r.Params)
	switch {
	case err != nil:
		p = append(p, "params: "+err.Error())
	case len(record) > MaxRecordLen:
		p = append(p, fmt.Sprintf("params are %d bytes of JSON, more than %d", len(record), MaxRecordLen))
	}
	if len(p) > 0 {
		return Entry{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p, "; "))
	}
	t := r.Time
	if t.IsZero() {
		t = now
	}
	return Entry{
		Version:        HashVersion,
		Incident:       r.Incident,
		Seq:            r.Seq,
		Time:           t.UTC().Truncate(time.Microsecond),
		Actor:          r.Actor,
		Action:         r.Action,
		Target:         r.Target,
		ParamsDigest:   sha256.Sum256(record),
		Record:         record,
		Outcome:        r.Outcome,
		Decision:       r.Decision,
		IdempotencyKey: r.IdempotencyKey,
	}, nil
}

// Signature is a signature made by a [Signer].
type Signature struct {
	KeyID string `json:"key_id"` // which key signed
	Sig   []byte `json:"sig"`    // the signature bytes
}

// Signer signs checkpoint digests. The HSM key manager implements it.
type Signer interface {
	Sign(ctx context.Context, digest []byte) (Signature, error)
}

// Verifier checks signatures made by a [Signer]. It returns an error when
// the signature is not valid for digest or the key is not trusted.
type Verifier interface {
	Verify(ctx context.Context, digest []byte, sig Signature) error
}

// Checkpoint is a signed statement of an incident's chain head.
type Checkpoint struct {
	Version   int       `json:"version"`   // encoding version (HashVersion)
	Incident  string    `json:"incident"`  // incident id
	Seq       int64     `json:"seq"`       // last seq covered
	HeadHash  Digest    `json:"head_hash"` // Hash of entry Seq
	Time      time.Time `json:"time"`      // when it was made, UTC, microseconds
	Signature Signature `json:"signature"` // over Digest()
}

// Store keeps entries and checkpoints. Implementations must reject updates
// and deletes of stored rows, and must be safe for concurrent use.
type Store interface {
	// Insert chains e (which has every field but PrevHash and Hash) onto
	// entry e.Seq-1, in one transaction: it returns the stored entry when
	// (e.Incident, e.Seq) already holds the same content, ErrConflict when
	// it holds other content or e's idempotency key is used at another
	// seq, and ErrGap when e.Seq > 1 and entry e.Seq-1 does not exist.
	Insert(ctx context.Context, e Entry) (Entry, error)
	// Entries calls fn for each entry of incident in seq order.
	Entries(ctx context.Context, incident string, fn func(Entry) error) error
	// Head returns the entry with the highest seq, or ErrNotFound.
	Head(ctx context.Context, incident string) (Entry, error)
	// AddCheckpoint stores c.
	AddCheckpoint(ctx context.Context, c Checkpoint) error
	// Checkpoints calls fn for each checkpoint of incident, oldest first.
	Checkpoints(ctx context.Context, incident string, fn func(Checkpoint) error) error
	// Close releases the store.
	Close() error
}

// Ledger is the audit ledger over a [Store].
type Ledger struct {
	store Store
	now   func() time.Time
}

// New returns a ledger over store. now is the clock (time.Now when nil).
func New(store Store, now func() time.Time) *Ledger {
	if now == nil {
		now = time.Now
	}
	return &Ledger{store: store, now: now}
}

// Store returns the ledger's store.
func (l *Ledger) Store() Store { return l.store }

// Append appends an entry, idempotently: see [Store.Insert] and the package
// doc for the results. The returned entry is the stored one.
func (l *Ledger) Append(ctx context.Context, r AppendRequest) (Entry, error) {
	e, err := r.entry(l.now())
	if err != nil {
		return Entry{}, err
	}
	return l.store.Insert(ctx, e)
}

// Pending is an append queued by [Ledger.AppendAsync].
type Pending struct {
	wait func() (Entry, error)
}

// Wait waits until the append's transaction committed and returns its
// result, as [Ledger.Append] would: the stored entry, or an error.
func (p *Pending) Wait() (Entry, error) { return p.wait() }

// asyncInserter is a [Store] that can hold several appends in flight.
type asyncInserter interface {
	// insertAsync queues e; inserts queued one after the other are taken in
	// that order. The returned function waits for the result of Insert.
	insertAsync(ctx context.Context, e Entry) func() (Entry, error)
}

// AppendAsync queues an append and returns without waiting for it to be
// stored: call Wait for the result, which is the one [Ledger.Append] would
// return. It pipelines one chain's appends: entries of a chain queued in
// seq order (each AppendAsync returned before the next is called) are
// chained and committed in that order, several per transaction, without
// waiting for each other's commit. The chain stays gap-free: an entry is
// stored only if its predecessor is, and when a predecessor fails its
// successors fail with [ErrGap] (or [ErrConflict]) as they would one at a
// time. Cancelling ctx ends only the wait; the entry may still be stored,
// and a retry with the same content returns it. On a store that cannot
// pipeline, AppendAsync appends before it returns.
func (l *Ledger) AppendAsync(ctx context.Context, r AppendRequest) *Pending {
	e, err := r.entry(l.now())
	if err != nil {
		return &Pending{wait: func() (Entry, error) { return Entry{}, err }}
	}
	if a, ok := l.store.(asyncInserter); ok {
		return &Pending{wait: a.insertAsync(ctx, e)}
	}
	out, err := l.store.Insert(ctx, e)
	return &Pending{wait: func() (Entry, error) { return out, err }}
}

// Checkpoint signs the current head of incident's chain and stores the
// checkpoint. It fails with ErrNotFound when the incident has no entries.
func (l *Ledger) Checkpoint(ctx context.Context, incident string, signer Signer) (Checkpoint, error) {
	head, err := l.store.Head(ctx, incident)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: checkpoint %s: %w", incident, err)
	}
	c := Checkpoint{
		Version:  HashVersion,
		Incident: incident,
		Seq:      head.Seq,
		HeadHash: head.Hash,
		Time:     l.now().UTC().Truncate(time.Microsecond),
	}
	d := c.Digest()
	sig, err := signer.Sign(ctx, d[:])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: checkpoint %s: sign: %w", incident, err)
	}
	if sig.KeyID == "" || len(sig.Sig) == 0 {
		return Checkpoint{}, fmt.Errorf("ledger: checkpoint %s: signer returned an empty key id or signature", incident)
	}
	c.Signature = sig
	if err := l.store.AddCheckpoint(ctx, c); err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: checkpoint %s: store: %w", incident, err)
	}
	return c, nil
}

// Verify recomputes incident's chain from the store and checks every
// checkpoint's signature and that it matches the chain. When something does
// not verify it returns the report together with an error wrapping
// ErrBroken; Report.Problem names the first broken entry. Other errors are
// failures to read the store. An incident with neither entries nor
// checkpoints verifies as empty; entries after the last checkpoint
// (Report.CheckpointSeq) are chained but not yet signed, so removing them
// is only detectable once a later checkpoint or an export covers them.
func (l *Ledger) Verify(ctx context.Context, incident string, verifier Verifier) (Report, error) {
	v := newChainVerifier(incident)
	if err := l.store.Entries(ctx, incident, func(e Entry) error { v.entry(e); return nil }); err != nil {
		return Report{}, fmt.Errorf("ledger: verify %s: read entries: %w", incident, err)
	}
	if err := l.store.Checkpoints(ctx, incident, func(c Checkpoint) error { v.checkpoint(ctx, c, verifier); return nil }); err != nil {
		return Report{}, fmt.Errorf("ledger: verify %s: read checkpoints: %w", incident, err)
	}
	return v.result()
}
