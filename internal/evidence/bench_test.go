package evidence

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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
//   - put against a plain durable write of the same pseudo-random stream to
//     a new file: io.Copy, fsync of the file and of its directory, the
//     durability Put gives the object (Put also writes and syncs its
//     wrapped key and custody event, which count against it);
//   - get against SHA-256 of 100 MB in 64 KiB blocks (Go standard library),
//     the one step of Get that cannot be spread over cores.
//
// Each reports MB/s (from SetBytes), baseline-MB/s and x-baseline (MB/s ÷
// baseline-MB/s), and, from one more untimed run at 100 MB and one at
// 10 MB, peak-heap-KiB and peak-heap-10MB-KiB: memory does not grow with
// the object. The source stream is never held in memory. put also reports
// tail-ms and baseline-tail-ms: the time from the source's last byte to
// durable (Put's return; the plain write's fsyncs), which is disk time,
// not processor time, and so is less disturbed by a busy machine.
//
//	go test -run '^$' -bench BenchmarkLocker100MB -benchtime 3x ./internal/evidence/
func BenchmarkLocker100MB(b *testing.B) {
	const size, small = 100_000_000, 10_000_000
	f := newFixture(b, 0)
	f.ctx = context.Background() // the fixture's one-minute deadline is for tests; a run of several 100 MB puts on a busy machine takes longer
	var puts byte                // seeds the streams: the fixture outlives the rounds of b.N
	var putTail time.Duration    // from the end of the source to Put's return, summed
	put := func(n int64) Ref {
		// A distinct stream each time, so no put is a dedup (which would
		// delete the new copy).
		puts++
		src := &eofTimer{r: randomReader(n, puts)}
		ref, err := f.locker.Put(f.ctx, request("inc-bench", "disk.img", ClassOperational, src))
		if err != nil {
			b.Fatal(err)
		}
		putTail += time.Since(src.eof)
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
		b.SetBytes(size)
		var baseTime, baseTail time.Duration
		putTail = 0
		for i := range b.N {
			put(size)
			b.StopTimer()
			plain := filepath.Join(f.dir, fmt.Sprintf("baseline-%d.bin", i))
			start := time.Now()
			src := &eofTimer{r: randomReader(size, byte(100+i))}
			plainWrite(b, plain, src)
			baseTime += time.Since(start)
			baseTail += time.Since(src.eof)
			// Removed and synced untimed, so that no timed operation waits
			// for the removal (the file system may discard the blocks at
			// the next journal commit).
			if err := os.Remove(plain); err != nil {
				b.Fatal(err)
			}
			if err := syncDir(f.dir); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.StopTimer()
		b.ReportMetric(float64(putTail.Microseconds())/1e3/float64(b.N), "tail-ms")
		b.ReportMetric(float64(baseTail.Microseconds())/1e3/float64(b.N), "baseline-tail-ms")
		peak := peakHeap(func() { put(size) })
		peakSmall := peakHeap(func() { put(small) })
		report(b, float64(size)*float64(b.N)/baseTime.Seconds()/1e6, peak, peakSmall)
	})
	b.Run("get", func(b *testing.B) {
		ref, refSmall := put(size), put(small)
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

// plainWrite copies r to a new file at path and syncs the file and its
// directory, so that the file and its name survive a crash.
func plainWrite(b *testing.B, path string, r io.Reader) {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
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
	if err := syncDir(filepath.Dir(path)); err != nil {
		b.Fatal(err)
	}
}

// eofTimer reads r and records when it first returned io.EOF.
type eofTimer struct {
	r   io.Reader
	eof time.Time
}

func (e *eofTimer) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) && e.eof.IsZero() {
		e.eof = time.Now()
	}
	return n, err
}
