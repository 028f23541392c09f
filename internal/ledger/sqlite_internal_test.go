package ledger

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// concurrencyStore is a [batchStore] that counts the store calls running at
// the same time (the highest count in max), the batches and the entries
// they hold.
type concurrencyStore struct {
	batchStore
	running, max, batches, entries atomic.Int64
}

func (c *concurrencyStore) enter() func() {
	n := c.running.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	return func() { c.running.Add(-1) }
}

func (c *concurrencyStore) insertAll(ctx context.Context, es []Entry) error {
	defer c.enter()()
	c.batches.Add(1)
	c.entries.Add(int64(len(es)))
	return c.batchStore.insertAll(ctx, es)
}

func (c *concurrencyStore) insertOne(ctx context.Context, e Entry) (Entry, error) {
	defer c.enter()()
	return c.batchStore.insertOne(ctx, e)
}

// TestSQLiteCommitsOneBatchAtATime checks that the SQLite store's group
// commit runs one write transaction at a time, and that concurrent appends
// still share it. SQLite has one write lock: a second BEGIN IMMEDIATE waits
// for it in SQLite's busy handler, which sleeps 1, 2, 5, 10… ms between
// tries, so concurrent batches made 8 chains appending one entry at a time
// slower than one batch after another (the appends that arrive meanwhile
// join the next batch).
func TestSQLiteCommitsOneBatchAtATime(t *testing.T) {
	const chains, perChain = 8, 40
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	counter := &concurrencyStore{batchStore: s}
	s.group.store = counter
	l := New(s, nil)

	var wg sync.WaitGroup
	for c := range chains {
		wg.Go(func() {
			inc := fmt.Sprintf("inc-%d", c)
			for seq := int64(1); seq <= perChain; seq++ {
				_, err := l.Append(ctx, AppendRequest{Incident: inc, Seq: seq, Actor: "system:test", Action: "test.step",
					Target: "t", Params: map[string]any{"seq": seq}, Outcome: Outcome{Status: StatusOK},
					IdempotencyKey: fmt.Sprintf("%s/%d", inc, seq)})
				if err != nil {
					t.Errorf("append %s seq %d: %v", inc, seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for c := range chains {
		inc := fmt.Sprintf("inc-%d", c)
		if rep, err := l.Verify(ctx, inc, nil); err != nil || rep.Entries != perChain {
			t.Errorf("chain %s: Verify = %+v, %v; want %d entries", inc, rep, err, perChain)
		}
	}
	batches, entries := counter.batches.Load(), counter.entries.Load()
	t.Logf("%d entries in %d batches, at most %d store calls at once", entries, batches, counter.max.Load())
	if m := counter.max.Load(); m != 1 {
		t.Errorf("%d write transactions ran at the same time, want 1", m)
	}
	if entries != chains*perChain || batches >= entries {
		t.Errorf("%d entries in %d batches: want all %d, several per batch", entries, batches, chains*perChain)
	}
}
