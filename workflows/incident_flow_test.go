package workflows

import (
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/iru-responder/responder/activities"
)

// TestLedgerInOrderUnderConcurrentSteps runs the shipped container playbook
// (containment in parallel, approvals as updates) against a ledger whose
// appends take longer the lower their sequence number, so appends started
// together would land out of order. The ledger must still receive 1..n in
// order, each once, with no append refused for a gap.
func TestLedgerInOrderUnderConcurrentSteps(t *testing.T) {
	h := newHarness(t)
	h.fake.ledgerDelay = func(e activities.LedgerAppendInput) time.Duration {
		return time.Duration(max(0, 8-e.Seq%8)) * 2 * time.Millisecond
	}
	h.approve(time.Minute, "shutdown", lead)
	h.approve(2*time.Minute, "restore", lead2)
	h.update(90*time.Second, AcknowledgeUpdate, AcknowledgeInput{By: officer})
	res, st := h.run(input("container-compromise"))
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if res.LedgerFailures != 0 {
		t.Errorf("%d ledger failures", res.LedgerFailures)
	}
	h.fake.checkLedger(t, st.LedgerSeq)
	kinds := []string{}
	for _, e := range h.fake.ledger {
		kinds = append(kinds, e.Kind)
	}
	if kinds[0] != "incident_opened" || kinds[len(kinds)-1] != "incident_closed" {
		t.Errorf("ledger kinds %v: want incident_opened first and incident_closed last", kinds)
	}
	if !slices.Contains(kinds, "acknowledgement") {
		t.Errorf("ledger kinds %v: the acknowledgement is missing", kinds)
	}
}

// TestEscalateAnswersBeforeNotification: the escalate update answers while
// the notification it triggers is still being delivered (a slow notifier),
// and the incident still waits for the delivery before it closes.
func TestEscalateAnswersBeforeNotification(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	release := make(chan struct{})
	var delivered, timedOut atomic.Bool
	h.fake.before[activities.NotifySend] = func(in activities.ActionInput) {
		if in.StepID != "escalation-1" {
			return
		}
		select {
		case <-release:
		case <-time.After(10 * time.Second):
			timedOut.Store(true)
		}
		delivered.Store(true)
	}
	var answeredBeforeDelivery atomic.Bool
	var answered atomic.Bool
	h.env.RegisterDelayedCallback(func() {
		arg := h.signed(EscalateUpdate, EscalateInput{By: lead, Reason: "need the CISO"})
		h.env.UpdateWorkflow(EscalateUpdate, "esc-1", &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(error) { close(release) },
			OnComplete: func(_ any, err error) {
				answered.Store(err == nil)
				answeredBeforeDelivery.Store(!delivered.Load())
				close(release)
			},
		}, arg)
	}, 50*time.Second)
	h.approve(time.Minute, "stop", lead2)
	res, _ := h.run(input("wf-test"))
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if !answered.Load() {
		t.Fatal("the escalate update did not answer")
	}
	if !answeredBeforeDelivery.Load() || timedOut.Load() {
		t.Errorf("the escalate update waited for the notification (answered before delivery: %v, notifier timed out: %v)",
			answeredBeforeDelivery.Load(), timedOut.Load())
	}
	if !delivered.Load() {
		t.Error("the incident closed before the escalation notification was delivered")
	}
	if slices.IndexFunc(h.fake.calls, func(c activities.ActionInput) bool { return c.StepID == "escalation-1" }) < 0 {
		t.Error("no escalation notification was sent")
	}
}

// TestStartAlertsTakenOnce: the intake starts an incident with its alerts
// in the start's signal only. The new incident counts each alert once,
// records one alert entry right after it opens, and its first step already
// sees the alert (its labels render into the step's parameters).
func TestStartAlertsTakenOnce(t *testing.T) {
	pb := strings.Replace(makePlaybook(pbOpts{}), `params: {asset: "{{ .Asset }}"}`, `params: {asset: "{{ .Labels.host }}"}`, 1)
	h := newHarness(t, pb)
	in := input("wf-test")
	alerts := in.Alerts
	alerts[0].Labels["host"] = "web-1.lab"
	in.Alerts = nil
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(AlertSignal, AlertSignalInput{Alerts: alerts})
	}, 0)
	h.approve(time.Minute, "stop", lead)
	res, st := h.run(in)
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if res.AlertsReceived != 1 || len(st.Alerts) != 1 || st.Alerts[0].Count != 1 {
		t.Errorf("received %d alerts, %d distinct, %+v; want the one alert once", res.AlertsReceived, len(st.Alerts), st.Alerts)
	}
	if c, ok := h.fake.call("resolve"); !ok || c.Params["asset"] != "web-1.lab" {
		t.Errorf("first step params = %v: it did not see the start's alert", c.Params)
	}
	if e := h.fake.ledgerKinds("alert"); len(e) != 1 || e[0].Seq != 2 {
		t.Errorf("alert ledger entries = %+v, want one, right after incident_opened", e)
	}
}

// TestDrillIdentityRefusedOutsideDrills performs the attack: a validly
// signed approval by the drill identity, with the ir-lead role, sent to an
// incident that is not a drill. The validator refuses it and the step keeps
// waiting; the same approval on a drill incident is accepted.
func TestDrillIdentityRefusedOutsideDrills(t *testing.T) {
	drillBot := Approver{Subject: DrillApproverSubject, Username: DrillApproverUsername, Roles: []string{"ir-lead"}}
	for _, tt := range []struct {
		name  string
		drill bool
	}{{"incident", false}, {"drill", true}} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, makePlaybook(pbOpts{approval: "{roles: [ir-lead], quorum: 1, timeout: 30m, on_timeout: deny}"}))
			forged := h.approve(time.Minute, "stop", drillBot)
			var waiting string
			h.env.RegisterDelayedCallback(func() { waiting = stepStatus(h.status(), "stop") }, 2*time.Minute)
			in := input("wf-test")
			in.Drill = tt.drill
			res, st := h.run(in)
			if !tt.drill {
				if RejectionType(forged.rejected) != RejectDrillOnly {
					t.Fatalf("drill identity on a real incident: rejected = %v, want type %s", forged.rejected, RejectDrillOnly)
				}
				if waiting != StepWaitingApproval || stepStatus(st, "stop") != StepDenied {
					t.Errorf("step stop: %s after the refused approval, %s at the end; want waiting, then denied by the timeout", waiting, stepStatus(st, "stop"))
				}
				if slices.ContainsFunc(h.fake.ledgerKinds("approval"), func(e activities.LedgerAppendInput) bool { return e.Actor == DrillApproverSubject }) {
					t.Error("the refused approval reached the ledger as an approval")
				}
				return
			}
			if forged.rejected != nil || forged.err != nil || stepStatus(st, "stop") != StepSucceeded || res.State != StateResolved {
				t.Errorf("drill identity on a drill: rejected %v, err %v, stop %s, state %s", forged.rejected, forged.err, stepStatus(st, "stop"), res.State)
			}
		})
	}
}

// TestAutoApproveOnlyOnDrills: a drill's incident approves the steps its
// AutoApprove lists as the drill identity, without any message; the same
// list on an incident that is not a drill approves nothing.
func TestAutoApproveOnlyOnDrills(t *testing.T) {
	for _, drill := range []bool{true, false} {
		h := newHarness(t, makePlaybook(pbOpts{approval: "{roles: [ir-lead], quorum: 1, timeout: 30m, on_timeout: deny}"}))
		in := input("wf-test")
		in.Drill, in.AutoApprove = drill, []string{"stop"}
		res, st := h.run(in)
		var got string
		for _, s := range res.Steps {
			if s.ID == "stop" {
				got = s.Approval
			}
		}
		approvals := h.fake.ledgerKinds("approval")
		if drill {
			if got != approvalDrillApproved || stepStatus(st, "stop") != StepSucceeded || len(approvals) != 1 || approvals[0].Actor != DrillApproverSubject {
				t.Errorf("drill: stop approval %q, status %s, ledger %+v; want drill_approved by %s", got, stepStatus(st, "stop"), approvals, DrillApproverSubject)
			}
			continue
		}
		if got != approvalDenied || stepStatus(st, "stop") != StepDenied || len(approvals) != 0 {
			t.Errorf("not a drill: stop approval %q, status %s, ledger %+v; want denied by the timeout", got, stepStatus(st, "stop"), approvals)
		}
	}
}

// TestLedgerAdoptsEntriesOfALostAttempt: a worker died after appending
// two entries of a workflow task, before the task completed, and the
// retried attempt orders them the other way round (signals that arrived
// meanwhile are handled in it). The run keeps the stored entries, appends
// each of its own once, and loses none: no append fails, no record is in
// the chain twice, the chain is 1..n.
func TestLedgerAdoptsEntriesOfALostAttempt(t *testing.T) {
	first := newHarness(t)
	first.approve(time.Minute, "shutdown", lead)
	first.approve(2*time.Minute, "restore", lead2)
	first.run(input("container-compromise"))
	want := slices.Clone(first.fake.ledger)
	if len(want) < 4 {
		t.Fatalf("first run appended %d entries", len(want))
	}

	fake := newFake()
	lost2, lost3 := want[2], want[1] // the lost attempt's order
	lost2.Seq, lost3.Seq = 2, 3
	fake.ledger = []activities.LedgerAppendInput{want[0], lost2, lost3}
	h := newHarnessWith(t, fake)
	h.approve(time.Minute, "shutdown", lead)
	h.approve(2*time.Minute, "restore", lead2)
	res, st := h.run(input("container-compromise"))
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if res.LedgerFailures != 0 {
		t.Errorf("%d ledger appends failed", res.LedgerFailures)
	}
	fake.checkLedger(t, st.LedgerSeq)
	seen := map[string]int64{}
	for _, e := range fake.ledger {
		k := ledgerRecordKey(e)
		if s, ok := seen[k]; ok {
			t.Errorf("entry %d (%s %s) is entry %d again", e.Seq, e.Kind, e.StepID, s)
		}
		seen[k] = e.Seq
	}
	if len(fake.ledger) != len(want) {
		t.Errorf("chain has %d entries, the run without a lost attempt %d", len(fake.ledger), len(want))
	}
}

// TestLedgerBatchesQueuedEntries: the ledger writer sends the entries
// queued while an append is on its way in one batch ([ledgerBatchChange]),
// so the entries recorded before the first steps (opening, alert, phase)
// go together, and the chain is still 1..n in order, each once.
func TestLedgerBatchesQueuedEntries(t *testing.T) {
	h := newHarness(t)
	h.fake.ledgerDelay = func(activities.LedgerAppendInput) time.Duration { return 5 * time.Millisecond }
	h.approve(time.Minute, "shutdown", lead)
	h.approve(2*time.Minute, "restore", lead2)
	res, st := h.run(input("container-compromise"))
	if res.State != StateResolved || res.LedgerFailures != 0 {
		t.Fatalf("state = %s (%s), %d ledger failures", res.State, res.Reason, res.LedgerFailures)
	}
	h.fake.checkLedger(t, st.LedgerSeq)
	b := h.fake.batches
	if len(b) == 0 || b[0] < 3 {
		t.Fatalf("batches %v: want the opening, the alert and the first phase in the first", b)
	}
	if len(b) >= len(h.fake.ledger) {
		t.Errorf("%d batches for %d entries: want fewer batches than entries", len(b), len(h.fake.ledger))
	}
	kinds := []string{}
	for _, e := range h.fake.ledger[:3] {
		kinds = append(kinds, e.Kind)
	}
	if !slices.Equal(kinds, []string{"incident_opened", "alert", "phase"}) {
		t.Errorf("first entries %v, want incident_opened, alert, phase", kinds)
	}
}

// TestLedgerBatchRefusedMidway: an entry in the middle of a batch is
// refused for good. It is counted as a failure, the entries before it
// stay stored, and those after it go again in the next batch into the
// slots from the refused one's on: the chain stays 1..n, with no gap
// refused and every other entry stored once.
func TestLedgerBatchRefusedMidway(t *testing.T) {
	first := newHarness(t)
	first.approve(time.Minute, "shutdown", lead)
	first.approve(2*time.Minute, "restore", lead2)
	first.run(input("container-compromise"))
	var want []string
	phases := 0
	for _, e := range first.fake.ledger {
		if e.Kind == "phase" {
			phases++
			continue
		}
		want = append(want, e.Kind+"/"+e.StepID+"/"+e.Outcome)
	}

	h := newHarness(t)
	h.fake.refuse = map[string]bool{"phase": true}
	h.approve(time.Minute, "shutdown", lead)
	h.approve(2*time.Minute, "restore", lead2)
	res, _ := h.run(input("container-compromise"))
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if res.LedgerFailures != phases {
		t.Errorf("%d ledger failures, want %d (the phase entries)", res.LedgerFailures, phases)
	}
	h.fake.checkLedger(t, int64(len(h.fake.ledger)))
	if !slices.ContainsFunc(h.fake.refusedAt, func(i int) bool { return i > 0 }) {
		t.Errorf("refused at batch positions %v: want one refused after a stored entry of its batch", h.fake.refusedAt)
	}
	var got []string
	for _, e := range h.fake.ledger {
		got = append(got, e.Kind+"/"+e.StepID+"/"+e.Outcome)
	}
	// Parallel steps may end in another order from one run to the next.
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ledger\n%v\nwant (the run without refusals, less its phase entries)\n%v", got, want)
	}
}

// TestWaitingIncidentKeepsFewCoroutines: an incident waiting for an
// approval keeps no ledger writer coroutine (each coroutine is a goroutine
// with its own stack, and a backlog holds thousands of waiting
// incidents), and the writer started again for the entries after the
// approval still writes the ledger 1..n in order.
func TestWaitingIncidentKeepsFewCoroutines(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	// Incidents left blocked by earlier tests do not count.
	before := incidentGoroutines(nil)
	var waiting map[string]string
	h.env.RegisterDelayedCallback(func() {
		if got := stepStatus(h.status(), "stop"); got != StepWaitingApproval {
			t.Errorf("step stop is %s, want it waiting for its approval", got)
		}
		waiting = incidentGoroutines(before)
	}, 30*time.Second)
	h.approve(time.Minute, "stop", lead)
	res, st := h.run(input("wf-test"))
	if res.State != StateResolved || res.LedgerFailures != 0 {
		t.Fatalf("state = %s (%s), %d ledger failures", res.State, res.Reason, res.LedgerFailures)
	}
	var stacks []string
	writer := false
	for _, g := range waiting {
		stacks = append(stacks, g)
		writer = writer || strings.Contains(g, "(*incident).writeLedger")
	}
	if writer || len(waiting) != 2 {
		t.Errorf("%d coroutines while waiting, want 2 (the run and its signal loop; no ledger writer):\n%s", len(waiting), strings.Join(stacks, "\n\n"))
	}
	h.fake.checkLedger(t, st.LedgerSeq)
	if e := h.fake.ledgerKinds("incident_closed"); len(e) != 1 {
		t.Errorf("incident_closed entries: %d, want 1", len(e))
	}
}

// incidentGoroutines returns the stacks of this process's goroutines that
// run the incident interpreter's code (the test environment's coroutines
// are goroutines), by goroutine header, leaving out those in except.
func incidentGoroutines(except map[string]string) map[string]string {
	buf := make([]byte, 4<<20)
	out := map[string]string{}
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		id, _, _ := strings.Cut(g, " [")
		if _, old := except[id]; !old && strings.Contains(g, "workflows.(*incident)") {
			out[id] = g
		}
	}
	return out
}
