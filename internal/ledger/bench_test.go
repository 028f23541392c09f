package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/ledger/ledgertest"
)

// BenchmarkAppend measures appends per second on both stores: one chain
// appended sequentially (clients1), and 8 chains appended in parallel, each
// sequential within itself as incident workflows append (clients8). After
// the timed appends, each sub-benchmark measures its baseline on the same
// PostgreSQL server: the same number of plain single-row inserts
// (insert into t(v) values ($1), autocommit, as pgbench -n with one insert
// per transaction) from as many clients. It reports appends/s,
// baseline-inserts/s and x-baseline (appends/s ÷ baseline-inserts/s).
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
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/clients%d", st.name, clients), func(b *testing.B) {
				l := ledger.New(st.open(b), nil)
				baseline := newPGEnv(b).owner
				b.ResetTimer()
				appendChains(b, l, clients)
				b.StopTimer()
				rate := float64(b.N) / b.Elapsed().Seconds()
				base := plainInserts(b, baseline, clients, b.N)
				b.ReportMetric(rate, "appends/s")
				b.ReportMetric(base, "baseline-inserts/s")
				b.ReportMetric(rate/base, "x-baseline")
			})
		}
	}
}

// appendChains appends b.N entries over clients chains, one goroutine each.
func appendChains(b *testing.B, l *ledger.Ledger, clients int) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			inc := fmt.Sprintf("bench-%d", c)
			for seq := int64(1); next.Add(1) <= int64(b.N); seq++ {
				if _, err := l.Append(ctx, ledgertest.Request(inc, seq)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// plainInserts runs n single-row inserts from clients connections of pool
// and returns inserts per second.
func plainInserts(b *testing.B, pool *pgxpool.Pool, clients, n int) float64 {
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS t (v integer)`); err != nil {
		b.Fatalf("baseline table: %v", err)
	}
	n = max(n, 200*clients)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := pool.Exec(ctx, `INSERT INTO t (v) VALUES ($1)`, c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
