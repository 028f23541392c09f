//go:build integration

package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake"
)

// floodServerEnv makes TestFloodServerProcess serve (in the child process
// BenchmarkIntakeFlood starts).
const floodServerEnv = "IRU_TEST_FLOOD_SERVER"

// TestFloodServerProcess is the API server of BenchmarkIntakeFlood, run
// as a separate process so that its memory is measured alone: the intake
// (one Falco detector, the default limits), the responder API and the
// access log on a SQLite ledger, served with the production timeouts on
// 127.0.0.1 until its stdin closes. Skipped unless the benchmark starts it.
func TestFloodServerProcess(t *testing.T) {
	if os.Getenv(floodServerEnv) != "1" {
		t.Skip("the flood benchmark's server process")
	}
	s := newEdgeStack(t, edgeOptions{limits: intake.DefaultLimits()})
	s.ts.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.srv.Serve(ln) }()
	fmt.Printf("ADDR %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// procStatus returns the kB value of field (VmRSS, VmHWM) of pid.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// BenchmarkIntakeFlood floods the intake of a separate API server process
// with 200 concurrent unauthenticated 1 MiB POSTs (bad API key, from
// 127.0.0.2) for 3 seconds, while a legitimate detector (from 127.0.0.1)
// posts an alert every 50 ms; the same legitimate posts are timed before
// the flood. It reports the server's idle RSS (after the legitimate
// baseline) and peak RSS during the flood (VmHWM, reset before the flood),
// and the legitimate alert's latency with and without the flood.
// Loopback only; run with -benchtime=1x.
func BenchmarkIntakeFlood(b *testing.B) {
	for range b.N {
		floodOnce(b)
	}
}

func floodOnce(b *testing.B) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodServerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), floodServerEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	addr := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		b.Fatal("the server process did not say its address")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	pid := cmd.Process.Pid
	base := "http://" + addr

	legit := &http.Client{Timeout: 30 * time.Second}
	postLegit := func() (time.Duration, int) {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/alerts/falco", bytes.NewReader(falcoAlert))
		req.Header.Set("Authorization", "Bearer "+edgeKey)
		t0 := time.Now()
		resp, err := legit.Do(req)
		if err != nil {
			return time.Since(t0), 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t0), resp.StatusCode
	}
	timed := func(n int) ([]time.Duration, int) {
		var ds []time.Duration
		failed := 0
		for range n {
			d, code := postLegit()
			if code != http.StatusAccepted {
				failed++
			}
			ds = append(ds, d)
			time.Sleep(50 * time.Millisecond)
		}
		slices.Sort(ds)
		return ds, failed
	}
	for range 5 { // warm up: connections, spool, ledger
		postLegit()
	}
	baseline, baseFailed := timed(40)
	idle, err := procStatus(pid, "VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	// Reset the peak (VmHWM) to the current RSS.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		b.Fatalf("reset the peak RSS: %v", err)
	}

	body := bytes.Repeat([]byte("A"), 1<<20)
	stop := make(chan struct{})
	var sent, errs atomic.Int64
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, base+"/v1/alerts/falco", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer not-the-key")
				sent.Add(1)
				resp, err := c.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // the flood is under way
	during, duringFailed := timed(40)
	close(stop)
	wg.Wait()
	peak, err := procStatus(pid, "VmHWM")
	if err != nil {
		b.Fatal(err)
	}

	p := func(ds []time.Duration, q float64) time.Duration { return ds[int(q*float64(len(ds)-1))] }
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(float64(idle)/1024, "idle_RSS_MiB")
	b.ReportMetric(float64(peak)/1024, "peak_RSS_MiB")
	b.ReportMetric(float64(peak)/float64(idle), "peak/idle")
	b.ReportMetric(ms(p(baseline, 0.5)), "p50_ms_quiet")
	b.ReportMetric(ms(p(during, 0.5)), "p50_ms_flood")
	b.ReportMetric(ms(p(baseline, 0.95)), "p95_ms_quiet")
	b.ReportMetric(ms(p(during, 0.95)), "p95_ms_flood")
	b.ReportMetric(float64(sent.Load()), "flood_requests")
	b.Logf("flood: %d requests of 1 MiB, answers %v, %d client errors (connections closed on refusal); legitimate alerts refused: %d quiet, %d during the flood",
		sent.Load(), statuses, errs.Load(), baseFailed, duringFailed)
	if baseFailed+duringFailed > 0 {
		b.Errorf("%d legitimate alerts were not accepted", baseFailed+duringFailed)
	}
}
