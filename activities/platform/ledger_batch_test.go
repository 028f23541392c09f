package platform

import (
	"context"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/ledger"
)

// TestLedgerAppendBatch: a batch is stored in order, pipelined, up to its
// first refused entry, which is reported with the refusal LedgerAppend
// would give; nothing after it is stored, and a closing entry ends the
// batch. Each case starts from a chain holding entries 1..3.
func TestLedgerAppendBatch(t *testing.T) {
	at := time.Unix(1700000000, 0)
	entry := func(seq int64, kind string) activities.LedgerAppendInput {
		return activities.LedgerAppendInput{IncidentID: "INC-1", Seq: seq, At: at, Kind: kind, Actor: "workflow", Outcome: "ok"}
	}
	batch := func(first int64, kinds ...string) []activities.LedgerAppendInput {
		var out []activities.LedgerAppendInput
		for i, k := range kinds {
			out = append(out, entry(first+int64(i), k))
		}
		return out
	}
	tests := []struct {
		name    string
		entries []activities.LedgerAppendInput
		// stored is how many of the batch are reported stored, failed the
		// refusal's type ("" none), head the chain's last seq afterwards.
		stored  int
		failed  string
		takenBy string // the kind of the entry a conflict reports stored
		head    int64
		wantErr bool
	}{
		{name: "all stored", entries: batch(4, "step", "step", "phase", "alert"), stored: 4, head: 7},
		{name: "again, the stored ones", entries: batch(2, "alert", "phase"), stored: 2, head: 3},
		{name: "a slot taken midway", entries: append(batch(3, "phase"), batch(4, "alert", "step")...)[:2], stored: 1,
			failed: activities.ErrTypeConflict, head: 3},
		{name: "slot taken first", entries: batch(3, "step", "step"), stored: 0, failed: activities.ErrTypeConflict, takenBy: "phase", head: 3},
		{name: "gap", entries: batch(5, "step", "step"), stored: 0, failed: activities.ErrTypeLedgerGap, head: 3},
		{name: "closing entry ends the batch", entries: batch(4, "step", "incident_closed", "step"), stored: 2, head: 5},
		{name: "not consecutive", entries: []activities.LedgerAppendInput{entry(4, "step"), entry(6, "step")}, wantErr: true, head: 3},
		{name: "empty", entries: nil, head: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := sqliteStore(t)
			a := &Activities{Ledger: ledger.New(st, nil)}
			for _, e := range batch(1, "incident_opened", "alert", "phase") {
				if _, err := a.LedgerAppend(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			if tt.name == "a slot taken midway" {
				// seq 4 holds another entry than the batch's alert.
				tt.entries[1].Outcome = "other"
				if _, err := a.LedgerAppend(ctx, entry(4, "alert")); err != nil {
					t.Fatal(err)
				}
				tt.head, tt.takenBy = 4, "alert"
			}
			res, err := a.LedgerAppendBatch(ctx, activities.LedgerAppendBatchInput{Entries: tt.entries})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if len(res.Stored) != tt.stored {
				t.Errorf("stored %d, want %d", len(res.Stored), tt.stored)
			}
			for _, r := range res.Stored {
				if r.Hash == "" {
					t.Errorf("stored entry without hash: %+v", res.Stored)
				}
			}
			switch {
			case tt.failed == "" && res.Failed != nil:
				t.Errorf("failed %+v, want none", res.Failed)
			case tt.failed != "" && (res.Failed == nil || res.Failed.Type != tt.failed):
				t.Errorf("failed %+v, want %s", res.Failed, tt.failed)
			case tt.takenBy != "" && (res.Failed.Stored == nil || res.Failed.Stored.Record.Kind != tt.takenBy):
				t.Errorf("conflict reports stored %+v, want the %s entry", res.Failed.Stored, tt.takenBy)
			}
			var seqs []int64
			if err := st.Entries(ctx, "INC-1", func(e ledger.Entry) error { seqs = append(seqs, e.Seq); return nil }); err != nil {
				t.Fatal(err)
			}
			for i, s := range seqs {
				if s != int64(i+1) {
					t.Fatalf("chain seqs %v, want 1..n", seqs)
				}
			}
			if int64(len(seqs)) != tt.head {
				t.Errorf("chain holds %d entries, want %d", len(seqs), tt.head)
			}
			if _, err := a.Ledger.Verify(ctx, "INC-1", nil); err != nil {
				t.Errorf("verify: %v", err)
			}
		})
	}
}
