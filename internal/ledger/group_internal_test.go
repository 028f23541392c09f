package ledger

import (
	"context"
	"fmt"
	"strings"
	"testing"
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
			g := newGroupCommitter(nil, maxInFlight)
			for i := range tc.queued {
				e := Entry{Incident: fmt.Sprintf("inc-%d", i), Seq: 1, Record: []byte(tc.record)}
				g.queue = append(g.queue, &pendingAppend{ctx: context.Background(), e: e, done: make(chan struct{})})
			}
			var got []int
			for len(g.queue) > 0 {
				batch, _ := g.take()
				got = append(got, len(batch))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("batches %v, want %v", got, tc.want)
			}
		})
	}
}
