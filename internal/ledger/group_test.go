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

// TestGroupCommitForkRace attacks one chain through two stores on the same
// database (two worker processes, each with its own group commit and
// remembered heads): for every seq, two honest appenders of the same entry
// and a forger of a different entry at that seq race, all at once and in
// random order, retrying gaps. The chain must end gap-free with exactly one
// entry per seq, every caller that got an entry must have got the stored
// one, every loser must get ErrConflict, and the chain must verify.
func TestGroupCommitForkRace(t *testing.T) {
	cases := []struct {
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
	for _, tc := range cases {
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
