package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPUUse is processor time (user and system) of this process and of its
// descendants (the Temporal dev server or cluster it started), as
// benchmarks report it per unit of work.
type CPUUse struct {
	Self, Children time.Duration
}

// Sub is the use between then and u.
func (u CPUUse) Sub(then CPUUse) CPUUse {
	return CPUUse{Self: u.Self - then.Self, Children: u.Children - then.Children}
}

// Add is the sum of u and v.
func (u CPUUse) Add(v CPUUse) CPUUse {
	return CPUUse{Self: u.Self + v.Self, Children: u.Children + v.Children}
}

// Total is Self plus Children.
func (u CPUUse) Total() time.Duration { return u.Self + u.Children }

// CPUNow reads the processor time used so far by this process and by its
// living descendants (from /proc, in clock ticks of 10 ms; zero where
// /proc cannot be read).
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
		ppid, t, ok := ProcStat(pid)
		if !ok {
			continue
		}
		parent[pid], ticks[pid] = ppid, t
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
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces: the fields
	// that matter follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return ppid, time.Duration(utime+stime) * 10 * time.Millisecond, true
}
