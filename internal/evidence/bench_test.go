package evidence

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkLocker100MB measures Put and Get of a 100 MB object, each
// against its limit measured in the same run, alternating with it (one
// baseline after each timed operation, so both see the same load):
//
//   - put against a plain write of the same pseudo-random stream to a file
//     with io.Copy and fsync (Put syncs too);
//   - get against SHA-256 of 100 MB in 64 KiB blocks (Go standard library),
//     the one step of Get that cannot be spread over cores.
//
// Each reports MB/s (from SetBytes), baseline-MB/s and x-baseline (MB/s ÷
// baseline-MB/s), and, from one more untimed run at 100 MB and one at
// 10 MB, peak-heap-KiB and peak-heap-10MB-KiB: memory does not grow with
// the object. The source stream is never held in memory.
//
//	go test -run '^$' -bench BenchmarkLocker100MB -benchtime 3x ./internal/evidence/
func BenchmarkLocker100MB(b *testing.B) {
	const size, small = 100_000_000, 10_000_000
	f := newFixture(b, 0)
	f.ctx = context.Background() // the fixture's one-minute deadline is for tests; a run of several 100 MB puts on a busy machine takes longer
	put := func(n int64, seed byte) Ref {
		// A distinct stream each time, so no put is a dedup.
		ref, err := f.locker.Put(f.ctx, request("inc-bench", "disk.img", ClassOperational, randomReader(n, seed)))
		if err != nil {
			b.Fatal(err)
		}
		return ref
	}
	get := func(ref Ref, n int64) {
		rc, _, err := f.locker.Get(f.ctx, ref, alice)
		if err != nil {
			b.Fatal(err)
		}
		if got, err := io.Copy(io.Discard, rc); err != nil || got != n {
			b.Fatalf("read %d bytes: %v", got, err)
		}
		_ = rc.Close()
	}
	report := func(b *testing.B, baseline float64, peak, peakSmall uint64) {
		rate := float64(size) * float64(b.N) / b.Elapsed().Seconds() / 1e6
		b.ReportMetric(baseline, "baseline-MB/s")
		b.ReportMetric(rate/baseline, "x-baseline")
		b.ReportMetric(float64(peak>>10), "peak-heap-KiB")
		b.ReportMetric(float64(peakSmall>>10), "peak-heap-10MB-KiB")
	}

	b.Run("put", func(b *testing.B) {
		plain := filepath.Join(f.dir, "baseline.bin")
		b.SetBytes(size)
		var baseTime time.Duration
		for i := range b.N {
			put(size, byte(i))
			b.StopTimer()
			start := time.Now()
			plainWrite(b, plain, randomReader(size, byte(100+i)))
			baseTime += time.Since(start)
			b.StartTimer()
		}
		b.StopTimer()
		peak := peakHeap(func() { put(size, 200) })
		peakSmall := peakHeap(func() { put(small, 201) })
		report(b, float64(size)*float64(b.N)/baseTime.Seconds()/1e6, peak, peakSmall)
	})
	b.Run("get", func(b *testing.B) {
		ref, refSmall := put(size, 250), put(small, 251)
		block := make([]byte, 64<<10)
		_, _ = io.ReadFull(randomReader(int64(len(block)), 7), block)
		b.SetBytes(size)
		var baseTime time.Duration
		b.ResetTimer()
		for range b.N {
			get(ref, size)
			b.StopTimer()
			start := time.Now()
			h := sha256.New()
			for n := 0; n < size; n += len(block) {
				h.Write(block[:min(len(block), size-n)])
			}
			h.Sum(nil)
			baseTime += time.Since(start)
			b.StartTimer()
		}
		b.StopTimer()
		peak := peakHeap(func() { get(ref, size) })
		peakSmall := peakHeap(func() { get(refSmall, small) })
		report(b, float64(size)*float64(b.N)/baseTime.Seconds()/1e6, peak, peakSmall)
	})
}

// plainWrite copies r to a new file at path and syncs it.
func plainWrite(b *testing.B, path string, r io.Reader) {
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = out.Close() }()
	if _, err := io.Copy(out, r); err != nil {
		b.Fatal(err)
	}
	if err := out.Sync(); err != nil {
		b.Fatal(err)
	}
}
