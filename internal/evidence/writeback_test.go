package evidence

import (
	"bytes"
	"context"
	"io"
	"os"
	"sync"
	"testing"
)

// TestFSBackendWriteback checks that the folder backend starts the disk
// writes of a large blob while writing it: contiguous ranges from offset
// 0, each at least writebackWindow long, covering all but the last
// window, all requested before Put returns; and that the blob is intact.
func TestFSBackendWriteback(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		want int // minimum number of ranges
	}{
		{"small", 1 << 10, 0},
		{"one-window", writebackWindow, 1},
		{"several", 3*writebackWindow + 12345, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewFSBackend(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var ranges [][2]int64
			b.writeback = func(f *os.File, off, n int64) {
				mu.Lock()
				defer mu.Unlock()
				ranges = append(ranges, [2]int64{off, n})
				startWriteback(f, off, n)
			}
			body, err := io.ReadAll(randomReader(tc.size, 9))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// A reader without WriteTo, written in small pieces.
			if _, err := b.Put(ctx, "inc/blob", io.LimitReader(bytes.NewReader(body), tc.size)); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			got := append([][2]int64(nil), ranges...)
			mu.Unlock()
			if len(got) < tc.want {
				t.Fatalf("%d write-outs started, want at least %d: %v", len(got), tc.want, got)
			}
			var next int64
			for _, r := range got {
				if r[0] != next || r[1] < writebackWindow {
					t.Fatalf("ranges %v: want contiguous from 0, each at least %d bytes", got, writebackWindow)
				}
				next += r[1]
			}
			if next > tc.size || tc.size-next >= writebackWindow {
				t.Fatalf("ranges cover %d of %d bytes, want all but less than one window", next, tc.size)
			}
			rc, err := b.Get(ctx, "inc/blob")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = rc.Close() }()
			stored, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(stored, body) {
				t.Fatalf("stored blob differs (%d of %d bytes): %v", len(stored), len(body), err)
			}
		})
	}
}
