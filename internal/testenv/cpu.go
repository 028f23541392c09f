package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPUUse is processor time (user and system) of this process, of its
// descendants (the Temporal dev server or cluster it started) and of the
// machine's PostgreSQL (the cluster's store, a system service: not a
// descendant), as benchmarks report it per unit of work.
type CPUUse struct {
	Self, Children time.Duration
	// Database is the time of the processes named postgres: the server
	// and its backends living at both readings (a backend that exits in
	// between takes its time with it; the cluster's are pooled).
	Database time.Duration
}

// Sub is the use between then and u.
func (u CPUUse) Sub(then CPUUse) CPUUse {
	return CPUUse{Self: u.Self - then.Self, Children: u.Children - then.Children, Database: u.Database - then.Database}
}

// Add is the sum of u and v.
func (u CPUUse) Add(v CPUUse) CPUUse {
	return CPUUse{Self: u.Self + v.Self, Children: u.Children + v.Children, Database: u.Database + v.Database}
}

// Total is Self plus Children plus Database.
func (u CPUUse) Total() time.Duration { return u.Self + u.Children + u.Database }

// CPUNow reads the processor time used so far by this process, by its
// living descendants and by the living postgres processes (from /proc, in
// clock ticks of 10 ms; zero where /proc cannot be read).
func CPUNow() CPUUse {
	var u CPUUse
	parent := map[int]int{}
	ticks := map[int]time.Duration{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readStat(pid)
		if !ok {
			continue
		}
		parent[pid], ticks[pid] = st.ppid, st.cpu
		if st.comm == "postgres" {
			u.Database += st.cpu
		}
	}
	self := os.Getpid()
	u.Self = ticks[self]
	for pid, t := range ticks {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == self {
				u.Children += t
				break
			}
		}
	}
	return u
}

// ProcStat returns a process's parent and its user and system time from
// /proc/PID/stat (clock ticks of 10 ms, USER_HZ on Linux); ok is false
// when they cannot be read.
func ProcStat(pid int) (ppid int, cpu time.Duration, ok bool) {
	st, ok := readStat(pid)
	return st.ppid, st.cpu, ok
}

// procStat is what readStat reads of a process.
type procStat struct {
	comm string
	ppid int
	cpu  time.Duration
}

// readStat reads /proc/PID/stat: the command name, the parent and the
// user and system time.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	return parseStat(b)
}

// parseStat parses the content of a /proc/PID/stat file.
func parseStat(b []byte) (procStat, bool) {
	// The command name is in parentheses and may hold spaces: the fields
	// that matter follow the last ')'.
	open, i := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || i < open {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, false
	}
	return procStat{comm: string(b[open+1 : i]), ppid: ppid, cpu: time.Duration(utime+stime) * 10 * time.Millisecond}, true
}
