package evidence

import (
	"context"
	"os"
)

// writebackWindow is how many bytes a blob's writer lets accumulate before
// it asks the kernel to start writing them out.
const writebackWindow = 8 << 20

// writebackFunc starts writing f[off:off+n] to disk, without waiting.
type writebackFunc func(f *os.File, off, n int64)

// writebackWriter writes a new blob to f and starts the disk writes of
// every writebackWindow bytes while later bytes are still being produced
// (encrypted), on a goroutine of its own so that the writer never waits
// for the disk. The fsync at the end then has only the tail left to
// write, instead of the whole blob: writing to disk overlaps the
// encryption. It stops the copy when ctx ends.
type writebackWriter struct {
	ctx     context.Context
	f       *os.File
	off     int64 // bytes written
	started int64 // bytes whose write-out was requested
	ranges  chan [2]int64
	done    chan struct{}
}

func newWritebackWriter(ctx context.Context, f *os.File, start writebackFunc) *writebackWriter {
	w := &writebackWriter{ctx: ctx, f: f, ranges: make(chan [2]int64, 4), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for r := range w.ranges {
			start(f, r[0], r[1])
		}
	}()
	return w
}

func (w *writebackWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.started >= writebackWindow {
		select {
		case w.ranges <- [2]int64{w.started, w.off - w.started}:
			w.started = w.off
		default: // the disk is behind: ask for a longer range next time
		}
	}
	return n, err
}

// finish waits until the requested write-outs were started; the caller
// then fsyncs the file.
func (w *writebackWriter) finish() {
	close(w.ranges)
	<-w.done
}
