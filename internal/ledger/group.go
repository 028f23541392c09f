package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Group commit.
//
// Both stores send their appends through a [groupCommitter]: appends that
// arrive while commits are running queue up, and the next commit stores all
// of them in one transaction, so they share one fsync. One batch commits
// at a time, on both stores. SQLite's writers take turns on one write lock
// anyway. On PostgreSQL, four concurrent batches split the appenders that
// each wait for their own append (8 chains: 1.5 entries per commit), while
// one batch that first gathers the appenders the last commit released (see
// gather) stores them together (about 7 per commit). Every chain stays
// gap-free: an entry is only sealed onto a predecessor that is committed
// already (read from the store, or remembered after its commit) or is in
// the same all-or-nothing transaction. As batches commit one after the
// other, appends of one chain queued in order (see [Ledger.AppendAsync])
// commit in order, many per transaction; an append
// whose predecessor is neither stored nor in flight fails with [ErrGap]. An
// append returns after the transaction that holds its entry has committed.
//
// Inside a batch the appends are ordered by (incident, seq), so concurrent
// appenders of one chain that arrive out of order still chain in order.
// The predecessor's hash comes from the batch itself, from the committer's
// memory of the chain heads it stored or read (stored rows never change), or
// from one read of the store for the whole batch. When the batch cannot be
// stored as a whole (a slot or idempotency key taken by another process, a
// retried append), nothing of it is stored and each append of the batch
// runs again on its own through the store's one-entry path, which gives the
// exact [Store.Insert] results.

// slot names one entry of one chain.
type slot struct {
	incident string
	seq      int64
}

// chainHead is the last entry of a chain the committer knows to be stored.
type chainHead struct {
	seq  int64
	hash Digest
}

// batchStore is what the group committer needs from a store.
type batchStore interface {
	// lookup returns the stored entries among slots.
	lookup(ctx context.Context, slots []slot) (map[slot]Entry, error)
	// insertAll stores es, in this order, in one transaction: all or none.
	// It fails when any slot or idempotency key is taken.
	insertAll(ctx context.Context, es []Entry) error
	// insertOne appends e alone, with the results of [Store.Insert].
	insertOne(ctx context.Context, e Entry) (Entry, error)
}

// pendingAppend is one queued append and, once done is closed, its result.
type pendingAppend struct {
	ctx  context.Context
	e    Entry
	out  Entry
	err  error
	done chan struct{}
}

func (p *pendingAppend) finish(out Entry, err error) {
	p.out, p.err = out, err
	close(p.done)
}

// Group commit limits.
const (
	// maxBatch bounds the entries of one transaction.
	maxBatch = 512
	// maxBatchBytes bounds the size of one transaction's entries (their
	// records, details and statements; a record may be 4 MiB): a batch
	// ends after the entry that reaches it.
	maxBatchBytes = 8 << 20
	// maxHeads bounds the remembered chain heads; past it they are forgotten
	// and read from the store again.
	maxHeads = 1 << 16
	// maxGather bounds how long a batch waits for the appends of the
	// callers the last batch released (see gather).
	maxGather = 2 * time.Millisecond
	// commitTimeout bounds one batch's work on the store.
	commitTimeout = time.Minute
)

// groupCommitter batches appends to a [batchStore]. While appends are
// queued, one goroutine drains the queue, a batch at a time, and exits
// when it is empty.
type groupCommitter struct {
	store batchStore

	mu       sync.Mutex
	queue    []*pendingAppend
	draining bool                 // a goroutine drains the queue
	heads    map[string]chainHead // incident → newest entry known stored

	gatherFor  int           // appends gather waits for: the last batch's plus those queued while it committed
	lastCommit time.Duration // how long the last batch took to commit
	gathered   chan struct{} // while gather waits: closed when the queue holds gatherFor appends
}

// newGroupCommitter returns a group committer of store.
func newGroupCommitter(store batchStore) *groupCommitter {
	return &groupCommitter{store: store, heads: make(map[string]chainHead)}
}

// insertAsync queues e (enqueue) and returns the function that waits for
// its commit, its error naming the entry: a store's insertAsync.
func (g *groupCommitter) insertAsync(ctx context.Context, e Entry) func() (Entry, error) {
	p := g.enqueue(ctx, e)
	return func() (Entry, error) {
		out, err := p.wait()
		if err != nil {
			return Entry{}, fmt.Errorf("ledger: append %s seq %d: %w", e.Incident, e.Seq, err)
		}
		return out, nil
	}
}

// enqueue queues e and returns its pending append: appends enqueued one
// after the other are taken in that order, so an entry is never taken
// before its predecessor enqueued earlier.
func (g *groupCommitter) enqueue(ctx context.Context, e Entry) *pendingAppend {
	p := &pendingAppend{ctx: ctx, e: e, done: make(chan struct{})}
	if err := ctx.Err(); err != nil {
		p.finish(Entry{}, err)
		return p
	}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	if g.gathered != nil && len(g.queue) >= g.gatherFor {
		close(g.gathered)
		g.gathered = nil
	}
	start := !g.draining
	g.draining = true
	g.mu.Unlock()
	if start {
		go g.drain()
	}
	return p
}

// wait returns p's result once the transaction holding it committed. If
// p's context ends first it returns ctx's error; the entry may still be
// committed, and a retry of the same append returns it.
func (p *pendingAppend) wait() (Entry, error) {
	select {
	case <-p.done:
		return p.out, p.err
	case <-p.ctx.Done():
		return Entry{}, fmt.Errorf("waiting for the group commit: %w", p.ctx.Err())
	}
}

// drain commits queued batches until the queue is empty.
func (g *groupCommitter) drain() {
	for {
		g.mu.Lock()
		g.gather()
		batch := g.take()
		if batch == nil {
			g.draining = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		start := time.Now()
		g.commit(batch)
		took := time.Since(start)
		g.mu.Lock()
		// A full batch is all the next one can take: no wait beyond it.
		g.gatherFor, g.lastCommit = min(len(batch)+len(g.queue), maxBatch), took
		g.mu.Unlock()
	}
}

// take removes up to maxBatch appends (and maxBatchBytes) from the front
// of the queue and returns them in (incident, seq) order, or nil when the
// queue is empty. The caller holds g.mu.
func (g *groupCommitter) take() []*pendingAppend {
	n, size := 0, 0
	for n < len(g.queue) && n < maxBatch && size < maxBatchBytes {
		size += g.queue[n].e.size()
		n++
	}
	if n == 0 {
		return nil
	}
	batch := g.queue[:n:n]
	if n == len(g.queue) {
		g.queue = nil
	} else {
		g.queue = g.queue[n:]
	}
	slices.SortStableFunc(batch, func(a, b *pendingAppend) int {
		return cmp.Or(cmp.Compare(a.e.Incident, b.e.Incident), cmp.Compare(a.e.Seq, b.e.Seq))
	})
	return batch
}

// gather waits, before a batch is taken, until the queue holds gatherFor
// appends (those of the batch that finished last, whose callers it
// released, and those that queued while it committed), or for a quarter of
// that batch's commit time (at most maxGather), whichever comes first.
// Callers that append one entry at a time (the clients8 shape: 8 chains,
// each waiting for its append) come back within microseconds of their
// release; without the wait the first of them would be committed alone
// (its own fsync) while the others queue behind it, and batches would stay
// at one or two entries. Counting the appends that queued during the last
// commit too keeps callers from settling into two groups that take turns
// (4 and 4 of 8), which waiting for the last batch's count alone would
// keep. It does not wait when the queue is empty or already that long, so
// a lone chain (a batch of one) never waits. The caller holds g.mu; gather
// releases it while it waits.
func (g *groupCommitter) gather() {
	if len(g.queue) == 0 || len(g.queue) >= g.gatherFor {
		return
	}
	wait := min(g.lastCommit/4, maxGather)
	if wait <= 0 {
		return
	}
	if g.gathered == nil {
		g.gathered = make(chan struct{})
	}
	ch := g.gathered
	g.mu.Unlock()
	t := time.NewTimer(wait)
	select {
	case <-ch:
	case <-t.C:
	}
	t.Stop()
	g.mu.Lock()
}

// prevOf returns the hash entry (incident, seq-1) has according to the
// batch so far, the remembered heads or the store's rows in found. The
// caller holds g.mu.
func (g *groupCommitter) prevOf(s slot, batch, found map[slot]Entry) (Digest, bool) {
	if s.seq == 1 {
		return Digest{}, true
	}
	p := slot{s.incident, s.seq - 1}
	if e, ok := batch[p]; ok {
		return e.Hash, true
	}
	if h, ok := g.heads[s.incident]; ok && h.seq == p.seq {
		return h.hash, true
	}
	if e, ok := found[p]; ok {
		return e.Hash, true
	}
	return Digest{}, false
}

// commit stores one batch, in (incident, seq) order, and finishes every
// append in it.
func (g *groupCommitter) commit(batch []*pendingAppend) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	live := make([]*pendingAppend, 0, len(batch))
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.finish(Entry{}, err)
			continue
		}
		live = append(live, p)
	}

	// One read for every append whose predecessor is neither earlier in the
	// batch nor a remembered head: its own slot (a retry) and the slot before.
	requested := make(map[slot]bool, len(live))
	var need []slot
	g.mu.Lock()
	for _, p := range live {
		s := slot{p.e.Incident, p.e.Seq}
		h, ok := g.heads[s.incident]
		known := s.seq == 1 || requested[slot{s.incident, s.seq - 1}] || (ok && h.seq == s.seq-1)
		if !known {
			need = append(need, s, slot{s.incident, s.seq - 1})
		}
		requested[s] = true
	}
	g.mu.Unlock()
	found := map[slot]Entry{}
	if len(need) > 0 {
		var err error
		if found, err = g.store.lookup(ctx, need); err != nil {
			g.oneByOne(ctx, live)
			return
		}
	}

	type result struct {
		out Entry
		err error
	}
	results := make([]result, len(live))
	sealed := make(map[slot]Entry, len(live))
	keys := make(map[[2]string]int64, len(live)) // (incident, idempotency key) → seq
	var inserts []Entry
	g.mu.Lock()
	for i, p := range live {
		e := p.e
		s := slot{e.Incident, e.Seq}
		if prior, ok := sealed[s]; ok {
			results[i].out, results[i].err = resolve(prior, e)
			continue
		}
		if stored, ok := found[s]; ok {
			results[i].out, results[i].err = resolve(stored, e)
			if results[i].err == nil {
				sealed[s] = stored
			}
			continue
		}
		prev, ok := g.prevOf(s, sealed, found)
		if !ok {
			results[i].err = fmt.Errorf("%w: entry %d not appended yet", ErrGap, e.Seq-1)
			continue
		}
		k := [2]string{e.Incident, e.IdempotencyKey}
		if seq, ok := keys[k]; ok {
			results[i].err = fmt.Errorf("%w: idempotency key %q is already recorded at seq %d", ErrConflict, e.IdempotencyKey, seq)
			continue
		}
		keys[k] = e.Seq
		e = e.seal(prev)
		sealed[s] = e
		inserts = append(inserts, e)
		results[i].out = e
	}
	g.mu.Unlock()
	if len(inserts) > 0 {
		if err := g.store.insertAll(ctx, inserts); err != nil {
			g.oneByOne(ctx, live)
			return
		}
	}
	g.mu.Lock()
	for _, e := range sealed {
		g.remember(e)
	}
	g.mu.Unlock()
	for i, p := range live {
		p.finish(results[i].out, results[i].err)
	}
}

// oneByOne runs each append of a batch that could not be stored as a whole
// through the store's one-entry path, in (incident, seq) order.
func (g *groupCommitter) oneByOne(ctx context.Context, live []*pendingAppend) {
	for _, p := range live {
		out, err := g.store.insertOne(ctx, p.e)
		if err == nil {
			g.mu.Lock()
			g.remember(out)
			g.mu.Unlock()
		}
		p.finish(out, err)
	}
}

// size is about how many bytes e takes in a batch.
func (e *Entry) size() int {
	n := len(e.Record) + len(e.Outcome.Detail) + len(e.Target) + 256
	if d := e.Decision; d != nil {
		n += len(d.StatementPayload) + len(d.StatementSig)
	}
	return n
}

// remember records e as stored, when it is the newest entry of its chain
// the committer has seen. The caller holds g.mu.
func (g *groupCommitter) remember(e Entry) {
	if h, ok := g.heads[e.Incident]; ok && h.seq >= e.Seq {
		return
	}
	if len(g.heads) >= maxHeads {
		clear(g.heads)
	}
	g.heads[e.Incident] = chainHead{seq: e.Seq, hash: e.Hash}
}
