//go:build integration

package ledger_test

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/ledger/ledgertest"
)

// twoStores open two stores on one database (two worker processes), for
// each backend.
var twoStores = []struct {
	name string
	open func(t *testing.T) [2]ledger.Store
}{
	{"postgres", func(t *testing.T) [2]ledger.Store {
		env := newPGEnv(t)
		return [2]ledger.Store{ledger.NewPostgresStore(env.app), ledger.NewPostgresStore(env.app)}
	}},
	{"sqlite", func(t *testing.T) [2]ledger.Store {
		path := filepath.Join(t.TempDir(), "ledger.db")
		var s [2]ledger.Store
		for i := range s {
			st, err := ledger.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatalf("open sqlite: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			s[i] = st
		}
		return s
	}},
}

// TestGroupCommitForkRace attacks one chain through two stores on the same
// database (two worker processes, each with its own group commit and
// remembered heads): for every seq, two honest appenders of the same entry
// and a forger of a different entry at that seq race, all at once and in
// random order, retrying gaps. The chain must end gap-free with exactly one
// entry per seq, every caller that got an entry must have got the stored
// one, every loser must get ErrConflict, and the chain must verify.
func TestGroupCommitForkRace(t *testing.T) {
	for _, tc := range twoStores {
		t.Run(tc.name, func(t *testing.T) {
			stores := tc.open(t)
			ledgers := [2]*ledger.Ledger{ledger.New(stores[0], nil), ledger.New(stores[1], nil)}
			forkRace(t, ledgers)
		})
	}
}

func forkRace(t *testing.T, ledgers [2]*ledger.Ledger) {
	const (
		inc     = "inc-fork"
		steps   = 40
		callers = 3 // honest via store 0, honest via store 1, forger via either
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	forged := func(seq int64) ledger.AppendRequest {
		r := ledgertest.Request(inc, seq)
		r.Action, r.Target = "contain.release_container", "pve/node1/lxc/666"
		r.IdempotencyKey = fmt.Sprintf("forged/%d", seq)
		return r
	}
	type result struct {
		req ledger.AppendRequest
		e   ledger.Entry
		err error
	}
	results := make([]result, steps*callers)
	var wg sync.WaitGroup
	for _, i := range mrand.Perm(steps * callers) {
		seq, who := int64(i/callers+1), i%callers
		req, l := ledgertest.Request(inc, seq), ledgers[who%2]
		if who == 2 {
			req, l = forged(seq), ledgers[mrand.IntN(2)]
		}
		wg.Go(func() {
			e, err := ledgertest.AppendRetrying(ctx, l, req)
			results[i] = result{req, e, err}
		})
	}
	wg.Wait()

	var stored []ledger.Entry
	if err := ledgers[0].Store().Entries(ctx, inc, func(e ledger.Entry) error { stored = append(stored, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(stored) != steps {
		t.Fatalf("%d entries stored, want %d", len(stored), steps)
	}
	var prev ledger.Digest
	for i, e := range stored {
		if e.Seq != int64(i+1) || e.PrevHash != prev || e.Hash != e.ComputeHash() {
			t.Fatalf("entry %d: seq %d, prev %s (want %s): the chain has a gap, a duplicate or a bad link", i, e.Seq, e.PrevHash, prev)
		}
		prev = e.Hash
	}
	winners := 0
	for _, r := range results {
		want := stored[r.req.Seq-1]
		switch {
		case r.err == nil:
			if !reflect.DeepEqual(r.e, want) {
				t.Errorf("seq %d: append returned %+v, stored %+v", r.req.Seq, r.e, want)
			}
			if r.req.IdempotencyKey != want.IdempotencyKey {
				t.Errorf("seq %d: append of key %q succeeded but %q is stored", r.req.Seq, r.req.IdempotencyKey, want.IdempotencyKey)
			}
		case errors.Is(r.err, ledger.ErrConflict):
			if r.req.IdempotencyKey == want.IdempotencyKey {
				t.Errorf("seq %d: the stored entry's own append failed: %v", r.req.Seq, r.err)
			}
		default:
			t.Errorf("seq %d: %v", r.req.Seq, r.err)
		}
		if r.err == nil && r.req.IdempotencyKey == fmt.Sprintf("forged/%d", r.req.Seq) {
			winners++
		}
	}
	for i := range ledgers {
		if rep, err := ledgers[i].Verify(ctx, inc, nil); err != nil || rep.Entries != steps {
			t.Fatalf("Verify through store %d = %+v, %v", i, rep, err)
		}
	}
	t.Logf("%d of %d seqs went to the forger first; every other caller got ErrConflict", winners, steps)
}

// TestPipelinedAppends queues many appends of one chain with AppendAsync
// (each queued before the previous one is stored, so later ones wait for
// the batch that holds their predecessor) and attacks the pipeline: a
// forged entry for a slot of the pipeline, a reused idempotency key (its
// successor must fail with ErrGap), an entry queued past the head, and a
// batch that fails as a whole because another process (a second store on
// the same database) took a slot first. Every caller must get the exact
// result of a one-at-a-time append, and the chain must verify.
func TestPipelinedAppends(t *testing.T) {
	for _, tc := range twoStores {
		t.Run(tc.name, func(t *testing.T) {
			stores := tc.open(t)
			pipelineAttacks(t, ledger.New(stores[0], nil), ledger.New(stores[1], nil))
		})
	}
}

func pipelineAttacks(t *testing.T, l, other *ledger.Ledger) {
	const inc = "inc-pipe"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	forged := func(seq int64) ledger.AppendRequest {
		r := ledgertest.Request(inc, seq)
		r.Action, r.Target = "contain.release_container", "pve/node1/lxc/666"
		r.IdempotencyKey = fmt.Sprintf("forged/%d", seq)
		return r
	}
	type queued struct {
		req ledger.AppendRequest
		p   *ledger.Pending
	}
	var qs []queued
	enqueue := func(r ledger.AppendRequest) { qs = append(qs, queued{r, l.AppendAsync(ctx, r)}) }

	// 1..300 in order, with a forged 150 queued right after the honest one.
	const n = 300
	for seq := int64(1); seq <= n; seq++ {
		enqueue(ledgertest.Request(inc, seq))
		if seq == n/2 {
			enqueue(forged(seq))
		}
	}
	// 301 reuses the key of 200: refused, and 302, queued behind it, has no
	// predecessor.
	reused := ledgertest.Request(inc, n+1)
	reused.IdempotencyKey = ledgertest.Request(inc, 200).IdempotencyKey
	enqueue(reused)
	enqueue(ledgertest.Request(inc, n+2))
	// Past the head: nothing before it is queued.
	enqueue(ledgertest.Request(inc, n+10))

	stored := map[int64]ledger.Entry{}
	for _, q := range qs {
		e, err := q.p.Wait()
		switch seq, key := q.req.Seq, q.req.IdempotencyKey; {
		case key == fmt.Sprintf("forged/%d", seq):
			if !errors.Is(err, ledger.ErrConflict) {
				t.Errorf("forged seq %d: %+v, %v; want ErrConflict", seq, e, err)
			}
		case seq == n+1:
			if !errors.Is(err, ledger.ErrConflict) {
				t.Errorf("seq %d reusing a key: %+v, %v; want ErrConflict", seq, e, err)
			}
		case seq > n+1:
			if !errors.Is(err, ledger.ErrGap) {
				t.Errorf("seq %d without a predecessor: %+v, %v; want ErrGap", seq, e, err)
			}
		case err != nil:
			t.Fatalf("seq %d: %v", seq, err)
		default:
			stored[seq] = e
		}
	}
	got := chainOf(t, ctx, l, inc)
	if len(got) != n {
		t.Fatalf("%d entries stored, want %d", len(got), n)
	}
	for _, e := range got {
		if !reflect.DeepEqual(stored[e.Seq], e) {
			t.Fatalf("seq %d: append returned %+v, stored %+v", e.Seq, stored[e.Seq], e)
		}
	}

	// Another process takes n+1 with a forged entry; this ledger, which
	// remembers n as the head, pipelines n+1..n+8 in one batch that cannot
	// be stored as a whole. The honest n+1 is refused; the rest chain onto
	// the stored n+1, as they would one at a time.
	theirs, err := other.Append(ctx, forged(n+1))
	if err != nil {
		t.Fatalf("forger: %v", err)
	}
	qs = qs[:0]
	for seq := int64(n + 1); seq <= n+8; seq++ {
		enqueue(ledgertest.Request(inc, seq))
	}
	for _, q := range qs {
		e, err := q.p.Wait()
		switch {
		case q.req.Seq == n+1:
			if !errors.Is(err, ledger.ErrConflict) {
				t.Errorf("honest seq %d after the forger: %+v, %v; want ErrConflict", q.req.Seq, e, err)
			}
		case err != nil:
			t.Errorf("seq %d: %v", q.req.Seq, err)
		default:
			stored[e.Seq] = e
		}
	}
	got = chainOf(t, ctx, l, inc)
	if len(got) != n+8 || got[n].Hash != theirs.Hash || got[n+1].PrevHash != theirs.Hash {
		t.Fatalf("%d entries, seq %d = %+v; want %d entries chained onto the forger's %d", len(got), n+1, got[n], n+8, n+1)
	}
	for _, e := range got[n+1:] {
		if !reflect.DeepEqual(stored[e.Seq], e) {
			t.Fatalf("seq %d: append returned %+v, stored %+v", e.Seq, stored[e.Seq], e)
		}
	}
}

// chainOf reads incident's chain through l's store, checks that it is
// gap-free and hash-linked, and that it verifies.
func chainOf(t *testing.T, ctx context.Context, l *ledger.Ledger, incident string) []ledger.Entry {
	t.Helper()
	var got []ledger.Entry
	if err := l.Store().Entries(ctx, incident, func(e ledger.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	var prev ledger.Digest
	for i, e := range got {
		if e.Seq != int64(i+1) || e.PrevHash != prev || e.Hash != e.ComputeHash() {
			t.Fatalf("entry %d: seq %d, prev %s (want %s): a gap, a duplicate or a bad link", i, e.Seq, e.PrevHash, prev)
		}
		prev = e.Hash
	}
	if rep, err := l.Verify(ctx, incident, nil); err != nil || rep.Entries != len(got) {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	return got
}
