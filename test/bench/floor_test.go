//go:build integration

package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/workerhost"
	"github.com/iru-responder/responder/workflows"
)

// The storm's floor: what Temporal alone takes to put the storm's alerts
// into incidents on the target, measured in the same run as the storm (its
// limit, as the no-op handler is the accepting's). The alerts go straight
// from the benchmark to Temporal through the forwarder's own calls
// (forward.Deliver for a new key, the Signaler's Signal for a running
// incident), as the forwarder delivered them in every storm measured (two
// calls per incident: a SignalWithStart with the first half of its
// alerts, then a Signal with the rest; eight calls at a time, its call
// slots), to a
// workflow that only counts them ([floorWorkflow], registered under the
// incident workflow's name on a worker with the platform's options). No
// intake, spool, playbook or ledger runs: the platform makes these calls
// and more, so it cannot put alerts into incidents faster than the
// processor time they take allows (floorResult.Limit).

// floorCallSlots is how many calls the floor pass makes at a time: the
// forwarder's default (forward.Options.Concurrency).
const floorCallSlots = 8

// floorWorkflow stands in for the incident workflow in the floor pass: it
// counts the alerts its signals carry and answers the status query with
// the count, until it is terminated.
func floorWorkflow(ctx workflow.Context, _ workflows.IncidentInput) error {
	n := 0
	if err := workflow.SetQueryHandler(ctx, workflows.StatusQuery, func(workflows.StatusQueryInput) (workflows.IncidentStatus, error) {
		return workflows.IncidentStatus{AlertsReceived: n}, nil
	}); err != nil {
		return fmt.Errorf("register %s query: %w", workflows.StatusQuery, err)
	}
	ch := workflow.GetSignalChannel(ctx, workflows.AlertSignal)
	for {
		var in workflows.AlertSignalInput
		ch.Receive(ctx, &in)
		n += len(in.Alerts)
	}
}

// floorResult is what the floor pass measured.
type floorResult struct {
	// Dur is from the first call until the workflows counted every alert.
	Dur time.Duration
	// CPU is the processor time spent meanwhile (as stormResult.CPU).
	CPU testenv.CPUUse
}

// Limit is the floor for alerts alerts as a rate: the alerts a second the
// machine's processors could put into incidents if they did nothing but
// the floor pass's work, processors ÷ (its processor time per alert, in
// this process, the Temporal server and PostgreSQL). Not alerts ÷ Dur: in
// the pass, new workflows' first tasks wait in matching's task queue
// partitions for up to a second or two, so its wall time varied
// 2,022–10,519 alerts/s over three runs on the dev server (2026-12-07)
// while its processor time per alert stayed within 175–195 µs.
func (f floorResult) Limit(alerts int) float64 {
	perAlert := f.CPU.Total().Seconds() / float64(alerts)
	if perAlert <= 0 {
		return math.Inf(1)
	}
	return float64(runtime.NumCPU()) / perAlert
}

// measureFloor runs the floor pass for p on r's target: p.Alerts alerts
// about p.Assets assets, as the intake would hand them over, delivered and
// counted as described above. The workflows are terminated before it
// returns.
func measureFloor(tb testing.TB, r *rig, p stormParams) floorResult {
	tb.Helper()
	tq := "floor-" + uuid.NewString()
	w := testenv.StartWorker(tb, func() worker.Worker {
		w := worker.New(r.WorkerClient, tq, workerhost.WorkerOptions(worker.Options{}))
		w.RegisterWorkflowWithOptions(floorWorkflow, workflow.RegisterOptions{Name: workflows.IncidentWorkflow})
		return w
	})
	// Its polls stay out of the storm that follows.
	defer w.Stop()

	// Each asset's alerts, split in the two calls.
	perAsset := make([][]forward.Record, p.Assets)
	now := time.Now().UTC()
	for j := range p.Alerts {
		i := j % p.Assets
		perAsset[i] = append(perAsset[i], floorRecord(i, j, now))
	}
	ids := make([]string, p.Assets)
	want := make([]int, p.Assets)
	for i := range ids {
		ids[i] = workflows.IncidentWorkflowID(floorKey(i))
		want[i] = len(perAsset[i])
	}
	// Terminated however the pass ends: a floor workflow left running
	// would take the next pass's alerts on the same key to a task queue
	// no worker polls.
	defer r.terminate(tb, "floor pass done", ids)

	// The starts, then the signals: a key's Signal follows its start, as
	// in the forwarder, where a key's next call waits for its last. (One
	// round of both once raced a Signal ahead of its start when the calls
	// were fewer than the slots: "incident:floor:bench-0 is not running".)
	starts := make([][]forward.Record, 0, p.Assets)
	signals := make([][]forward.Record, 0, p.Assets)
	for _, recs := range perAsset {
		half := (len(recs) + 1) / 2
		starts = append(starts, recs[:half])
		if rest := recs[half:]; len(rest) > 0 {
			signals = append(signals, rest)
		}
	}
	sig := forward.TemporalSignaler{Client: r.Client}
	round := func(calls [][]forward.Record, call func(ctx context.Context, recs []forward.Record) error) {
		inParallel(floorCallSlots, len(calls), func(_, k int) bool {
			ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
			defer cancel()
			if err := call(ctx, calls[k]); err != nil {
				tb.Errorf("floor call for %s: %v", calls[k][0].Key, err)
				return false
			}
			return true
		})
	}

	cpu0 := testenv.CPUNow()
	start := time.Now()
	// A new key's first call, as the forwarder makes it.
	round(starts, func(ctx context.Context, recs []forward.Record) error {
		return forward.Deliver(ctx, sig, tq, recs)
	})
	// A running incident's, as the forwarder makes it.
	if !tb.Failed() {
		round(signals, func(ctx context.Context, recs []forward.Record) error {
			id := workflows.IncidentWorkflowID(recs[0].Key)
			found, err := sig.Signal(ctx, id, forward.SignalInput(recs))
			if err == nil && !found {
				err = fmt.Errorf("%s is not running", id)
			}
			return err
		})
	}
	if tb.Failed() {
		tb.FailNow()
	}

	got := make([]int, p.Assets)
	deadline := time.Now().Add(p.Timeout)
	for r.alertsReceived(ids, want, got).Received < p.Alerts {
		if time.Now().After(deadline) {
			tb.Fatalf("floor pass: the workflows counted %v after %s, want %v", got, p.Timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res := floorResult{Dur: time.Since(start), CPU: testenv.CPUNow().Sub(cpu0)}
	if os.Getenv(shapeVar) != "" {
		r.logHistoryShape(tb, "floor", ids)
	}
	return res
}

// floorKey is the floor pass's correlation key of asset i.
func floorKey(i int) string { return "floor:" + asset(i) }

// floorRecord is alert j of the storm, about asset i, as the intake
// spools it: routed to the storm's playbook under the floor pass's key,
// with every field the intake fills for such an alert
// (BenchmarkAlertStorm's bodies through the generic parser: an id, a
// fingerprint, the inventory's place, the labels, both times and the raw
// body's digest), so the calls carry what the forwarder's would.
func floorRecord(i, j int, now time.Time) forward.Record {
	fp := sha256.Sum256(fmt.Appendf(nil, "storm|ContainerShell|%s|%d", asset(i), j))
	raw := sha256.Sum256(fmt.Appendf(nil, "body %d", j))
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	return forward.Record{Key: floorKey(i), Playbook: "capacity", Mapped: true, OpenedBy: "generic", Alert: workflows.Alert{
		ID: id.String(), Fingerprint: hex.EncodeToString(fp[:8]), Source: "generic", Rule: "ContainerShell",
		Severity: "high", Asset: asset(i), AssetRef: &activities.AssetRef{Name: asset(i), Node: "pve1", VMID: vmid(i)},
		Summary: fmt.Sprintf("alert %d", j), Labels: map[string]string{"n": fmt.Sprint(j)},
		ObservedAt: now, ReceivedAt: now, RawDigest: "sha256:" + hex.EncodeToString(raw[:]) + "#0",
	}}
}
