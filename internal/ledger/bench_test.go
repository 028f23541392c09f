//go:build integration

package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/ledger/ledgertest"
)

// benchChunk is how many operations per client the appends and the
// baseline alternate in, so both see the same load on a shared machine.
const benchChunk = 25

// BenchmarkAppend measures appends per second on both stores: one chain
// appended sequentially (clients1), and 8 chains appended in parallel, each
// sequential within itself as incident workflows append (clients8). It
// measures its baseline in the same run on the same PostgreSQL server,
// alternating with the appends in chunks: plain single-row inserts
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
				pool := newPGEnv(b).owner
				ctx := context.Background()
				if _, err := pool.Exec(ctx, `CREATE TABLE t (v integer)`); err != nil {
					b.Fatalf("baseline table: %v", err)
				}
				seqs := make([]int64, clients)
				var baseOps int
				var baseTime time.Duration
				b.ResetTimer()
				for done := 0; done < b.N; {
					n := min(b.N-done, benchChunk*clients)
					appendChunk(b, l, seqs, n)
					done += n
					b.StopTimer()
					start := time.Now()
					insertChunk(b, pool, clients, n)
					baseTime += time.Since(start)
					baseOps += n
					b.StartTimer()
				}
				b.StopTimer()
				rate := float64(b.N) / b.Elapsed().Seconds()
				base := float64(baseOps) / baseTime.Seconds()
				b.ReportMetric(rate, "appends/s")
				b.ReportMetric(base, "baseline-inserts/s")
				b.ReportMetric(rate/base, "x-baseline")
			})
		}
	}
}

// runClients runs n operations over len(seqs) clients, one goroutine each;
// op gets the client and its next sequence number.
func runClients(b *testing.B, clients, n int, op func(c int) error) {
	var wg sync.WaitGroup
	for c := range clients {
		share := n / clients
		if c < n%clients {
			share++
		}
		wg.Go(func() {
			for range share {
				if err := op(c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// appendChunk appends n entries over len(seqs) chains, continuing each.
func appendChunk(b *testing.B, l *ledger.Ledger, seqs []int64, n int) {
	ctx := context.Background()
	runClients(b, len(seqs), n, func(c int) error {
		seqs[c]++
		_, err := l.Append(ctx, ledgertest.Request(fmt.Sprintf("bench-%d", c), seqs[c]))
		return err
	})
}

// insertChunk runs n plain single-row inserts from clients connections.
func insertChunk(b *testing.B, pool *pgxpool.Pool, clients, n int) {
	ctx := context.Background()
	runClients(b, clients, n, func(c int) error {
		_, err := pool.Exec(ctx, `INSERT INTO t (v) VALUES ($1)`, c)
		return err
	})
}
