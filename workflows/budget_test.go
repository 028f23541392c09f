package workflows

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/iru-responder/responder/internal/codec"
)

// stateLimit is the bound the budget test holds every payload to (256 KB).
const stateLimit = 256_000

// maxAlert is an alert with every part at the intake's byte budget
// (parse.Budget defaults: labels 48 KiB with no label over 8 KiB, summary
// 4 KiB, rule and fingerprint 1 KiB), written in characters JSON would
// escape.
func maxAlert(i int) Alert {
	labels := map[string]string{"realm": "iru", "username": "bob"}
	for j := range 5 {
		labels[fmt.Sprintf("bulk%d", j)] = strings.Repeat("<", 8<<10-16)
	}
	labels["more"] = strings.Repeat("&", 7<<10)
	return Alert{ID: fmt.Sprintf("alert-%04d", i), Fingerprint: fmt.Sprintf("%04d", i) + strings.Repeat(">", 1<<10-8),
		Source: "generic", Rule: strings.Repeat("<", 1<<10), Severity: "high", Asset: "web-1",
		Summary: strings.Repeat("<", 4<<10), Labels: labels}
}

func payloadSize(t *testing.T, dc converter.DataConverter, v ...any) int {
	t.Helper()
	ps, err := dc.ToPayloads(v...)
	if err != nil {
		t.Fatal(err)
	}
	return proto.Size(ps)
}

// TestStateBudget fills every byte cap of the incident state (300 alerts
// at the intake's budget with distinct fingerprints, 200 escalations with
// 64 KiB reasons) and keeps the status query's result, the continue-as-new
// carry and the largest signal under 256 KB, encoded with the platform's
// converter. Without the budgets (counts only) the status and the carry
// are about 14 MB each, over the server's 2 MB limit.
func TestStateBudget(t *testing.T) {
	dc := codec.NewPlainDataConverter()
	h := newHarness(t, makePlaybook(pbOpts{}))
	h.env.SetDataConverter(dc)
	// The test measures bytes, not time: 200 signed escalations with 64 KiB
	// reasons take longer than the default 1 s deadlock detection under
	// -race on a loaded 2-core machine.
	h.env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: 30 * time.Second})
	in := input("wf-test")
	in.Alerts = []Alert{maxAlert(0)}
	const signals, escalations = 300, 200
	in.ContinueAsNewAfter = signals + escalations + 1
	largestSignal := 0
	at := time.Minute
	for i := 1; i <= signals; i++ {
		sig := AlertSignalInput{Alerts: []Alert{maxAlert(i)}}
		largestSignal = max(largestSignal, payloadSize(t, dc, sig))
		h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(AlertSignal, sig) }, at)
		at += time.Second
	}
	reason := strings.Repeat("<", 64<<10)
	for range escalations {
		h.update(at, EscalateUpdate, EscalateInput{By: lead, Reason: reason})
		at += time.Second
	}
	var st IncidentStatus
	var statusBytes int
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(StatusQuery, StatusQueryInput{})
		if err != nil {
			t.Errorf("status query: %v", err)
			return
		}
		if err := v.Get(&st); err != nil {
			t.Error(err)
		}
		statusBytes = payloadSize(t, dc, st)
		// One more message continues the run as new.
		h.env.SignalWorkflow(AlertSignal, AlertSignalInput{Alerts: []Alert{maxAlert(signals + 1)}})
	}, at)
	h.env.ExecuteWorkflow(IncidentWorkflow, in)
	var can *workflow.ContinueAsNewError
	if err := h.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	carryBytes := proto.Size(can.Input)
	var next IncidentInput
	if err := dc.FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	t.Logf("status %d bytes, carry %d bytes, largest signal %d bytes, start input %d bytes; %d alert records, %d timeline entries (%d dropped), %d labels",
		statusBytes, carryBytes, largestSignal, payloadSize(t, dc, in), len(st.Alerts), len(st.Timeline), st.TimelineDropped, len(st.Labels))

	// Every cap is filled: alerts, timeline and labels were cut by bytes.
	if st.AlertsReceived != signals+1 || len(st.Alerts) >= signals || len(st.Alerts) == 0 {
		t.Errorf("received %d alerts, kept %d records: the alerts' byte cap was not reached", st.AlertsReceived, len(st.Alerts))
	}
	if st.TimelineDropped == 0 || len(st.Timeline) >= maxTimeline {
		t.Errorf("timeline %d entries, %d dropped: its byte cap was not reached", len(st.Timeline), st.TimelineDropped)
	}
	if st.Labels["username"] != "bob" || st.Labels["realm"] != "iru" || len(st.Labels) == len(in.Alerts[0].Labels) {
		t.Errorf("labels kept %v: want username and realm kept and bulky labels left out", keysOf(st.Labels))
	}
	for name, n := range map[string]int{"status query": statusBytes, "continue-as-new carry": carryBytes,
		"largest signal": largestSignal, "start input": payloadSize(t, dc, in)} {
		if n <= 0 || n >= stateLimit {
			t.Errorf("%s is %d bytes encoded, want under %d", name, n, stateLimit)
		}
	}
	if next.Carry == nil || next.Carry.Status.AlertsReceived != signals+2 || next.Carry.Status.Labels["username"] != "bob" {
		t.Fatal("the carry lost the state")
	}
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
