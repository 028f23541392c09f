package forward

import (
	"fmt"
	"testing"

	"github.com/iru-responder/responder/internal/intake/spool"
)

// An item the intake appended in this process is delivered from its
// Decoded record, without decoding Data again; an item read back from
// disk (no Decoded) is decoded from Data. Each case's Data alone would
// deliver nothing (or another alert), so only the named path passes.
func TestGroupTakesDecodedRecord(t *testing.T) {
	r := rec("k", 1, false)
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		item spool.Item
	}{
		{"appended in this process", spool.Item{Key: "k", Data: []byte("{not json"), Decoded: r}},
		{"read back from disk", spool.Item{Key: "k", Data: data}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fw := New(spoolWith(t), newFake(), Options{})
			got := fw.group([]spool.Item{tt.item}, map[string]bool{"k": true})
			if len(got) != 1 || len(got[0].records) != 1 {
				t.Fatalf("group = %+v, want one batch of one record", got)
			}
			if g := got[0].records[0]; g.Alert.ID != r.Alert.ID || g.Playbook != r.Playbook || !g.Alert.ReceivedAt.Equal(r.Alert.ReceivedAt) {
				t.Errorf("record = %+v, want %+v", g, r)
			}
		})
	}
}

// BenchmarkGroup batches a storm's worth of pending items (10 keys, 100
// items each, records of the storm's size) as the forwarder does on each
// pass: from the intake's Decoded records, and decoded from Data as after
// a restart (the cost every item paid before Decoded).
//
//	go test -run '^$' -bench Group -benchmem ./internal/intake/forward/
func BenchmarkGroup(b *testing.B) {
	const keys, perKey = 10, 100
	chosen := map[string]bool{}
	var decoded, fromDisk []spool.Item
	for i := range keys * perKey {
		r := rec(fmt.Sprintf("k%d", i%keys), i, false)
		r.Alert.Summary = fmt.Sprintf("alert %d", i)
		r.Alert.Labels = map[string]string{"n": fmt.Sprint(i), "namespace": "prod", "pod": "web-1"}
		r.Alert.Fingerprint = "5f0c6a1e9b2d4c87"
		r.Alert.RawDigest = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08#0"
		data, err := r.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		chosen[r.Key] = true
		decoded = append(decoded, spool.Item{Key: r.Key, Data: data, Decoded: r})
		fromDisk = append(fromDisk, spool.Item{Key: r.Key, Data: data})
	}
	for _, bc := range []struct {
		name  string
		items []spool.Item
	}{{"decoded", decoded}, {"from-disk", fromDisk}} {
		b.Run(bc.name, func(b *testing.B) {
			fw := New(spoolWith(b), newFake(), Options{})
			for b.Loop() {
				if got := fw.group(bc.items, chosen); len(got) != keys {
					b.Fatalf("%d batches, want %d", len(got), keys)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bc.items)), "ns/item")
		})
	}
}
