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

// pipelineWindow is how many appends each chain of the pipelined
// benchmark keeps in flight.
const pipelineWindow = 64

// BenchmarkAppend measures appends per second on both stores: one chain
// appended sequentially (clients1); 8 chains appended in parallel, each
// sequential within itself (one Append waits for the previous one's
// commit, as the incident workflow's ledger writer appends today:
// clients8); and 8 chains in parallel, each pipelined through
// Ledger.AppendAsync with up to pipelineWindow appends of the chain in
// flight, queued in seq order and committed several per transaction
// (clients8-pipeline64). It measures its baseline in the same run on the
// same PostgreSQL server, alternating with the appends in chunks: plain
// single-row inserts (insert into t(v) values ($1), autocommit, as pgbench
// -n with one insert per transaction) from as many clients (8 for the
// pipelined case too). It reports appends/s, baseline-inserts/s and
// x-baseline (appends/s ÷ baseline-inserts/s), and checks that every chain
// verifies and ends at the last seq appended.
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
	shapes := []struct {
		name    string
		clients int
		window  int // appends in flight per chain
	}{
		{"clients1", 1, 1},
		{"clients8", 8, 1},
		{fmt.Sprintf("clients8-pipeline%d", pipelineWindow), 8, pipelineWindow},
	}
	for _, st := range stores {
		for _, sh := range shapes {
			clients := sh.clients
			b.Run(st.name+"/"+sh.name, func(b *testing.B) {
				l := ledger.New(st.open(b), nil)
				pool := newPGEnv(b).owner
				ctx := context.Background()
				if _, err := pool.Exec(ctx, `CREATE TABLE t (v integer)`); err != nil {
					b.Fatalf("baseline table: %v", err)
				}
				seqs := make([]int64, clients)
				var baseOps int
				var baseTime time.Duration
				// A chunk keeps every chain's window full for a while; the
				// baseline's chunk stays benchChunk per client.
				chunk := benchChunk * clients * sh.window
				b.ResetTimer()
				for done := 0; done < b.N; {
					n := min(b.N-done, chunk)
					if sh.window == 1 {
						appendChunk(b, l, seqs, n)
					} else {
						appendChunkPipelined(b, l, seqs, n, sh.window)
					}
					done += n
					b.StopTimer()
					start := time.Now()
					insertChunk(b, pool, clients, benchChunk*clients)
					baseTime += time.Since(start)
					baseOps += benchChunk * clients
					b.StartTimer()
				}
				b.StopTimer()
				rate := float64(b.N) / b.Elapsed().Seconds()
				base := float64(baseOps) / baseTime.Seconds()
				b.ReportMetric(rate, "appends/s")
				b.ReportMetric(base, "baseline-inserts/s")
				b.ReportMetric(rate/base, "x-baseline")
				for c, seq := range seqs {
					inc := fmt.Sprintf("bench-%d", c)
					if rep, err := l.Verify(ctx, inc, nil); err != nil || int64(rep.Entries) != seq {
						b.Fatalf("chain %s: Verify = %+v, %v; want %d entries", inc, rep, err, seq)
					}
				}
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

// appendChunkPipelined appends n entries over len(seqs) chains, continuing
// each, with up to window appends of a chain in flight: each chain's
// goroutine queues its appends in seq order with AppendAsync and waits for
// the oldest when the window is full.
func appendChunkPipelined(b *testing.B, l *ledger.Ledger, seqs []int64, n, window int) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for c := range seqs {
		share := n / len(seqs)
		if c < n%len(seqs) {
			share++
		}
		wg.Go(func() {
			inc := fmt.Sprintf("bench-%d", c)
			inFlight := make([]*ledger.Pending, 0, window)
			wait := func(p *ledger.Pending) bool {
				if _, err := p.Wait(); err != nil {
					b.Error(err)
					return false
				}
				return true
			}
			for range share {
				if len(inFlight) == window {
					if !wait(inFlight[0]) {
						return
					}
					inFlight = append(inFlight[:0], inFlight[1:]...)
				}
				seqs[c]++
				inFlight = append(inFlight, l.AppendAsync(ctx, ledgertest.Request(inc, seqs[c])))
			}
			for _, p := range inFlight {
				if !wait(p) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// insertChunk runs n plain single-row inserts from clients connections.
func insertChunk(b *testing.B, pool *pgxpool.Pool, clients, n int) {
	ctx := context.Background()
	runClients(b, clients, n, func(c int) error {
		_, err := pool.Exec(ctx, `INSERT INTO t (v) VALUES ($1)`, c)
		return err
	})
}
