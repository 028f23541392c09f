//go:build integration

package ledger_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/ledger/ledgertest"
)

// BenchmarkAppend measures appends per second on both stores: one incident
// appended sequentially, and 8 incidents appended in parallel (each
// sequential within itself, as incident workflows do).
//
//	go test -run '^$' -bench BenchmarkAppend -benchtime 3s ./internal/ledger/
func BenchmarkAppend(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) ledger.Store
	}{
		{"postgres", func(b *testing.B) ledger.Store { return newPGStore(b) }},
		{"sqlite", func(b *testing.B) ledger.Store { return newSQLiteStore(b) }},
	}
	for _, st := range stores {
		b.Run(st.name+"/sequential", func(b *testing.B) {
			l := ledger.New(st.open(b), nil)
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				if _, err := l.Append(ctx, ledgertest.Request("bench", int64(i+1))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
		b.Run(st.name+"/parallel8", func(b *testing.B) {
			l := ledger.New(st.open(b), nil)
			ctx := context.Background()
			var next atomic.Int64
			b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				inc := fmt.Sprintf("bench-%d", next.Add(1))
				for seq := int64(1); pb.Next(); seq++ {
					if _, err := l.Append(ctx, ledgertest.Request(inc, seq)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}
