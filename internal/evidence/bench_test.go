package evidence

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLocker100MB measures Put and Get of a 100 MB object next to a
// plain io.Copy of the same stream to and from a file, and reports the peak
// heap growth of each (peak-heap-KiB). The source is a pseudo-random stream
// that is never held in memory.
//
//	go test -run '^$' -bench BenchmarkLocker100MB -benchtime 3x ./internal/evidence/
func BenchmarkLocker100MB(b *testing.B) {
	const size = 100_000_000
	f := newFixture(b, 0)
	plainFile := filepath.Join(f.dir, "baseline.bin")

	b.Run("baseline-write", func(b *testing.B) {
		b.SetBytes(size)
		peak := uint64(0)
		for i := range b.N {
			peak = max(peak, peakHeap(func() {
				out, err := os.Create(plainFile)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(out, randomReader(size, byte(i))); err != nil {
					b.Fatal(err)
				}
				if err := out.Sync(); err != nil { // Put syncs too
					b.Fatal(err)
				}
				_ = out.Close()
			}))
		}
		b.ReportMetric(float64(peak>>10), "peak-heap-KiB")
	})
	b.Run("put", func(b *testing.B) {
		b.SetBytes(size)
		peak := uint64(0)
		for i := range b.N {
			peak = max(peak, peakHeap(func() {
				// A distinct stream each time, so no put is a dedup.
				if _, err := f.locker.Put(f.ctx, request("inc-bench", "disk.img", ClassOperational, randomReader(size, byte(100+i)))); err != nil {
					b.Fatal(err)
				}
			}))
		}
		b.ReportMetric(float64(peak>>10), "peak-heap-KiB")
	})
	ref, err := f.locker.Put(f.ctx, request("inc-bench", "read.img", ClassOperational, randomReader(size, 255)))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("baseline-read", func(b *testing.B) {
		b.SetBytes(size)
		peak := uint64(0)
		for range b.N {
			peak = max(peak, peakHeap(func() {
				in, err := os.Open(plainFile)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, in); err != nil {
					b.Fatal(err)
				}
				_ = in.Close()
			}))
		}
		b.ReportMetric(float64(peak>>10), "peak-heap-KiB")
	})
	b.Run("get", func(b *testing.B) {
		b.SetBytes(size)
		peak := uint64(0)
		for range b.N {
			peak = max(peak, peakHeap(func() {
				rc, _, err := f.locker.Get(f.ctx, ref, alice)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
					b.Fatalf("read %d bytes: %v", n, err)
				}
				_ = rc.Close()
			}))
		}
		b.ReportMetric(float64(peak>>10), "peak-heap-KiB")
	})
}
