//go:build integration

package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// openIncidents is how many incidents BenchmarkIncidentOpening opens.
const openIncidents = 200

// BenchmarkIncidentOpening opens 200 incidents, one alert each, through
// the real intake (8 detectors posting at once), on the dev server and on
// the cluster, running the playbook that waits for an approval
// (testdata/playbooks/capacity.yaml). It reports the processor time one
// opening costs the Temporal server (this process's children), the
// machine's PostgreSQL (the cluster's store, a system service) and this
// process (intake, forwarder, worker, ledger): from the first POST until
// every incident waits for its approval and a second more, less what the
// same processes used idle over a second before. That cost bounds an
// alert storm's new incidents and containment at ten incidents a second;
// the benchmark is a diagnostic beside them, with no goal of its own.
//
//	go test -tags integration -run '^$' -bench IncidentOpening -benchtime 1x -count 3 ./test/bench/
func BenchmarkIncidentOpening(b *testing.B) {
	for _, target := range testenv.Targets {
		b.Run(target, func(b *testing.B) {
			for range b.N {
				res := measureOpening(b, testenv.ByName(b, target), openIncidents)
				b.ReportMetric(ms(res.Server), "server-cpu-ms/incident")
				b.ReportMetric(ms(res.Test), "test-cpu-ms/incident")
				b.ReportMetric(ms(res.Database), "database-cpu-ms/incident")
				b.ReportMetric(ms(res.Settled), "settled-ms")
				b.Logf("| incident opening (%s) | %d incidents | CPU per opening: Temporal server %.2f ms, PostgreSQL %.2f ms, this process %.2f ms | all waiting for approval at %s |",
					target, openIncidents, ms(res.Server), ms(res.Database), ms(res.Test), res.Settled.Round(time.Millisecond))
			}
		})
	}
}

// openingResult is what one opening cost, on average.
type openingResult struct {
	// Server, Database and Test are the processor time per incident of
	// the Temporal server, of PostgreSQL (the cluster's store) and of this
	// process.
	Server, Database, Test time.Duration
	// Settled is from the first POST until every incident waited for its
	// approval.
	Settled time.Duration
}

// measureOpening opens n incidents on a fresh rig and returns what one
// opening cost.
func measureOpening(b testing.TB, target testenv.Target, n int) openingResult {
	b.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "playbooks"))
	if err != nil {
		b.Fatal(err)
	}
	r := newRig(b, rigOptions{PlaybooksDir: dir, Target: target, Containers: n})
	ir := r.openIntake(b, filepath.Join("testdata", "storm-rules.yaml"))
	hc := &http.Client{Timeout: 30 * time.Second}
	bodies := make([][]byte, n)
	for j := range bodies {
		a := genericAlert{Source: "storm", Rule: "ContainerShell", Severity: "high", Asset: asset(j),
			Summary: fmt.Sprintf("alert %d", j), ObservedAt: time.Now().UTC().Format(time.RFC3339Nano)}
		if bodies[j], err = json.Marshal(a); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = workflows.IncidentWorkflowID("capacity:" + asset(i))
	}
	b.Cleanup(func() { r.terminate(b, "benchmark done", ids) })

	// What the processes use idle, over as long as the tail below.
	const tail = time.Second
	idle0 := testenv.CPUNow()
	time.Sleep(tail)
	idle := testenv.CPUNow().Sub(idle0)

	cpu0 := testenv.CPUNow()
	start, _ := postAll(b, hc, ir.URL, bodies, 8, nil)
	if b.Failed() {
		b.FailNow()
	}
	ir.waitDrained(b, time.Minute)
	for _, id := range ids {
		if st := testplatform.WaitStep(b, r.Client, id, "gate", workflows.StepWaitingApproval, 2*time.Minute); st.AlertsReceived != 1 {
			b.Fatalf("incident %s waits for its approval with %d alerts, want 1", id, st.AlertsReceived)
		}
	}
	settled := time.Since(start)
	time.Sleep(tail)
	use := testenv.CPUNow().Sub(cpu0).Sub(idle)
	return openingResult{Server: use.Children / time.Duration(n), Database: use.Database / time.Duration(n), Test: use.Self / time.Duration(n), Settled: settled}
}
