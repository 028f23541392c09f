// Package ledgertest is the conformance suite every [ledger.Store] must
// pass, and a software signing key standing in for the HSM in tests.
//
// A store's test calls [Run] with a function returning a fresh, empty store.
// The store it returns must also implement [Tamperer] (a test wrapper that
// reaches past the append-only protection, as an attacker with disk access
// would), so the suite can prove that tampering is detected.
package ledgertest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/ledger"
)

// Keys is a software ECDSA P-256 key that signs digests, like the HSM's
// CKM_ECDSA. It implements [ledger.Signer] and [ledger.Verifier]; the
// verifier trusts only its own key id.
type Keys struct {
	id   string
	priv *ecdsa.PrivateKey
}

// NewKeys returns a fresh key named id.
func NewKeys(t testing.TB, id string) *Keys {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return &Keys{id: id, priv: priv}
}

// Sign implements [ledger.Signer].
func (k *Keys) Sign(_ context.Context, digest []byte) (ledger.Signature, error) {
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest)
	if err != nil {
		return ledger.Signature{}, fmt.Errorf("ledgertest: sign: %w", err)
	}
	return ledger.Signature{KeyID: k.id, Sig: sig}, nil
}

// Verify implements [ledger.Verifier].
func (k *Keys) Verify(_ context.Context, digest []byte, sig ledger.Signature) error {
	if sig.KeyID != k.id {
		return fmt.Errorf("ledgertest: key %q is not trusted", sig.KeyID)
	}
	if !ecdsa.VerifyASN1(&k.priv.PublicKey, digest, sig.Sig) {
		return errors.New("ledgertest: signature does not verify")
	}
	return nil
}

// Tamperer changes stored rows behind the store's back. Column names are
// the SQL column names shared by both stores: incident_id, seq, version,
// at, actor, action, target, params_sha256, outcome, outcome_detail,
// record, idempotency_key, prev_hash, hash (entries) and head_hash, signature, seq
// (checkpoints).
type Tamperer interface {
	// CorruptEntry changes one byte (one microsecond for at, one for
	// integers) of column of entry (incident, seq).
	CorruptEntry(t testing.TB, incident string, seq int64, column string)
	// ReplaceEntry overwrites every column of entry (e.Incident, e.Seq).
	ReplaceEntry(t testing.TB, e ledger.Entry)
	// EditRecord replaces old by new in the record of entry (incident, seq).
	EditRecord(t testing.TB, incident string, seq int64, old, new string)
	// DeleteEntry removes entry (incident, seq).
	DeleteEntry(t testing.TB, incident string, seq int64)
	// CorruptCheckpoint changes one byte of column of the latest checkpoint
	// of incident.
	CorruptCheckpoint(t testing.TB, incident string, column string)
}

// Request returns a valid append request for (incident, seq); its content
// depends only on its arguments.
func Request(incident string, seq int64) ledger.AppendRequest {
	return ledger.AppendRequest{
		Incident:       incident,
		Seq:            seq,
		Actor:          "system:worker",
		Action:         "contain.isolate_container",
		Target:         fmt.Sprintf("pve/node1/lxc/%d", 100+seq),
		Params:         map[string]any{"vmid": 100 + seq, "reason": "suspicious egress", "seq": seq},
		Outcome:        ledger.Outcome{Status: ledger.StatusOK, Detail: "done"},
		IdempotencyKey: fmt.Sprintf("%s/step-%d", incident, seq),
	}
}

// AppendRetrying appends r, retrying ErrGap until the predecessor appears
// or ctx ends, as a Temporal activity retry would.
func AppendRetrying(ctx context.Context, l *ledger.Ledger, r ledger.AppendRequest) (ledger.Entry, error) {
	for {
		e, err := l.Append(ctx, r)
		if !errors.Is(err, ledger.ErrGap) {
			return e, err
		}
		select {
		case <-ctx.Done():
			return ledger.Entry{}, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// fixture holds one fresh store for a subtest.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	store ledger.Store
	l     *ledger.Ledger
	keys  *Keys
}

func newFixture(t *testing.T, newStore func(t *testing.T) ledger.Store) *fixture {
	t.Helper()
	s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return &fixture{t: t, ctx: ctx, store: s, l: ledger.New(s, nil), keys: NewKeys(t, "test-ledger-key")}
}

// sub returns f for subtest t.
func (f *fixture) sub(t *testing.T) *fixture {
	g := *f
	g.t = t
	return &g
}

func (f *fixture) append(r ledger.AppendRequest) ledger.Entry {
	f.t.Helper()
	e, err := f.l.Append(f.ctx, r)
	if err != nil {
		f.t.Fatalf("append %s seq %d: %v", r.Incident, r.Seq, err)
	}
	return e
}

func (f *fixture) chain(incident string, n int64) []ledger.Entry {
	f.t.Helper()
	out := make([]ledger.Entry, 0, n)
	for seq := int64(1); seq <= n; seq++ {
		out = append(out, f.append(Request(incident, seq)))
	}
	return out
}

func (f *fixture) entries(incident string) []ledger.Entry {
	f.t.Helper()
	var out []ledger.Entry
	if err := f.store.Entries(f.ctx, incident, func(e ledger.Entry) error { out = append(out, e); return nil }); err != nil {
		f.t.Fatalf("entries %s: %v", incident, err)
	}
	return out
}

func (f *fixture) checkpoint(incident string) ledger.Checkpoint {
	f.t.Helper()
	c, err := f.l.Checkpoint(f.ctx, incident, f.keys)
	if err != nil {
		f.t.Fatalf("checkpoint %s: %v", incident, err)
	}
	return c
}

func (f *fixture) tamperer() Tamperer {
	f.t.Helper()
	tm, ok := f.store.(Tamperer)
	if !ok {
		f.t.Fatalf("store %T does not implement ledgertest.Tamperer; the tamper tests cannot run", f.store)
	}
	return tm
}

// wantBroken verifies incident and requires the first problem to be kind at seq.
func (f *fixture) wantBroken(incident string, seq int64, kind ledger.ProblemKind) {
	f.t.Helper()
	rep, err := f.l.Verify(f.ctx, incident, f.keys)
	if !errors.Is(err, ledger.ErrBroken) {
		f.t.Fatalf("Verify: err = %v, want ErrBroken", err)
	}
	if rep.Problem == nil || rep.Problem.Seq != seq || rep.Problem.Kind != kind {
		f.t.Fatalf("Verify problem = %+v, want seq %d kind %s", rep.Problem, seq, kind)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("seq %d", seq)) {
		f.t.Fatalf("Verify error %q does not name seq %d", err, seq)
	}
}

// Run runs the conformance suite. newStore returns a fresh, empty store
// that also implements [Tamperer]; it registers its own cleanup.
func Run(t *testing.T, newStore func(t *testing.T) ledger.Store) {
	tests := []struct {
		name string
		run  func(f *fixture)
	}{
		{"chain links and genesis", testChain},
		{"entry round trips", testRoundTrip},
		{"decision round trips and verifies", testDecision},
		{"retry returns stored entry", testRetry},
		{"conflicts", testConflicts},
		{"a different record conflicts", testRecordConflict},
		{"gaps", testGaps},
		{"invalid requests", testInvalid},
		{"incidents are independent", testIndependent},
		{"concurrent incidents", testConcurrentIncidents},
		{"concurrent retries and parallel steps converge", testConverge},
		{"checkpoint and verify", testCheckpoint},
		{"export and verify export", testExport},
		{"tampered column is named", testTamperColumns},
		{"edited record is named", testTamperRecord},
		{"deleted entry is a gap", testTamperDelete},
		{"rewritten chain is caught by checkpoint", testTamperRewrite},
		{"forged checkpoint", testTamperCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(newFixture(t, newStore))
		})
	}
}

func testChain(f *fixture) {
	got := f.chain("inc-chain", 5)
	if !got[0].PrevHash.IsZero() {
		f.t.Fatalf("genesis prev hash = %s, want zeros", got[0].PrevHash)
	}
	for i, e := range got {
		if e.Hash != e.ComputeHash() {
			f.t.Fatalf("entry %d: hash %s, recomputed %s", e.Seq, e.Hash, e.ComputeHash())
		}
		if i > 0 && e.PrevHash != got[i-1].Hash {
			f.t.Fatalf("entry %d: prev %s, want %s", e.Seq, e.PrevHash, got[i-1].Hash)
		}
	}
	head, err := f.store.Head(f.ctx, "inc-chain")
	if err != nil || !reflect.DeepEqual(head, got[4]) {
		f.t.Fatalf("Head = %+v, %v; want %+v", head, err, got[4])
	}
	if _, err := f.store.Head(f.ctx, "inc-none"); !errors.Is(err, ledger.ErrNotFound) {
		f.t.Fatalf("Head of unknown incident: err = %v, want ErrNotFound", err)
	}
	rep, err := f.l.Verify(f.ctx, "inc-chain", f.keys)
	if err != nil || !rep.OK() || rep.Entries != 5 || rep.HeadSeq != 5 || rep.HeadHash != got[4].Hash {
		f.t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func testRoundTrip(f *fixture) {
	at := time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.FixedZone("CET", 3600))
	r := Request("inc-rt", 1)
	r.Time = at
	r.Outcome = ledger.Outcome{Status: ledger.StatusDenied, Detail: "approval rejected by keycloak:iru/bob — ünïcode"}
	r.Actor = "keycloak:iru/alice"
	in := f.append(r)
	stored := f.entries("inc-rt")
	if len(stored) != 1 || !reflect.DeepEqual(stored[0], in) {
		f.t.Fatalf("stored %+v, appended %+v", stored, in)
	}
	if want := at.UTC().Truncate(time.Microsecond); !in.Time.Equal(want) || in.Time.Location() != time.UTC {
		f.t.Fatalf("time = %v, want %v in UTC", in.Time, want)
	}
	d, err := ledger.ParamsDigest(r.Params)
	if err != nil || in.ParamsDigest != d {
		f.t.Fatalf("params digest = %s, want %s (%v)", in.ParamsDigest, d, err)
	}
	want, err := ledger.CanonicalJSON(r.Params)
	if err != nil || !bytes.Equal(stored[0].Record, want) {
		f.t.Fatalf("stored record = %s, want the canonical params %s (%v)", stored[0].Record, want, err)
	}
}

// testRecordConflict: a retry whose record differs (the same action with
// other parameters) is a conflict, not a silent second version.
func testRecordConflict(f *fixture) {
	f.append(Request("inc-rec", 1))
	r := Request("inc-rec", 1)
	r.Params = map[string]any{"vmid": 101, "reason": "other", "seq": 1}
	if _, err := f.l.Append(f.ctx, r); !errors.Is(err, ledger.ErrConflict) {
		f.t.Fatalf("append with another record: err = %v, want ErrConflict", err)
	}
}

// testTamperRecord edits the stored record of an entry, as valid JSON, the
// way an attacker would rewrite history: Verify names that entry.
func testTamperRecord(f *fixture) {
	tm := f.tamperer()
	f.chain("inc-tamper-record", 4)
	f.checkpoint("inc-tamper-record")
	tm.EditRecord(f.t, "inc-tamper-record", 3, "suspicious egress", "routine egress")
	got := f.entries("inc-tamper-record")
	if !strings.Contains(string(got[2].Record), "routine egress") {
		f.t.Fatalf("the tamperer did not change the record: %s", got[2].Record)
	}
	f.wantBroken("inc-tamper-record", 3, ledger.ProblemRecordMismatch)

	// The same edit in an export is caught as well.
	var buf bytes.Buffer
	f.chain("inc-tamper-export", 2)
	if err := f.l.Export(f.ctx, "inc-tamper-export", &buf); err != nil {
		f.t.Fatal(err)
	}
	edited := strings.Replace(buf.String(), "suspicious egress", "routine egress", 1)
	if edited == buf.String() {
		f.t.Fatal("the export holds no record to edit")
	}
	rep, err := ledger.VerifyExport(f.ctx, "inc-tamper-export", strings.NewReader(edited), f.keys)
	if !errors.Is(err, ledger.ErrBroken) || rep.Problem.Seq != 1 || rep.Problem.Kind != ledger.ProblemRecordMismatch {
		f.t.Fatalf("VerifyExport of an edited record = %+v, %v", rep, err)
	}
}

// testDecision: an entry's decision is stored as fields, read back equal,
// covered by the chain, and part of what a retry must repeat.
func testDecision(f *fixture) {
	dec := &ledger.Decision{Approvals: 1, Quorum: 2, StatementKeyID: "dk-1",
		StatementSig: []byte{0, 1, 2, 0xff}, StatementPayload: []byte(`{"sub":"keycloak:iru/alice","roles":["ir-lead"]}`)}
	f.append(Request("inc-dec", 1))
	r := Request("inc-dec", 2)
	r.Decision = dec
	in := f.append(r)
	f.append(Request("inc-dec", 3))
	stored := f.entries("inc-dec")
	if len(stored) != 3 || stored[0].Decision != nil || stored[2].Decision != nil {
		f.t.Fatalf("stored = %+v", stored)
	}
	got := stored[1]
	if d := got.Decision; d == nil || d.Approvals != 1 || d.Quorum != 2 || d.StatementKeyID != "dk-1" ||
		string(d.StatementSig) != string(dec.StatementSig) || string(d.StatementPayload) != string(dec.StatementPayload) {
		f.t.Fatalf("stored decision = %+v, appended %+v", got.Decision, dec)
	}
	if got.Hash != in.Hash || got.Hash != got.ComputeHash() {
		f.t.Fatalf("stored hash %s, appended %s, recomputed %s", got.Hash, in.Hash, got.ComputeHash())
	}
	if rep, err := f.l.Verify(f.ctx, "inc-dec", f.keys); err != nil || !rep.OK() || rep.Entries != 3 {
		f.t.Fatalf("Verify = %+v, %v", rep, err)
	}
	again, err := f.l.Append(f.ctx, r)
	if err != nil || again.Hash != in.Hash {
		f.t.Fatalf("retry with the same decision = %+v, %v; want the stored entry", again, err)
	}
	other := r
	other.Decision = &ledger.Decision{Approvals: 2, Quorum: 2, StatementKeyID: dec.StatementKeyID, StatementSig: dec.StatementSig, StatementPayload: dec.StatementPayload}
	if _, err := f.l.Append(f.ctx, other); !errors.Is(err, ledger.ErrConflict) {
		f.t.Fatalf("retry with another approval count: err = %v, want ErrConflict", err)
	}
	none := r
	none.Decision = nil
	if _, err := f.l.Append(f.ctx, none); !errors.Is(err, ledger.ErrConflict) {
		f.t.Fatalf("retry without the decision: err = %v, want ErrConflict", err)
	}
}

func testRetry(f *fixture) {
	first := f.append(Request("inc-retry", 1))
	r := Request("inc-retry", 1)
	r.Time = time.Now().Add(time.Hour) // a retry happens later
	again := f.append(r)
	if !reflect.DeepEqual(again, first) {
		f.t.Fatalf("retry returned %+v, want the stored %+v", again, first)
	}
	second := f.append(Request("inc-retry", 2))
	if got := f.append(Request("inc-retry", 2)); !reflect.DeepEqual(got, second) {
		f.t.Fatalf("retry of seq 2 returned %+v, want %+v", got, second)
	}
	if n := len(f.entries("inc-retry")); n != 2 {
		f.t.Fatalf("%d entries after retries, want 2", n)
	}
}

func testConflicts(f *fixture) {
	f.chain("inc-conflict", 2)
	tests := []struct {
		name string
		mod  func(r *ledger.AppendRequest)
	}{
		{"other outcome", func(r *ledger.AppendRequest) { r.Outcome.Status = ledger.StatusFailed }},
		{"other detail", func(r *ledger.AppendRequest) { r.Outcome.Detail = "other" }},
		{"other actor", func(r *ledger.AppendRequest) { r.Actor = "keycloak:iru/mallory" }},
		{"other action", func(r *ledger.AppendRequest) { r.Action = "recover.restore" }},
		{"other target", func(r *ledger.AppendRequest) { r.Target = "pve/node1/lxc/999" }},
		{"other params", func(r *ledger.AppendRequest) { r.Params = map[string]any{"vmid": 999} }},
		{"other idempotency key", func(r *ledger.AppendRequest) { r.IdempotencyKey = "fresh" }},
		{"key reused at next seq", func(r *ledger.AppendRequest) { r.Seq = 3 }},
	}
	for _, tt := range tests {
		f.t.Run(tt.name, func(t *testing.T) {
			r := Request("inc-conflict", 2)
			tt.mod(&r)
			if _, err := f.l.Append(f.ctx, r); !errors.Is(err, ledger.ErrConflict) {
				t.Fatalf("Append: err = %v, want ErrConflict", err)
			}
		})
	}
	if n := len(f.entries("inc-conflict")); n != 2 {
		f.t.Fatalf("%d entries after conflicts, want 2", n)
	}
}

func testGaps(f *fixture) {
	if _, err := f.l.Append(f.ctx, Request("inc-gap", 2)); !errors.Is(err, ledger.ErrGap) {
		f.t.Fatalf("seq 2 on empty incident: err = %v, want ErrGap", err)
	}
	f.append(Request("inc-gap", 1))
	if _, err := f.l.Append(f.ctx, Request("inc-gap", 3)); !errors.Is(err, ledger.ErrGap) {
		f.t.Fatalf("seq 3 after 1: err = %v, want ErrGap", err)
	}
	f.append(Request("inc-gap", 2))
	f.append(Request("inc-gap", 3))
	if n := len(f.entries("inc-gap")); n != 3 {
		f.t.Fatalf("%d entries, want 3", n)
	}
}

func testInvalid(f *fixture) {
	tests := []struct {
		name string
		mod  func(r *ledger.AppendRequest)
	}{
		{"no incident", func(r *ledger.AppendRequest) { r.Incident = "" }},
		{"seq zero", func(r *ledger.AppendRequest) { r.Seq = 0 }},
		{"no actor", func(r *ledger.AppendRequest) { r.Actor = "" }},
		{"actor without issuer", func(r *ledger.AppendRequest) { r.Actor = "alice" }},
		{"no action", func(r *ledger.AppendRequest) { r.Action = "" }},
		{"no status", func(r *ledger.AppendRequest) { r.Outcome.Status = "" }},
		{"malformed status", func(r *ledger.AppendRequest) { r.Outcome.Status = "Not OK" }},
		{"no idempotency key", func(r *ledger.AppendRequest) { r.IdempotencyKey = "" }},
		{"params not json", func(r *ledger.AppendRequest) { r.Params = func() {} }},
		{"long target", func(r *ledger.AppendRequest) { r.Target = strings.Repeat("x", ledger.MaxTargetLen+1) }},
		{"bad utf-8", func(r *ledger.AppendRequest) { r.Action = "\xff" }},
	}
	for _, tt := range tests {
		f.t.Run(tt.name, func(t *testing.T) {
			r := Request("inc-invalid", 1)
			tt.mod(&r)
			if _, err := f.l.Append(f.ctx, r); !errors.Is(err, ledger.ErrInvalid) {
				t.Fatalf("Append: err = %v, want ErrInvalid", err)
			}
		})
	}
}

func testIndependent(f *fixture) {
	a := f.chain("inc-a", 2)
	b := f.chain("inc-b", 2)
	if !b[0].PrevHash.IsZero() || a[1].Hash == b[1].Hash {
		f.t.Fatalf("incidents share a chain: %+v %+v", a, b)
	}
}

func testConcurrentIncidents(f *fixture) {
	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inc := fmt.Sprintf("inc-par-%d", w)
			for seq := int64(1); seq <= perWorker; seq++ {
				if _, err := f.l.Append(f.ctx, Request(inc, seq)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Fatal(err)
	}
	for w := range workers {
		inc := fmt.Sprintf("inc-par-%d", w)
		rep, err := f.l.Verify(f.ctx, inc, f.keys)
		if err != nil || rep.Entries != perWorker {
			f.t.Fatalf("Verify %s = %+v, %v", inc, rep, err)
		}
	}
}

// testConverge runs every step of one incident in its own goroutine (like
// parallel playbook branches), each step by several concurrent attempts
// (like retried activities), starting in random order and retrying gaps.
// All attempts of a step must get the same stored entry, and the incident
// must end with one complete chain.
func testConverge(f *fixture) {
	const attempts, steps = 3, 15
	got := make([][]ledger.Entry, attempts)
	for a := range got {
		got[a] = make([]ledger.Entry, steps+1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, attempts*steps)
	for _, i := range mrand.Perm(attempts * steps) {
		a, seq := i%attempts, int64(i/attempts+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := AppendRetrying(f.ctx, f.l, Request("inc-converge", seq))
			if err != nil {
				errs <- err
				return
			}
			got[a][seq] = e
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Fatal(err)
	}
	stored := f.entries("inc-converge")
	if len(stored) != steps {
		f.t.Fatalf("%d entries stored, want %d", len(stored), steps)
	}
	for a := range attempts {
		for _, s := range stored {
			if !reflect.DeepEqual(got[a][s.Seq], s) {
				f.t.Fatalf("attempt %d got %+v for seq %d, stored %+v", a, got[a][s.Seq], s.Seq, s)
			}
		}
	}
	if rep, err := f.l.Verify(f.ctx, "inc-converge", f.keys); err != nil {
		f.t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func testCheckpoint(f *fixture) {
	if _, err := f.l.Checkpoint(f.ctx, "inc-cp", f.keys); !errors.Is(err, ledger.ErrNotFound) {
		f.t.Fatalf("checkpoint of empty incident: err = %v, want ErrNotFound", err)
	}
	es := f.chain("inc-cp", 3)
	c := f.checkpoint("inc-cp")
	if c.Seq != 3 || c.HeadHash != es[2].Hash || c.Signature.KeyID != "test-ledger-key" {
		f.t.Fatalf("checkpoint = %+v", c)
	}
	f.append(Request("inc-cp", 4)) // entries after a checkpoint are fine
	rep, err := f.l.Verify(f.ctx, "inc-cp", f.keys)
	if err != nil || rep.Checkpoints != 1 || rep.CheckpointSeq != 3 || rep.HeadSeq != 4 {
		f.t.Fatalf("Verify = %+v, %v", rep, err)
	}
	// A verifier that does not trust the key rejects the checkpoint.
	other := NewKeys(f.t, "someone-else")
	if _, err := f.l.Verify(f.ctx, "inc-cp", other); !errors.Is(err, ledger.ErrBroken) {
		f.t.Fatalf("Verify with untrusted key: err = %v, want ErrBroken", err)
	}
	// A checkpoint by a key the verifier does not trust is named.
	if _, err := f.l.Checkpoint(f.ctx, "inc-cp", other); err != nil {
		f.t.Fatal(err)
	}
	f.wantBroken("inc-cp", 4, ledger.ProblemBadSignature)
}

func testExport(f *fixture) {
	f.chain("inc-exp", 3)
	f.checkpoint("inc-exp")
	var buf bytes.Buffer
	if err := f.l.Export(f.ctx, "inc-exp", &buf); err != nil {
		f.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		f.t.Fatalf("export has %d lines, want 4:\n%s", len(lines), buf.String())
	}
	var first struct {
		Type  string       `json:"type"`
		Entry ledger.Entry `json:"entry"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Type != "entry" || first.Entry.Seq != 1 {
		f.t.Fatalf("first line %s: %+v, %v", lines[0], first, err)
	}
	rep, err := ledger.VerifyExport(f.ctx, "inc-exp", bytes.NewReader(buf.Bytes()), f.keys)
	if err != nil || rep.Entries != 3 || rep.CheckpointSeq != 3 {
		f.t.Fatalf("VerifyExport = %+v, %v", rep, err)
	}
	edited := strings.Replace(buf.String(), `"actor":"system:worker"`, `"actor":"system:wOrker"`, 1)
	rep, err = ledger.VerifyExport(f.ctx, "inc-exp", strings.NewReader(edited), f.keys)
	if !errors.Is(err, ledger.ErrBroken) || rep.Problem.Seq != 1 || rep.Problem.Kind != ledger.ProblemHashMismatch {
		f.t.Fatalf("VerifyExport of edited export = %+v, %v", rep, err)
	}
}

func testTamperColumns(f *fixture) {
	tm := f.tamperer()
	tests := []struct {
		column string
		want   ledger.ProblemKind
	}{
		{"actor", ledger.ProblemHashMismatch},
		{"action", ledger.ProblemHashMismatch},
		{"target", ledger.ProblemHashMismatch},
		{"params_sha256", ledger.ProblemHashMismatch},
		{"outcome", ledger.ProblemHashMismatch},
		{"outcome_detail", ledger.ProblemHashMismatch},
		{"idempotency_key", ledger.ProblemHashMismatch},
		{"at", ledger.ProblemHashMismatch},
		{"hash", ledger.ProblemHashMismatch},
		{"prev_hash", ledger.ProblemPrevMismatch},
		{"version", ledger.ProblemMalformed},
	}
	for _, tt := range tests {
		f.t.Run(tt.column, func(t *testing.T) {
			f := f.sub(t)
			inc := "inc-tamper-" + tt.column
			f.chain(inc, 4)
			tm.CorruptEntry(t, inc, 3, tt.column)
			f.wantBroken(inc, 3, tt.want)
		})
	}
}

func testTamperDelete(f *fixture) {
	tm := f.tamperer()
	f.chain("inc-del", 5)
	f.checkpoint("inc-del")
	tm.DeleteEntry(f.t, "inc-del", 2)
	f.wantBroken("inc-del", 2, ledger.ProblemGap)

	// Removing the tail leaves a consistent chain; the checkpoint catches it.
	f.chain("inc-tail", 5)
	f.checkpoint("inc-tail")
	tm.DeleteEntry(f.t, "inc-tail", 5)
	f.wantBroken("inc-tail", 5, ledger.ProblemCheckpointMismatch)
}

func testTamperRewrite(f *fixture) {
	tm := f.tamperer()
	es := f.chain("inc-rewrite", 5)
	f.checkpoint("inc-rewrite")
	// The attacker edits entry 2 and recomputes every later hash, so the
	// chain itself is consistent again; only the signed head disagrees.
	prev := es[0].Hash
	for _, e := range es[1:] {
		if e.Seq == 2 {
			e.Actor = "keycloak:iru/mallory"
		}
		e.PrevHash = prev
		e.Hash = e.ComputeHash()
		prev = e.Hash
		tm.ReplaceEntry(f.t, e)
	}
	f.wantBroken("inc-rewrite", 5, ledger.ProblemCheckpointMismatch)
}

func testTamperCheckpoint(f *fixture) {
	tm := f.tamperer()
	for _, column := range []string{"signature", "head_hash", "seq"} {
		f.t.Run(column, func(t *testing.T) {
			f := f.sub(t)
			inc := "inc-forge-" + column
			f.chain(inc, 3)
			f.checkpoint(inc)
			tm.CorruptCheckpoint(t, inc, column)
			rep, err := f.l.Verify(f.ctx, inc, f.keys)
			if !errors.Is(err, ledger.ErrBroken) || rep.Problem.Kind != ledger.ProblemBadSignature {
				t.Fatalf("Verify = %+v, %v; want bad signature", rep, err)
			}
		})
	}
}
