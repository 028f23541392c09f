package ledger

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ProblemKind says why a chain does not verify.
type ProblemKind string

// Problem kinds.
const (
	ProblemHashMismatch       ProblemKind = "hash_mismatch"       // stored hash differs from the recomputed one
	ProblemRecordMismatch     ProblemKind = "record_mismatch"     // the record is not the one the entry's digest covers
	ProblemPrevMismatch       ProblemKind = "prev_mismatch"       // prev hash differs from the previous entry's hash
	ProblemGap                ProblemKind = "gap"                 // an entry is missing
	ProblemOrder              ProblemKind = "order"               // an entry is duplicated or out of order
	ProblemMalformed          ProblemKind = "malformed"           // wrong incident or unknown version
	ProblemCheckpointMismatch ProblemKind = "checkpoint_mismatch" // a signed checkpoint disagrees with the chain
	ProblemBadSignature       ProblemKind = "bad_signature"       // a checkpoint's signature does not verify
)

// Problem names the first place where a chain does not verify.
type Problem struct {
	Seq    int64       `json:"seq"`    // entry (or checkpoint head) where it breaks
	Kind   ProblemKind `json:"kind"`   // why
	Detail string      `json:"detail"` // human readable
}

// String describes the problem.
func (p Problem) String() string {
	return fmt.Sprintf("seq %d: %s: %s", p.Seq, p.Kind, p.Detail)
}

// Report is the result of verifying a chain.
type Report struct {
	Incident      string   `json:"incident"`
	Entries       int      `json:"entries"`        // entries read
	HeadSeq       int64    `json:"head_seq"`       // highest seq read
	HeadHash      Digest   `json:"head_hash"`      // its stored hash
	Checkpoints   int      `json:"checkpoints"`    // checkpoints read
	CheckpointSeq int64    `json:"checkpoint_seq"` // highest seq covered by a valid checkpoint; entries after it are not yet signed
	Problem       *Problem `json:"problem,omitempty"`
}

// OK reports whether the chain verified.
func (r Report) OK() bool { return r.Problem == nil }

// chainVerifier checks entries in seq order, then checkpoints.
type chainVerifier struct {
	r      Report
	expect int64
	prev   Digest
	hashes map[int64]Digest // recomputed-and-matching hashes by seq
}

func newChainVerifier(incident string) *chainVerifier {
	return &chainVerifier{r: Report{Incident: incident}, expect: 1, hashes: map[int64]Digest{}}
}

func (v *chainVerifier) fail(seq int64, kind ProblemKind, format string, args ...any) {
	if v.r.Problem == nil {
		v.r.Problem = &Problem{Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, args...)}
	}
}

func (v *chainVerifier) entry(e Entry) {
	v.r.Entries++
	v.r.HeadSeq, v.r.HeadHash = e.Seq, e.Hash
	switch {
	case e.Incident != v.r.Incident:
		v.fail(e.Seq, ProblemMalformed, "entry belongs to incident %q", e.Incident)
	case e.Version != HashVersion:
		v.fail(e.Seq, ProblemMalformed, "unknown version %d", e.Version)
	case e.Seq > v.expect:
		if e.Seq == v.expect+1 {
			v.fail(v.expect, ProblemGap, "entry %d is missing", v.expect)
		} else {
			v.fail(v.expect, ProblemGap, "entries %d to %d are missing", v.expect, e.Seq-1)
		}
	case e.Seq < v.expect:
		v.fail(e.Seq, ProblemOrder, "entry %d appears again after entry %d", e.Seq, v.expect-1)
	case e.PrevHash != v.prev:
		v.fail(e.Seq, ProblemPrevMismatch, "prev hash %s, but entry %d has hash %s", e.PrevHash, e.Seq-1, v.prev)
	default:
		if got := e.ComputeHash(); got != e.Hash {
			v.fail(e.Seq, ProblemHashMismatch, "stored hash %s, recomputed %s", e.Hash, got)
		} else if !e.recordMatches() {
			v.fail(e.Seq, ProblemRecordMismatch, "record has SHA-256 %s, the entry's hash covers %s", Digest(sha256.Sum256(e.Record)), e.ParamsDigest)
		} else {
			v.hashes[e.Seq] = e.Hash
		}
	}
	v.prev = e.Hash
	v.expect = e.Seq + 1
}

func (v *chainVerifier) checkpoint(ctx context.Context, c Checkpoint, verifier Verifier) {
	v.r.Checkpoints++
	if c.Incident != v.r.Incident || c.Version != HashVersion {
		v.fail(c.Seq, ProblemMalformed, "checkpoint of incident %q version %d", c.Incident, c.Version)
		return
	}
	if verifier == nil {
		v.fail(c.Seq, ProblemBadSignature, "no verifier given for the checkpoint signed by %q", c.Signature.KeyID)
		return
	}
	d := c.Digest()
	if err := verifier.Verify(ctx, d[:], c.Signature); err != nil {
		v.fail(c.Seq, ProblemBadSignature, "checkpoint signed by %q at %s: %v", c.Signature.KeyID, c.Time.Format("2006-01-02T15:04:05.999999Z07:00"), err)
		return
	}
	if c.Seq > v.r.HeadSeq {
		v.fail(v.r.HeadSeq+1, ProblemCheckpointMismatch, "signed checkpoint covers entries up to %d, chain ends at %d", c.Seq, v.r.HeadSeq)
		return
	}
	h, ok := v.hashes[c.Seq]
	if !ok {
		// The entry is missing or broken; the entry walk already named it.
		v.fail(c.Seq, ProblemCheckpointMismatch, "signed checkpoint covers entry %d, which does not verify", c.Seq)
		return
	}
	if h != c.HeadHash {
		v.fail(c.Seq, ProblemCheckpointMismatch, "signed head hash %s, chain has %s", c.HeadHash, h)
		return
	}
	v.r.CheckpointSeq = max(v.r.CheckpointSeq, c.Seq)
}

func (v *chainVerifier) result() (Report, error) {
	if p := v.r.Problem; p != nil {
		return v.r, fmt.Errorf("%w: incident %s: %s", ErrBroken, v.r.Incident, p)
	}
	return v.r, nil
}

// exportLine is one line of an export.
type exportLine struct {
	Type       string      `json:"type"` // "entry" or "checkpoint"
	Entry      *Entry      `json:"entry,omitempty"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// Export writes incident's entries (in seq order) and then its checkpoints
// (oldest first) to w as JSON Lines: {"type":"entry","entry":{…}} and
// {"type":"checkpoint","checkpoint":{…}}. [VerifyExport] checks such a file
// without access to the store.
func (l *Ledger) Export(ctx context.Context, incident string, w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := l.store.Entries(ctx, incident, func(e Entry) error {
		return enc.Encode(exportLine{Type: "entry", Entry: &e})
	}); err != nil {
		return fmt.Errorf("ledger: export %s: entries: %w", incident, err)
	}
	if err := l.store.Checkpoints(ctx, incident, func(c Checkpoint) error {
		return enc.Encode(exportLine{Type: "checkpoint", Checkpoint: &c})
	}); err != nil {
		return fmt.Errorf("ledger: export %s: checkpoints: %w", incident, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ledger: export %s: %w", incident, err)
	}
	return nil
}

// VerifyExport verifies an export written by [Ledger.Export] for incident,
// exactly as [Ledger.Verify] verifies the store.
func VerifyExport(ctx context.Context, incident string, r io.Reader, verifier Verifier) (Report, error) {
	v := newChainVerifier(incident)
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var checkpoints []Checkpoint
	for line := 1; ; line++ {
		var l exportLine
		err := dec.Decode(&l)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Report{}, fmt.Errorf("ledger: verify export: record %d: %w", line, err)
		}
		switch {
		case l.Type == "entry" && l.Entry != nil && len(checkpoints) == 0:
			v.entry(*l.Entry)
		case l.Type == "checkpoint" && l.Checkpoint != nil:
			checkpoints = append(checkpoints, *l.Checkpoint)
		default:
			return Report{}, fmt.Errorf("ledger: verify export: record %d: unexpected %q record", line, l.Type)
		}
	}
	for _, c := range checkpoints {
		v.checkpoint(ctx, c, verifier)
	}
	return v.result()
}
