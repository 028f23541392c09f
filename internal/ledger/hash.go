package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
)

// HashVersion is the version of the entry and checkpoint encodings that this
// package writes and verifies.
const HashVersion = 1

// Domain tags: the first field of each encoding, so an entry encoding can
// never be mistaken for a checkpoint encoding and vice versa.
const (
	entryDomain      = "iru-ledger/entry"
	checkpointDomain = "iru-ledger/checkpoint"
)

// encoder writes length-prefixed fields into a hash.
type encoder struct{ h hash.Hash }

func (w encoder) bytes(b []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	w.h.Write(n[:])
	w.h.Write(b)
}

func (w encoder) str(s string) { w.bytes([]byte(s)) }

func (w encoder) u16(v uint16) {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	w.bytes(b[:])
}

func (w encoder) i64(v int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	w.bytes(b[:])
}

// ComputeHash returns the hash of e: SHA-256 over the concatenation of the
// fields below, in this order, each written as a 4-byte big-endian length
// followed by that many bytes:
//
//  1. the domain tag "iru-ledger/entry" (ASCII)
//  2. Version, 2 bytes big-endian (1)
//  3. Incident, UTF-8
//  4. Seq, 8 bytes big-endian two's complement
//  5. Time as Unix microseconds, 8 bytes big-endian two's complement
//  6. Actor, UTF-8
//  7. Action, UTF-8
//  8. Target, UTF-8
//  9. ParamsDigest, 32 bytes
//  10. Outcome.Status, UTF-8
//  11. Outcome.Detail, UTF-8
//  12. IdempotencyKey, UTF-8
//  13. PrevHash, 32 bytes
//
// and, only on an entry with a [Decision]:
//
//  14. Decision.Approvals, 8 bytes big-endian two's complement
//  15. Decision.Quorum, 8 bytes big-endian two's complement
//  16. Decision.StatementKeyID, UTF-8
//  17. Decision.StatementSig
//  18. Decision.StatementPayload
//
// The length prefixes make the encoding unambiguous (moving bytes from one
// field to the next changes it, and an entry with a decision has more
// fields than one without), so changing any field changes the hash.
// Stored hashes are never recomputed with a newer version: a future
// encoding gets a new Version and both are verified.
func (e Entry) ComputeHash() Digest {
	h := sha256.New()
	w := encoder{h}
	w.str(entryDomain)
	w.u16(uint16(e.Version))
	w.str(e.Incident)
	w.i64(e.Seq)
	w.i64(e.Time.UnixMicro())
	w.str(e.Actor)
	w.str(e.Action)
	w.str(e.Target)
	w.bytes(e.ParamsDigest[:])
	w.str(string(e.Outcome.Status))
	w.str(e.Outcome.Detail)
	w.str(e.IdempotencyKey)
	w.bytes(e.PrevHash[:])
	if dec := e.Decision; dec != nil {
		w.i64(int64(dec.Approvals))
		w.i64(int64(dec.Quorum))
		w.str(dec.StatementKeyID)
		w.bytes(dec.StatementSig)
		w.bytes(dec.StatementPayload)
	}
	var d Digest
	h.Sum(d[:0])
	return d
}

// Digest returns what a [Signer] signs for c: SHA-256 over, in the same
// length-prefixed form as [Entry.ComputeHash], the domain tag
// "iru-ledger/checkpoint", Version (2 bytes), Incident, Seq (8 bytes),
// HeadHash (32 bytes) and Time as Unix microseconds (8 bytes). The key id is
// not signed: the verifier decides which keys it trusts.
func (c Checkpoint) Digest() Digest {
	h := sha256.New()
	w := encoder{h}
	w.str(checkpointDomain)
	w.u16(uint16(c.Version))
	w.str(c.Incident)
	w.i64(c.Seq)
	w.bytes(c.HeadHash[:])
	w.i64(c.Time.UnixMicro())
	var d Digest
	h.Sum(d[:0])
	return d
}

// CanonicalJSON returns v as canonical JSON: v is marshalled with
// encoding/json, then re-encoded with object keys sorted, no insignificant
// whitespace, no HTML escaping, and numbers exactly as first written. Two
// values that marshal to the same JSON document (whatever the struct field
// or map order) give the same bytes. It is an entry's record.
func CanonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("ledger: canonical json: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("ledger: canonical json: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(tree); err != nil {
		return nil, fmt.Errorf("ledger: canonical json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParamsDigest returns the SHA-256 of the canonical JSON of params.
func ParamsDigest(params any) (Digest, error) {
	b, err := CanonicalJSON(params)
	if err != nil {
		return Digest{}, fmt.Errorf("params: %w", err)
	}
	return sha256.Sum256(b), nil
}
