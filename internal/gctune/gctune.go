// Package gctune sets the Go garbage collector of the platform's processes
// and of the Temporal servers it starts.
//
// By default (GOGC=100) the collector runs whenever the heap has doubled
// since the last collection, whatever memory the process may use. With a
// soft memory limit (GOMEMLIMIT) the runtime collects as the heap nears the
// limit anyway, so a higher GOGC only spends memory the limit already
// allows, and the collector runs far less often while the heap is small
// (the Go GC guide, "Suggested uses"). In the alert storm benchmark on the
// cluster the collector was about a tenth of the processor time of the
// platform and of the Temporal server; with GOGC=400 under a limit the
// platform took 17–21 % and the server 8–18 % less processor time per
// alert (docs/PERFORMANCE.md, session 21).
//
// Without a memory limit nothing changes: the heap of a worker holding a
// large backlog of waiting incidents could then grow to five times what is
// live and past its container's memory.
package gctune

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
)

// Percent is the GOGC the platform's processes run with under a memory
// limit, and the Temporal servers it starts.
const Percent = 400

// ServerMemoryLimit is the soft memory limit (GOMEMLIMIT) of a Temporal
// server the platform starts (starter cluster, the dev server, the tests):
// under the 2 GiB the compose file gives its server container.
const ServerMemoryLimit = "1800MiB"

// Setting is the collector's setting of this process after [Apply].
type Setting struct {
	// Percent is GOGC in effect (-1: off).
	Percent int
	// MemoryLimit is the soft memory limit in bytes (0: none).
	MemoryLimit int64
	// Raised is true when Apply raised GOGC to [Percent].
	Raised bool
}

// String describes the setting for a log line.
func (s Setting) String() string {
	limit := "no memory limit"
	if s.MemoryLimit > 0 {
		limit = fmt.Sprintf("memory limit %d MiB", s.MemoryLimit>>20)
	}
	how := "as set"
	if s.Raised {
		how = "raised under the limit"
	}
	return fmt.Sprintf("GOGC %d (%s), %s", s.Percent, how, limit)
}

// Apply raises GOGC to [Percent] when the process has a soft memory limit
// (GOMEMLIMIT, or debug.SetMemoryLimit) and GOGC is not set in its
// environment; an operator's GOGC is always kept. It returns the setting
// in effect. Call it first in main, before the heap grows.
func Apply() Setting {
	s := Current()
	if _, set := os.LookupEnv("GOGC"); set || s.MemoryLimit == 0 || s.Percent < 0 || s.Percent >= Percent {
		return s
	}
	debug.SetGCPercent(Percent)
	s.Percent, s.Raised = Percent, true
	return s
}

// Current returns the collector's setting, read from runtime/metrics.
func Current() Setting {
	samples := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(samples)
	s := Setting{Percent: -1} // off: the runtime's -1, read as an unsigned value
	if p := samples[0].Value.Uint64(); p <= math.MaxInt32 {
		s.Percent = int(p)
	}
	if l := samples[1].Value.Uint64(); l < math.MaxInt64 {
		s.MemoryLimit = int64(l)
	}
	return s
}

// ServerEnv returns the environment entries that give a Temporal server
// process the platform's collector setting: GOGC=[Percent] under
// GOMEMLIMIT=[ServerMemoryLimit].
func ServerEnv() []string {
	return []string{"GOGC=" + strconv.Itoa(Percent), "GOMEMLIMIT=" + ServerMemoryLimit}
}
