package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTakeBoundsBatches checks how the group commit cuts its queue into
// batches: at most maxBatch entries, and no more than maxBatchBytes of
// records once the entry that reaches it is in, whatever the queue holds.
func TestTakeBoundsBatches(t *testing.T) {
	big := strings.Repeat("x", 3<<20) // three of these reach maxBatchBytes
	cases := []struct {
		name   string
		record string
		queued int
		want   []int // sizes of the successive batches
	}{
		{"small entries", "{}", 1200, []int{maxBatch, maxBatch, 1200 - 2*maxBatch}},
		{"large records", big, 7, []int{3, 3, 1}},
		{"one entry", big, 1, []int{1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGroupCommitter(nil)
			for i := range tc.queued {
				e := Entry{Incident: fmt.Sprintf("inc-%d", i), Seq: 1, Record: []byte(tc.record)}
				g.queue = append(g.queue, &pendingAppend{ctx: context.Background(), e: e, done: make(chan struct{})})
			}
			var got []int
			for len(g.queue) > 0 {
				batch := g.take()
				got = append(got, len(batch))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("batches %v, want %v", got, tc.want)
			}
		})
	}
}

// slowStore is a batchStore whose every transaction takes commitTime, as
// an fsync does; it counts the batches and entries it stored.
type slowStore struct {
	commitTime time.Duration

	mu               sync.Mutex
	batches, entries int
}

func (s *slowStore) lookup(context.Context, []slot) (map[slot]Entry, error) {
	return map[slot]Entry{}, nil
}

func (s *slowStore) insertAll(_ context.Context, es []Entry) error {
	time.Sleep(s.commitTime)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	s.entries += len(es)
	return nil
}

func (s *slowStore) insertOne(context.Context, Entry) (Entry, error) {
	return Entry{}, errors.New("slowStore: insertOne: every batch should store whole")
}

// TestGroupCommitGathersWaitingAppenders checks that appenders which each
// wait for their append before the next (8 chains, one goroutine each, as
// the clients8 benchmark and the incident workflows' one-at-a-time
// appends) share transactions: the next batch waits for the appenders the
// last commit released, instead of committing the first to come back on
// its own and the others in a second batch behind it.
func TestGroupCommitGathersWaitingAppenders(t *testing.T) {
	const (
		chains  = 8
		appends = 15 // per chain
		// minBatch is the least average of entries per transaction: 8 when
		// every appender is gathered; 4.0 without gathering (the first
		// appender back commits alone, the other 7 in the next batch).
		minBatch = 5.5
	)
	store := &slowStore{commitTime: 10 * time.Millisecond}
	g := newGroupCommitter(store)
	var wg sync.WaitGroup
	for c := range chains {
		wg.Go(func() {
			for seq := int64(1); seq <= appends; seq++ {
				e := Entry{Version: HashVersion, Incident: fmt.Sprintf("inc-%d", c), Seq: seq, Actor: "system:test",
					Action: "test", Outcome: Outcome{Status: StatusOK}, IdempotencyKey: fmt.Sprintf("k-%d", seq)}
				if _, err := g.insertAsync(context.Background(), e)(); err != nil {
					t.Errorf("chain %d seq %d: %v", c, seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.entries != chains*appends {
		t.Fatalf("stored %d entries, want %d", store.entries, chains*appends)
	}
	if avg := float64(store.entries) / float64(store.batches); avg < minBatch {
		t.Errorf("%d entries in %d transactions: %.1f per transaction, want at least %.1f", store.entries, store.batches, avg, minBatch)
	} else {
		t.Logf("%d entries in %d transactions: %.1f per transaction", store.entries, store.batches, avg)
	}
}
