package intake

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHandler is the intake's own work per request, without the
// network and without Temporal: one single-alert generic POST with an API
// key through the real handler (authentication, limits, parse, route,
// spool append with group-commit fsync, 202) per op, from parallel
// goroutines (GOMAXPROCS x 16, as concurrent detectors, so group commits
// fill). Its ns/op is the handler's CPU and wait, its allocs/op what the
// garbage collector pays per alert.
//
//	go test -run '^$' -bench '^BenchmarkHandler$' -benchmem ./internal/intake/
func BenchmarkHandler(b *testing.B) {
	e := &env{t: b, dir: b.TempDir(), events: &eventLog{}}
	e.open()
	defer e.close()
	const assets = 50
	bodies := make([][]byte, assets)
	for i := range bodies {
		bodies[i] = genericAlert(fmt.Sprintf("bench-%d", i), i)
	}
	var n atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bodies[n.Add(1)%assets]
			req := httptest.NewRequest(http.MethodPost, "/v1/alerts/generic", bytes.NewReader(body))
			req.SetPathValue("detector", "generic")
			req.Header.Set("Authorization", "Bearer "+genericKey)
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, req)
			if w.Code != http.StatusAccepted {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	st := e.sp.Stats()
	b.ReportMetric(float64(b.N)/float64(max(st.Commits, 1)), "alerts/fsync")
}

// cpuTime is the processor time (user and system) the process used so far:
// on a shared machine the handler's cost per request, where ns/op also
// counts the waits for a processor.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
