//go:build integration

package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/workflows"
)

// BenchmarkListIncidents lists a backlog of N open incidents (default
// 10,000; IRU_BENCH_LIST_N) in one page through the API (GET
// /api/v1/incidents?asset=…&limit=N: token check, visibility query in
// one call of up to 10,000 rows, JSON answer, decoded by the client) on
// each target (sub-benchmarks dev and cluster: the real server on
// PostgreSQL; -bench 'ListIncidents/cluster' for one). The incidents are
// started on a task queue no worker polls, so they stay open without
// costing the machine anything while the list runs. Beside the API's time
// it reports, from the same run, the time to read the same records
// straight from visibility (ListWorkflowExecutions pages of up to 10,000,
// nothing decoded): the API's limit. It also reports the CPU time the
// Temporal server process spent per list through the API
// (server-cpu-ms/list; on the cluster without PostgreSQL's), and the time
// to count the same incidents (count-ms: the visibility store's own query
// over the same rows, without reading them out).
//
//	go test -tags integration -run '^$' -bench ListIncidents -benchtime 3x ./internal/api/
//	go test -tags integration -run '^$' -bench 'ListIncidents/cluster' -benchtime 3x ./internal/api/
func BenchmarkListIncidents(b *testing.B) {
	n := MaxListLimit
	if v := os.Getenv("IRU_BENCH_LIST_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > MaxListLimit {
			b.Fatalf("IRU_BENCH_LIST_N=%q: want 1 to %d", v, MaxListLimit)
		}
	}
	for _, name := range testenv.Targets {
		b.Run(name, func(b *testing.B) { benchmarkList(b, testenv.ByName(b, name), n) })
	}
}

// benchmarkList is [BenchmarkListIncidents] on one target.
func benchmarkList(b *testing.B, target testenv.Target, n int) {
	c := testenv.Dial(b, target, testenv.RoleAPI, client.Options{Logger: tlog.NewStructuredLogger(slogNop())})
	asset := "list-bench-" + uuid.NewString()[:8]
	openBacklog(b, c, asset, n)

	cfg := configFor("http://127.0.0.1:1")
	// The benchmark times the list, however long it takes on a loaded
	// machine, rather than the API's 504 at IRU_API_REQUEST_TIMEOUT.
	cfg.RequestTimeout = 10 * time.Minute
	rs, err := NewResponder(ResponderOptions{Config: cfg, Temporal: c, Verifier: tokenVerifier{}, Log: slogNop()})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer((&Server{Log: slogNop(), Temporal: fakeTemporal{}, Responder: rs}).Handler())
	defer ts.Close()
	url := fmt.Sprintf("%s/api/v1/incidents?asset=%s&limit=%d", ts.URL, asset, n)
	query, err := listQuery(map[string][]string{"asset": {asset}})
	if err != nil {
		b.Fatal(err)
	}

	server := serverProcess(target)
	var api, raw, count, serverCPU time.Duration
	b.ResetTimer()
	for b.Loop() {
		cpu0 := processCPU(server)
		t0 := time.Now()
		got := listThroughAPI(b, url)
		api += time.Since(t0)
		serverCPU += processCPU(server) - cpu0
		if got != n {
			b.Fatalf("listed %d incidents, want %d", got, n)
		}
		t0 = time.Now()
		if got := listRaw(b, c, query); got != n {
			b.Fatalf("visibility listed %d incidents, want %d", got, n)
		}
		raw += time.Since(t0)
		t0 = time.Now()
		if resp, err := c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query}); err != nil || resp.GetCount() != int64(n) {
			b.Fatalf("visibility counts %d incidents, want %d (%v)", resp.GetCount(), n, err)
		}
		count += time.Since(t0)
	}
	b.StopTimer()
	per := float64(b.N)
	b.ReportMetric(api.Seconds()*1000/per, "api-ms/list")
	b.ReportMetric(raw.Seconds()*1000/per, "visibility-ms/list")
	b.ReportMetric(api.Seconds()/raw.Seconds(), "api/visibility")
	b.ReportMetric(count.Seconds()*1000/per, "count-ms")
	cpu := "not measured"
	if server != 0 {
		b.ReportMetric(serverCPU.Seconds()*1000/per, "server-cpu-ms/list")
		cpu = fmt.Sprintf("%.0f ms", serverCPU.Seconds()*1000/per)
	}
	b.Logf("| list %d incidents, one page, %s | API %.0f ms | visibility alone %.0f ms | %.2fx | server CPU per list %s | count %.0f ms |",
		n, target.Name(), api.Seconds()*1000/per, raw.Seconds()*1000/per, api.Seconds()/raw.Seconds(), cpu, count.Seconds()*1000/per)
}

// serverProcess returns the pid of the Temporal server process serving
// target (0 if none is found): on the dev server the process whose command
// line is `temporal server start-dev … --port PORT`; on the cluster the
// `temporal-server … start --service …` process this test process started
// (its PostgreSQL is not counted).
func serverProcess(target testenv.Target) int {
	_, port, err := net.SplitHostPort(target.Address())
	if err != nil {
		return 0
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		switch target.Name() {
		case "dev":
			if i := slices.Index(args, "--port"); slices.Contains(args, "start-dev") && i >= 0 && i+1 < len(args) && args[i+1] == port {
				return pid
			}
		case "cluster":
			if ppid, _, ok := testenv.ProcStat(pid); ok && ppid == os.Getpid() && slices.Contains(args, "--service") && slices.Contains(args, "start") {
				return pid
			}
		}
	}
	return 0
}

// processCPU is the user and system CPU time process pid has used so far
// (0 if pid is 0 or its stat is unreadable).
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	_, cpu, _ := testenv.ProcStat(pid)
	return cpu
}

// openBacklog starts n incident workflows about asset on a fresh task
// queue no worker polls, and waits until visibility counts all of them.
func openBacklog(tb testing.TB, c client.Client, asset string, n int) {
	tb.Helper()
	queue := "list-bench-" + uuid.NewString()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				key := fmt.Sprintf("%s:%d", asset, i)
				in := workflows.IncidentInput{IncidentID: fmt.Sprintf("INC-LIST-%d", i), Key: key, Asset: asset, Severity: "medium", Playbook: "capacity", OpenedBy: "system:bench"}
				_, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
					ID: workflows.IncidentWorkflowID(key), TaskQueue: queue,
					TypedSearchAttributes: temporal.NewSearchAttributes(
						workflows.SeverityKey.ValueSet(in.Severity), workflows.PlaybookKey.ValueSet(in.Playbook),
						workflows.AssetKey.ValueSet(asset), workflows.PhaseKey.ValueSet("detection"), workflows.DrillKey.ValueSet(false)),
				}, workflows.IncidentWorkflow, in)
				if err != nil {
					tb.Errorf("start %s: %v", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	query := fmt.Sprintf("WorkflowType = '%s' AND %s = '%s'", workflows.IncidentWorkflow, workflows.AssetKey.GetName(), asset)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err == nil && resp.GetCount() >= int64(n) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("visibility counts %d of %d incidents after 5 min (%v)", resp.GetCount(), n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// listThroughAPI GETs url as a responder and returns how many incidents
// the answer lists; it fails on any other status. (A next_page_token may
// come with a page that ends exactly where the incidents do: visibility
// cannot tell a full last page from one with more after it.)
func listThroughAPI(tb testing.TB, url string) int {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer good")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var l IncidentList
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("list: status %d: %v", resp.StatusCode, err)
	}
	return len(l.Incidents)
}

// listRaw pages through query on visibility directly and returns how many
// executions it listed.
func listRaw(tb testing.TB, c client.Client, query string) int {
	tb.Helper()
	n := 0
	var token []byte
	for {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: visibilityPageSize, NextPageToken: token})
		if err != nil {
			tb.Fatal(err)
		}
		n += len(resp.GetExecutions())
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return n
		}
	}
}

// countingClient counts the visibility list calls made through it.
type countingClient struct {
	client.Client
	lists atomic.Int64
}

func (c *countingClient) ListWorkflow(ctx context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	c.lists.Add(1)
	return c.Client.ListWorkflow(ctx, req)
}

// TestListBacklogOnePage: 2,500 open incidents come back whole in one
// page of limit 2500 from the current target, read in one visibility call
// (the server's frontend.visibilityMaxPageSize lets a page hold a whole
// answer), and with limit 1000 in three pages linked by next_page_token
// without a duplicate or a gap.
func TestListBacklogOnePage(t *testing.T) {
	const n = 2500
	c := &countingClient{Client: testenv.Client(t, client.Options{Logger: tlog.NewStructuredLogger(slogNop())})}
	asset := "list-test-" + uuid.NewString()[:8]
	openBacklog(t, c, asset, n)
	rs, err := NewResponder(ResponderOptions{Config: configFor("http://127.0.0.1:1"), Temporal: c, Verifier: tokenVerifier{}, Log: slogNop()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer((&Server{Log: slogNop(), Temporal: fakeTemporal{}, Responder: rs}).Handler())
	defer ts.Close()
	if got := listThroughAPI(t, fmt.Sprintf("%s/api/v1/incidents?asset=%s&limit=%d", ts.URL, asset, n)); got != n {
		t.Fatalf("one page listed %d, want %d", got, n)
	}
	if got := c.lists.Load(); got != 1 {
		t.Errorf("one page of %d took %d visibility calls, want 1", n, got)
	}
	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		var l IncidentList
		code, raw := call(t, ts.URL, "GET", fmt.Sprintf("/api/v1/incidents?asset=%s&limit=1000&page_token=%s", asset, token), "good", nil, &l, nil)
		if code != http.StatusOK {
			t.Fatalf("page %d: status %d: %s", page, code, raw)
		}
		for _, s := range l.Incidents {
			if seen[s.ID] {
				t.Fatalf("page %d lists %s again", page, s.ID)
			}
			seen[s.ID] = true
		}
		if token = l.NextPageToken; token == "" {
			break
		}
		if page > 3 {
			t.Fatal("more than three pages of 1000 for 2500 incidents")
		}
	}
	if len(seen) != n {
		t.Fatalf("pages listed %d distinct incidents, want %d", len(seen), n)
	}
}
