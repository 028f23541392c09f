//go:build linux

package evidence

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing f[off:off+n] to disk
// without waiting for it (sync_file_range with SYNC_FILE_RANGE_WRITE). It
// only schedules I/O early: durability still comes from the fsync that
// follows. Errors are ignored for the same reason; the fsync reports them.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
