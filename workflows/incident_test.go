package workflows

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/related"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/playbooks"
)

// fakeActions implements every catalog action and the ledger for tests. It
// records calls and can be told to fail or block an action.
type fakeActions struct {
	mu     sync.Mutex
	calls  []activities.ActionInput // in start order
	ledger []activities.LedgerAppendInput
	// fail makes a step (by StepID) or an action (by name) fail.
	fail map[string]error
	// before runs before an action (by name) returns, outside the lock.
	before map[string]func(activities.ActionInput)
	// ledgerDelay, if set, is how long an append takes before it lands.
	ledgerDelay func(activities.LedgerAppendInput) time.Duration
	// gaps are the sequence numbers of appends refused for a missing
	// predecessor.
	gaps []int64
	// batches are the sizes of the batches appended, in order.
	batches []int
	// refuse makes appends of these kinds fail for good (bad input);
	// refusedAt are the positions in their batch of those refused.
	refuse    map[string]bool
	refusedAt []int
	// local are the StepIDs of the calls run as local activities, in
	// start order; undelivered, if set, is what a local notify.send
	// reports it could not deliver.
	local       []string
	undelivered string
}

func newFake() *fakeActions {
	return &fakeActions{fail: map[string]error{}, before: map[string]func(activities.ActionInput){}}
}

func (f *fakeActions) run(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	local := activity.GetInfo(ctx).IsLocalActivity
	f.mu.Lock()
	f.calls = append(f.calls, in)
	undelivered := ""
	if local {
		f.local = append(f.local, in.StepID)
		undelivered = f.undelivered
	}
	hook := f.before[in.Action]
	err := f.fail[in.StepID]
	if err == nil {
		err = f.fail[in.Action]
	}
	f.mu.Unlock()
	if hook != nil {
		hook(in)
	}
	if err != nil {
		return activities.ActionResult{}, err
	}
	a, lerr := activities.Lookup(in.Action)
	if lerr != nil {
		return activities.ActionResult{}, lerr
	}
	res := activities.ActionResult{Outputs: map[string]string{}, Undo: map[string]string{"prior": "state-of-" + in.StepID}, Summary: "did " + in.Action}
	for _, o := range a.Outputs {
		res.Outputs[o] = in.Action + "." + o
	}
	switch in.Action {
	case activities.PVEResolveAsset:
		res.Outputs["node"], res.Outputs["ip"], res.Outputs["last_backup"] = "pve1", "10.0.0.5", "local:backup/vzdump-lxc-101.tar.zst"
	case activities.NotifySend:
		res.Outputs[activities.OutputUndelivered] = undelivered
	}
	return res, nil
}

// append stores an entry like the ledger does: a retry of a stored entry
// is accepted again, an entry whose predecessor is missing is refused
// (final), and every refusal is kept in gaps.
func (f *fakeActions) append(_ context.Context, in activities.LedgerAppendInput) (activities.LedgerAppendResult, error) {
	f.mu.Lock()
	delay := f.ledgerDelay
	f.mu.Unlock()
	if delay != nil {
		time.Sleep(delay(in))
	}
	return f.appendNow(context.Background(), in)
}

// refusing reports whether appends of e's kind are refused.
func (f *fakeActions) refusing(e activities.LedgerAppendInput) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refuse[e.Kind]
}

// appendNow is append without the delay.
func (f *fakeActions) appendNow(_ context.Context, in activities.LedgerAppendInput) (activities.LedgerAppendResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse[in.Kind] {
		return activities.LedgerAppendResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "refused kind "+in.Kind, nil)
	}
	if in.Seq <= int64(len(f.ledger)) {
		stored := f.ledger[in.Seq-1]
		if ledgerRecordKey(stored) != ledgerRecordKey(in) {
			return activities.LedgerAppendResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("seq %d holds another entry", in.Seq),
				activities.ErrTypeConflict, nil, activities.LedgerStoredEntry{Seq: in.Seq, Record: stored})
		}
		return activities.LedgerAppendResult{Hash: fmt.Sprintf("h%d", in.Seq)}, nil
	}
	if in.Seq != int64(len(f.ledger))+1 {
		f.gaps = append(f.gaps, in.Seq)
		return activities.LedgerAppendResult{}, activities.NewFinalError(activities.ErrTypeLedgerGap, fmt.Sprintf("entry %d before %d", in.Seq, len(f.ledger)+1), nil)
	}
	f.ledger = append(f.ledger, in)
	return activities.LedgerAppendResult{Hash: fmt.Sprintf("h%d", in.Seq)}, nil
}

// appendBatch stores a batch like the ledger's pipelined appends: the
// entries in order, each as append stores it, up to the first refused
// one; the batch takes the delay of its first entry, once. batches counts
// the calls and their sizes.
func (f *fakeActions) appendBatch(ctx context.Context, in activities.LedgerAppendBatchInput) (activities.LedgerAppendBatchResult, error) {
	var res activities.LedgerAppendBatchResult
	f.mu.Lock()
	delay := f.ledgerDelay
	f.batches = append(f.batches, len(in.Entries))
	f.mu.Unlock()
	if delay != nil && len(in.Entries) > 0 {
		time.Sleep(delay(in.Entries[0]))
	}
	for i, e := range in.Entries {
		r, err := f.appendNow(ctx, e)
		if err != nil && f.refusing(e) {
			f.mu.Lock()
			f.refusedAt = append(f.refusedAt, i)
			f.mu.Unlock()
		}
		if err == nil {
			res.Stored = append(res.Stored, r)
			continue
		}
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) {
			return res, err
		}
		res.Failed = &activities.LedgerAppendFailure{Type: ae.Type(), Message: ae.Message()}
		var stored activities.LedgerStoredEntry
		if ae.HasDetails() && ae.Details(&stored) == nil {
			res.Failed.Stored = &stored
		}
		break
	}
	return res, nil
}

// steps returns the StepIDs called for action ("" = all), in start order.
func (f *fakeActions) steps(action string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if action == "" || c.Action == action {
			out = append(out, c.StepID)
		}
	}
	return out
}

func (f *fakeActions) call(stepID string) (activities.ActionInput, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.StepID == stepID {
			return c, true
		}
	}
	return activities.ActionInput{}, false
}

// checkLedger asserts the ledger received exactly the sequence 1..n, in
// that order, once each, and refused nothing for a gap.
func (f *fakeActions) checkLedger(t *testing.T, wantLast int64) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	seqs := make([]int64, 0, len(f.ledger))
	for _, e := range f.ledger {
		seqs = append(seqs, e.Seq)
		if e.IncidentID == "" || e.Kind == "" || e.At.IsZero() {
			t.Errorf("ledger entry %d incomplete: %+v", e.Seq, e)
		}
	}
	if len(f.gaps) > 0 {
		t.Errorf("appends refused for a missing predecessor: %v", f.gaps)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("ledger received %v, want 1..n in order", seqs)
		}
	}
	if int64(len(seqs)) != wantLast {
		t.Errorf("ledger has %d entries, status says last seq %d", len(seqs), wantLast)
	}
}

func (f *fakeActions) ledgerKinds(kind string) []activities.LedgerAppendInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []activities.LedgerAppendInput
	for _, e := range f.ledger {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// testPlaybook is a small playbook for interpreter tests; POLICY, APPROVAL
// and DRILL are replaced per test.
const testPlaybook = `name: wf-test
version: "1"
description: interpreter test playbook
severity_default: high
DRILL
phases:
  detection:
    - id: resolve
      action: pve.resolve_asset
      params: {asset: "{{ .Asset }}"}
  containment:
    - id: isolate
      action: pve.isolate
      params: {asset: "{{ .Asset }}", reason: "on {{ .Steps.resolve.node }}"}
    - id: disable
      action: kc.disable_user
      params: {realm: "{{ .Labels.realm }}", user_id: u-1}
  investigation:
    - id: probe
      action: net.health_probe
      params: {target: "{{ .Steps.resolve.ip }}:22"}
      on_failure: POLICY
  remediation:
    - id: stop
      action: pve.stop
      params: {asset: "{{ .Asset }}"}
      approval: APPROVAL
      compensation: none
  recovery:
    - id: enable
      action: kc.enable_user
      params: {realm: "{{ .Labels.realm }}", user_id: u-1}
      compensates: disable
  post_incident:
    - id: report
      action: report.generate
`

type pbOpts struct{ policy, approval, drill string }

func makePlaybook(o pbOpts) string {
	return strings.NewReplacer("POLICY", cmp.Or(o.policy, "abort"),
		"APPROVAL", cmp.Or(o.approval, "{roles: [ir-lead], quorum: 1, timeout: 30m}"),
		"DRILL", o.drill).Replace(testPlaybook)
}

// harness is one test environment with fakes and the playbooks.
type harness struct {
	t    *testing.T
	env  *testsuite.TestWorkflowEnvironment
	fake *fakeActions
	// signer plays the API server: the worker's decision keys hold its key.
	signer *decision.LocalSigner
	nonce  int
}

func newHarness(t *testing.T, extra ...string) *harness {
	t.Helper()
	return newHarnessWith(t, newFake(), extra...)
}

func newHarnessWith(t *testing.T, fake *fakeActions, extra ...string) *harness {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	for _, a := range activities.Catalog() {
		if !a.Internal {
			env.RegisterActivityWithOptions(fake.run, activity.RegisterOptions{Name: a.Name})
		}
	}
	env.RegisterActivityWithOptions(fake.append, activity.RegisterOptions{Name: activities.LedgerAppend})
	env.RegisterActivityWithOptions(fake.appendBatch, activity.RegisterOptions{Name: activities.LedgerAppendBatch})
	embedded, err := playbooks.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for i, src := range extra {
		fsys[fmt.Sprintf("p%d.yaml", i)] = &fstest.MapFile{Data: []byte(src)}
	}
	custom, err := playbooks.Load(fsys)
	if err != nil {
		t.Fatalf("test playbook: %v", err)
	}
	resolve := func(ctx context.Context, in playbooks.ResolveInput) (playbooks.ResolveResult, error) {
		if res, err := (&playbooks.Resolver{Set: custom}).Resolve(ctx, in); err == nil {
			return res, nil
		}
		return (&playbooks.Resolver{Set: embedded}).Resolve(ctx, in)
	}
	env.RegisterActivityWithOptions(resolve, activity.RegisterOptions{Name: ResolveActivity})
	// No other incident is open unless a test says so (OnActivity).
	env.RegisterActivityWithOptions(func(context.Context, related.FindInput) (related.FindResult, error) {
		return related.FindResult{}, nil
	}, activity.RegisterOptions{Name: related.FindActivity})
	env.RegisterWorkflowWithOptions(Incident, workflow.RegisterOptions{Name: IncidentWorkflow})
	signer, err := decision.NewLocalSigner()
	if err != nil {
		t.Fatal(err)
	}
	keys := decision.KeySet{Keys: []decision.Key{signer.Key(time.Time{}, time.Time{})}}
	env.RegisterActivityWithOptions(func(context.Context, DecisionKeysInput) (DecisionKeysResult, error) {
		return DecisionKeysResult{Keys: keys}, nil
	}, activity.RegisterOptions{Name: DecisionKeysActivity})
	return &harness{t: t, env: env, fake: fake, signer: signer}
}

// statement signs a statement for kind by who, as the API server would,
// at the test clock's current time, bound to the test workflow's run.
func (h *harness) statement(kind decision.Kind, step string, who Approver, reason string, amr ...string) decision.Signed {
	h.t.Helper()
	h.nonce++
	now := h.env.Now().UTC()
	if amr == nil {
		amr = []string{"pwd", "otp"}
	}
	sg, err := decision.Sign(context.Background(), h.signer, decision.Statement{
		WorkflowID: "default-test-workflow-id", RunID: "default-test-run-id", StepID: step, Decision: kind,
		Subject: who.Subject, Username: who.Username, Roles: who.Roles, SourceIP: who.SourceIP,
		SessionID: "sid-" + who.Username, TokenID: fmt.Sprint("jti-", h.nonce), AMR: amr, ACR: "1", Reason: reason,
		IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute), Nonce: fmt.Sprint("nonce-", h.nonce),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return sg
}

// signed adds the statement to a message that has none (at send time).
func (h *harness) signed(name string, arg any) any {
	switch in := arg.(type) {
	case DecisionInput:
		if in.Statement.Empty() && in.Approver.Subject != "" {
			in.Statement = h.statement(decision.Kind(name), in.StepID, in.Approver, in.Reason)
		}
		return in
	case EscalateInput:
		if in.Statement.Empty() && in.By.Subject != "" {
			in.Statement = h.statement(decision.Escalate, "", in.By, in.Reason)
		}
		return in
	case AcknowledgeInput:
		if in.Statement.Empty() && in.By.Subject != "" {
			in.Statement = h.statement(decision.Acknowledge, "", in.By, in.Reason)
		}
		return in
	case RerouteInput:
		if in.Statement.Empty() && in.By.Subject != "" {
			in.Statement = h.statement(decision.Reroute, in.Asset, in.By, in.Reason)
		}
		return in
	case AbortInput:
		if in.Statement.Empty() && in.By.Subject != "" {
			in.Statement = h.statement(decision.Abort, "", in.By, in.Reason)
		}
		return in
	case ApprovalSignalInput:
		if in.Statement.Empty() && in.Approver.Subject != "" {
			kind := decision.Deny
			if in.Approve {
				kind = decision.Approve
			}
			in.Statement = h.statement(kind, in.StepID, in.Approver, in.Reason)
		}
		return in
	}
	return arg
}

// signal sends a signal whose message is signed at send time.
func (h *harness) signal(name string, arg any) { h.env.SignalWorkflow(name, h.signed(name, arg)) }

func input(playbook string) IncidentInput {
	return IncidentInput{
		IncidentID: "INC-7", Key: "k7", Asset: "web-1", Playbook: playbook, OpenedBy: "falco-intake",
		Alerts: []Alert{{ID: "a1", Fingerprint: "fp1", Source: "falco", Rule: "shell in container", Severity: "high",
			Asset: "web-1", Summary: "shell spawned", Labels: map[string]string{"realm": "iru", "username": "bob"}}},
	}
}

var (
	lead    = Approver{Subject: "sub-lead", Username: "lena", Roles: []string{"ir-lead"}, SourceIP: "10.1.0.7"}
	lead2   = Approver{Subject: "sub-lead2", Username: "lars", Roles: []string{"ir-lead"}, SourceIP: "10.1.0.8"}
	officer = Approver{Subject: "sub-so", Username: "sofia", Roles: []string{"security-officer"}, SourceIP: "10.1.0.9"}
)

// update sends an update at delay and records its rejection or result.
type updateOutcome struct {
	rejected error
	err      error
	done     bool
	result   any
}

func (h *harness) update(delay time.Duration, name string, arg any) *updateOutcome {
	o := &updateOutcome{}
	h.env.RegisterDelayedCallback(func() {
		arg := h.signed(name, arg)
		h.env.UpdateWorkflow(name, fmt.Sprintf("%s-%d", name, delay), &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { o.rejected, o.done = err, true },
			OnComplete: func(r any, err error) {
				o.result, o.err, o.done = r, err, true
			},
		}, arg)
	}, delay)
	return o
}

func (h *harness) approve(delay time.Duration, step string, by Approver) *updateOutcome {
	return h.update(delay, ApproveUpdate, DecisionInput{StepID: step, Approver: by, Reason: "looks right"})
}

func (h *harness) status() IncidentStatus {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(StatusQuery, StatusQueryInput{})
	if err != nil {
		h.t.Fatalf("query status: %v", err)
	}
	var st IncidentStatus
	if err := v.Get(&st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (h *harness) run(in IncidentInput) (IncidentResult, IncidentStatus) {
	h.t.Helper()
	h.env.ExecuteWorkflow(IncidentWorkflow, in)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("workflow error: %v", err)
	}
	var res IncidentResult
	if err := h.env.GetWorkflowResult(&res); err != nil {
		h.t.Fatal(err)
	}
	return res, h.status()
}

// continuedAsNew runs in, which must continue as new, and returns the
// next run's input.
func (h *harness) continuedAsNew(in IncidentInput) IncidentInput {
	h.t.Helper()
	h.env.ExecuteWorkflow(IncidentWorkflow, in)
	var can *workflow.ContinueAsNewError
	if err := h.env.GetWorkflowError(); !errors.As(err, &can) {
		h.t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	var next IncidentInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		h.t.Fatal(err)
	}
	return next
}

func stepStatus(st IncidentStatus, id string) string {
	for _, s := range st.Steps {
		if s.ID == id {
			return s.Status
		}
	}
	return "missing"
}

func phaseOrder(st IncidentStatus) []string {
	var out []string
	for _, e := range st.Timeline {
		if p, ok := strings.CutPrefix(e.What, "phase "); ok {
			out = append(out, p)
		}
	}
	return out
}

// TestContainerCompromise runs the shipped playbook end to end: every phase
// in order, containment in parallel, both approvals, isolation lifted in
// recovery (so nothing is left to compensate), a contiguous ledger.
func TestContainerCompromise(t *testing.T) {
	h := newHarness(t)
	// Containment is parallel: isolate waits until the session revocation
	// has started.
	revokeStarted := make(chan struct{})
	h.fake.before[activities.KCLogoutUser] = func(activities.ActionInput) { close(revokeStarted) }
	h.fake.before[activities.PVEIsolate] = func(activities.ActionInput) {
		select {
		case <-revokeStarted:
		case <-time.After(5 * time.Second):
			panic("containment is not parallel: the session revocation did not start while isolate ran")
		}
	}
	// Fake outputs make the restore condition true (last_backup is set).
	a1 := h.approve(time.Minute, "shutdown", lead)
	a2 := h.approve(2*time.Minute, "restore", lead2)
	res, st := h.run(input("container-compromise"))

	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if a1.rejected != nil || a2.rejected != nil || !a1.done || !a2.done {
		t.Fatalf("approvals: %+v %+v", a1, a2)
	}
	if got := phaseOrder(st); !slices.Equal(got, playbooks.Phases) {
		t.Errorf("phases ran %v, want %v", got, playbooks.Phases)
	}
	for _, s := range st.Steps {
		if s.Status != StepSucceeded {
			t.Errorf("step %s = %s (%s)", s.ID, s.Status, s.Error)
		}
	}
	order := h.fake.steps("")
	idx := func(id string) int { return slices.Index(order, id) }
	for _, pair := range [][2]string{{"resolve", "isolate"}, {"isolate", "snapshot"}, {"isolate", "evidence"}, {"snapshot", "evidence"}, {"evidence", "shutdown"},
		{"shutdown", "restore"}, {"restore", "start"}, {"probe", "unisolate"}, {"unisolate", "report"}} {
		if idx(pair[0]) < 0 || idx(pair[0]) > idx(pair[1]) {
			t.Errorf("%s did not run before %s: %v", pair[0], pair[1], order)
		}
	}
	isolate := st.Steps[slices.IndexFunc(st.Steps, func(s StepState) bool { return s.ID == "isolate" })]
	if len(st.Compensations) != 0 || isolate.Compensation != compLifted {
		t.Errorf("isolation not lifted by recovery: compensations %+v, isolate %q", st.Compensations, isolate.Compensation)
	}
	// Templates were rendered from the incident and earlier outputs.
	if c, _ := h.fake.call("restore"); c.Params["from"] != "local:backup/vzdump-lxc-101.tar.zst" || c.IdempotencyKey != "INC-7/restore" {
		t.Errorf("restore input = %+v", c)
	}
	if c, _ := h.fake.call("probe"); c.Params["asset"] != "web-1" || c.Params["target"] != "" || c.Params["retries"] != "5" {
		t.Errorf("probe params = %v", c.Params)
	}
	if c, _ := h.fake.call("snapshot"); c.Params["name"] != "ir-INC-7" {
		t.Errorf("snapshot params = %v", c.Params)
	}
	// Each step tells the worker its phase (workerhost.ContainFirst runs
	// detection and containment first).
	for step, phase := range map[string]string{"resolve": playbooks.PhaseDetection, "isolate": playbooks.PhaseContainment,
		"snapshot": playbooks.PhaseContainment, "evidence": playbooks.PhaseInvestigation, "shutdown": playbooks.PhaseRemediation,
		"start": playbooks.PhaseRecovery, "report": playbooks.PhasePostIncident} {
		if c, _ := h.fake.call(step); c.Phase != phase {
			t.Errorf("step %s ran with phase %q, want %q", step, c.Phase, phase)
		}
	}
	// Activities take no time in the test environment; approvals do.
	if st.Metrics.ContainedAt.IsZero() || st.Metrics.TimeToRecover != 2*time.Minute || st.Metrics.TimeToAcknowledge != time.Minute {
		t.Errorf("metrics = %+v", st.Metrics)
	}
	h.fake.checkLedger(t, st.LedgerSeq)
	approvals := h.fake.ledgerKinds("approval")
	if len(approvals) != 2 || approvals[0].Actor != "sub-lead" || approvals[0].SourceIP != "10.1.0.7" {
		t.Errorf("approval ledger entries = %+v", approvals)
	}
	if len(res.ReportRefs) != 1 {
		t.Errorf("report refs = %v", res.ReportRefs)
	}
	t.Logf("container-compromise: %d actions, %d ledger appends, %d timeline entries",
		len(h.fake.steps("")), len(h.fake.ledger), len(st.Timeline))
}

// TestApprovalValidators proves the update validators reject before
// anything is written: no identity, wrong role, four-eyes, duplicate
// decision, step not pending.
func TestApprovalValidators(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{approval: "{roles: [ir-lead, security-officer], quorum: 2, timeout: 30m}"}))
	in := input("wf-test")
	in.OpenedBy = "sub-opener"
	opener := Approver{Subject: "sub-opener", Username: "otto", Roles: []string{"ir-lead"}}
	outsider := Approver{Subject: "sub-x", Username: "xena", Roles: []string{"viewer"}}
	cases := []struct {
		name string
		o    *updateOutcome
		want string // the rejection type; "" for accepted
	}{
		{"no statement", h.approve(time.Minute, "stop", Approver{Roles: []string{"ir-lead"}}), RejectStatement},
		{"wrong role", h.approve(time.Minute+time.Second, "stop", outsider), RejectWrongRole},
		{"self approval", h.approve(time.Minute+2*time.Second, "stop", opener), RejectFourEyes},
		{"first approval", h.approve(time.Minute+3*time.Second, "stop", lead), ""},
		{"same approver again", h.approve(time.Minute+4*time.Second, "stop", lead), RejectAlreadyDecided},
		{"other step", h.approve(time.Minute+5*time.Second, "enable", lead2), RejectNotPending},
		{"quorum", h.approve(time.Minute+6*time.Second, "stop", officer), ""},
	}
	res, st := h.run(in)
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.o.done {
				t.Fatal("update never answered")
			}
			if c.want == "" {
				if c.o.rejected != nil || c.o.err != nil {
					t.Fatalf("rejected: %v %v", c.o.rejected, c.o.err)
				}
				return
			}
			if RejectionType(c.o.rejected) != c.want {
				t.Fatalf("rejection = %v, want %v", c.o.rejected, c.want)
			}
		})
	}
	var stop StepState
	for _, s := range st.Steps {
		if s.ID == "stop" {
			stop = s
		}
	}
	if stop.Approval == nil || len(stop.Approval.Approvals) != 2 || stop.Approval.Outcome != approvalApproved {
		t.Errorf("stop approval = %+v", stop.Approval)
	}
	// Rejected updates leave no trace in the ledger.
	if n := len(h.fake.ledgerKinds("approval")); n != 2 {
		t.Errorf("%d approval ledger entries, want 2", n)
	}
}

// TestQuorumTimeoutEscalates: one approval of two, the timeout escalates to
// the next tier (notify.send) and extends the wait; the second approval
// then lets the step run.
func TestQuorumTimeoutEscalates(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{approval: "{roles: [ir-lead], quorum: 2, timeout: 30m, on_timeout: escalate}"}))
	h.approve(time.Minute, "stop", lead)
	h.approve(45*time.Minute, "stop", lead2)
	res, st := h.run(input("wf-test"))
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if st.EscalationLevel != 1 {
		t.Errorf("escalation level = %d, want 1", st.EscalationLevel)
	}
	if got := h.fake.steps(activities.NotifySend); !slices.Equal(got, []string{"approval-stop", "escalation-1"}) {
		t.Fatalf("notifications = %v", got)
	}
	n, _ := h.fake.call("escalation-1")
	if n.Params["channel"] != "ir-lead" || n.Params["event"] != "escalation" {
		t.Errorf("escalation notify params = %v", n.Params)
	}
	if stepStatus(st, "stop") != StepSucceeded {
		t.Errorf("stop = %s", stepStatus(st, "stop"))
	}
	h.fake.checkLedger(t, st.LedgerSeq)
}

// TestEscalationsExhausted: with no decision at all the approval escalates
// up to max_escalations and the incident ends escalated-failed, keeping
// containment (no compensation).
func TestEscalationsExhausted(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{approval: "{roles: [ir-lead], timeout: 10m, max_escalations: 2}"}))
	res, st := h.run(input("wf-test"))
	if res.State != StateEscalatedFailed {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if got := h.fake.steps(activities.NotifySend); !slices.Equal(got, []string{"approval-stop", "escalation-1", "escalation-2"}) {
		t.Errorf("notifications = %v", got)
	}
	if len(h.fake.steps(activities.PVEUnisolate)) != 0 || stepStatus(st, "isolate") != StepSucceeded {
		t.Error("escalated incident must keep containment")
	}
	if stepStatus(st, "report") != StepSucceeded || stepStatus(st, "enable") != StepSkipped {
		t.Errorf("report = %s, enable = %s", stepStatus(st, "report"), stepStatus(st, "enable"))
	}
}

// TestDenyCompensatesInReverse: a denied step aborts; the compensations run
// in reverse order of registration (re-enabling the account once a lead
// approved it); post-incident still reports.
func TestDenyCompensatesInReverse(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	d := h.update(time.Minute, DenyUpdate, DecisionInput{StepID: "stop", Approver: lead, Reason: "production hours"})
	h.approve(2*time.Minute, "disable", lead2)
	in := input("wf-test")
	ref := activities.AssetRef{Name: "web-1", Node: "pve1", VMID: 121}
	in.AssetRef = &ref
	res, st := h.run(in)
	if d.rejected != nil || !d.done {
		t.Fatalf("deny: %+v", d)
	}
	if res.State != StateAborted || !strings.Contains(res.Reason, "denied by lena: production hours") {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	want := []string{"disable:compensate", "isolate:compensate"}
	var got []string
	for _, s := range h.fake.steps("") {
		if strings.HasSuffix(s, ":compensate") {
			got = append(got, s)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("compensations ran %v, want %v", got, want)
	}
	c, _ := h.fake.call("isolate:compensate")
	if c.Action != activities.PVEUnisolate || c.Undo["prior"] != "state-of-isolate" || c.Params["asset"] != "web-1" {
		t.Errorf("isolate compensation input = %+v", c)
	}
	// Actions and compensations act on where the intake found the asset.
	for _, id := range []string{"isolate", "isolate:compensate"} {
		if c, _ := h.fake.call(id); c.Resolved == nil || *c.Resolved != ref {
			t.Errorf("%s resolved asset = %+v, want %+v", id, c.Resolved, ref)
		}
	}
	for id, want := range map[string]string{"isolate": StepCompensated, "disable": StepCompensated, "stop": StepDenied, "enable": StepSkipped, "report": StepSucceeded} {
		if got := stepStatus(st, id); got != want {
			t.Errorf("step %s = %s, want %s", id, got, want)
		}
	}
	if n := len(h.fake.ledgerKinds("compensation")); n != 2 {
		t.Errorf("%d compensation ledger entries", n)
	}
	h.fake.checkLedger(t, st.LedgerSeq)
}

// TestDuplicateAlertsCountedOnce: alerts with a known fingerprint are
// counted, not repeated; a more severe alert raises the severity.
func TestDuplicateAlertsCountedOnce(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(AlertSignal, AlertSignalInput{Alerts: []Alert{
			{ID: "a2", Fingerprint: "fp1", Severity: "high"}, {ID: "a3", Fingerprint: "fp1", Severity: "high"},
			{ID: "a4", Fingerprint: "fp2", Rule: "egress", Severity: "critical"},
		}})
	}, 10*time.Second)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(AlertSignal, AlertSignalInput{Alerts: []Alert{{ID: "a5", Fingerprint: "fp2", Severity: "critical"}}})
	}, 20*time.Second)
	h.approve(time.Minute, "stop", lead)
	res, st := h.run(input("wf-test"))
	if res.AlertsReceived != 5 || len(st.Alerts) != 2 {
		t.Fatalf("received %d, distinct %d; want 5, 2", res.AlertsReceived, len(st.Alerts))
	}
	if st.Alerts[0].Count != 3 || st.Alerts[1].Count != 2 {
		t.Errorf("counts = %d, %d", st.Alerts[0].Count, st.Alerts[1].Count)
	}
	if st.Severity != "critical" {
		t.Errorf("severity = %s, want raised to critical", st.Severity)
	}
	// One ledger entry per batch with new fingerprints: the opening batch
	// and the first signal; the duplicate-only signal adds none.
	if n := len(h.fake.ledgerKinds("alert")); n != 2 {
		t.Errorf("%d alert ledger entries, want 2", n)
	}
}

// TestAbortMidContainment: an abort while containment runs lets the
// in-flight action finish, compensates it, skips the rest, reports.
func TestAbortMidContainment(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	h.env.OnActivity(activities.PVEIsolate, mock.Anything, mock.Anything).After(time.Minute).Return(
		func(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
			return h.fake.run(ctx, in)
		})
	h.env.RegisterDelayedCallback(func() {
		h.signal(AbortSignal, AbortInput{By: lead, Reason: "false positive"})
	}, 30*time.Second)
	res, st := h.run(input("wf-test"))
	if res.State != StateAborted || !strings.Contains(res.Reason, "aborted by lena: false positive") {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if !slices.Equal(h.fake.steps(activities.PVEUnisolate), []string{"isolate:compensate"}) {
		t.Errorf("unisolate calls = %v", h.fake.steps(activities.PVEUnisolate))
	}
	for id, want := range map[string]string{"isolate": StepCompensated, "disable": StepSkipped, "probe": StepSkipped, "report": StepSucceeded} {
		if got := stepStatus(st, id); got != want {
			t.Errorf("step %s = %s, want %s", id, got, want)
		}
	}
	if len(h.fake.steps(activities.KCDisableUser)) != 0 {
		t.Error("a step ran after the abort")
	}
	if n := len(h.fake.ledgerKinds("abort")); n != 1 {
		t.Errorf("%d abort ledger entries", n)
	}
	h.fake.checkLedger(t, st.LedgerSeq)
}

// TestOnFailurePolicies: a failing investigation step with continue,
// escalate and abort.
func TestOnFailurePolicies(t *testing.T) {
	tests := []struct {
		policy       string
		state        string
		unisolate    bool
		remediation  string
		notification []string
	}{
		{"continue", StateResolved, false, StepSucceeded, []string{"approval-stop"}},
		{"escalate", StateEscalatedFailed, false, StepSkipped, []string{"escalation-1"}},
		// The abort asks for the approval of re-enabling the account.
		{"abort", StateAborted, true, StepSkipped, []string{"approval-disable-compensate"}},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			h := newHarness(t, makePlaybook(pbOpts{policy: tt.policy}))
			h.fake.fail["probe"] = temporal.NewNonRetryableApplicationError("connection refused", activities.ErrTypePrecondition, nil)
			h.approve(time.Minute, "stop", lead)
			res, st := h.run(input("wf-test"))
			if res.State != tt.state {
				t.Fatalf("state = %s (%s), want %s", res.State, res.Reason, tt.state)
			}
			if stepStatus(st, "probe") != StepFailed || !strings.Contains(res.Reason+st.Steps[3].Error, "connection refused") {
				t.Errorf("probe = %s, reason %q", stepStatus(st, "probe"), res.Reason)
			}
			if got := len(h.fake.steps(activities.NetHealthProbe)); got != 1 {
				t.Errorf("final error retried: %d calls", got)
			}
			if got := stepStatus(st, "stop"); got != tt.remediation {
				t.Errorf("stop = %s, want %s", got, tt.remediation)
			}
			if got := len(h.fake.steps(activities.PVEUnisolate)) == 1; got != tt.unisolate {
				t.Errorf("unisolate ran = %v, want %v", got, tt.unisolate)
			}
			if got := h.fake.steps(activities.NotifySend); !slices.Equal(got, tt.notification) {
				t.Errorf("notifications = %v, want %v", got, tt.notification)
			}
			h.fake.checkLedger(t, st.LedgerSeq)
		})
	}
}

// TestDrillAutoApprove: auto_approve fires only in a drill and only where
// the playbook allows it; elsewhere the timeout escalates.
func TestDrillAutoApprove(t *testing.T) {
	tests := []struct {
		name     string
		approval string
		drill    bool
		state    string
		stop     string
	}{
		{"drill, drill_only", "{roles: [ir-lead], timeout: 5m, on_timeout: auto_approve, drill_only: true, max_escalations: 0}", true, StateResolved, StepSucceeded},
		{"real incident, drill_only", "{roles: [ir-lead], timeout: 5m, on_timeout: auto_approve, drill_only: true, max_escalations: 0}", false, StateEscalatedFailed, StepFailed},
		{"drill, escalate policy", "{roles: [ir-lead], timeout: 5m, on_timeout: escalate, max_escalations: 0}", true, StateEscalatedFailed, StepFailed},
		{"drill, deny policy", "{roles: [ir-lead], timeout: 5m, on_timeout: deny}", true, StateAborted, StepDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, makePlaybook(pbOpts{approval: tt.approval}))
			in := input("wf-test")
			in.Drill = tt.drill
			res, st := h.run(in)
			if res.State != tt.state || stepStatus(st, "stop") != tt.stop {
				t.Fatalf("state = %s (%s), stop = %s; want %s, %s", res.State, res.Reason, stepStatus(st, "stop"), tt.state, tt.stop)
			}
			if c, ok := h.fake.call("isolate"); !ok || c.Drill != tt.drill {
				t.Errorf("isolate drill flag = %v", c.Drill)
			}
		})
	}
}

// TestContinueAsNewKeepsState: past the message threshold the run continues
// as new while waiting for an approval; the next run resumes the wait with
// the approvals, alerts, ledger sequence and compensations intact.
func TestContinueAsNewKeepsState(t *testing.T) {
	pb := makePlaybook(pbOpts{approval: "{roles: [ir-lead, security-officer], quorum: 2, timeout: 30m}"})
	h := newHarness(t, pb)
	in := input("wf-test")
	in.ContinueAsNewAfter = 3
	h.approve(time.Minute, "stop", lead)
	for i := range 3 {
		h.env.RegisterDelayedCallback(func() {
			h.env.SignalWorkflow(AlertSignal, AlertSignalInput{Alerts: []Alert{{ID: fmt.Sprint("b", i), Fingerprint: fmt.Sprint("fp-b", i)}}})
		}, 2*time.Minute+time.Duration(i)*time.Second)
	}
	next := h.continuedAsNew(in)
	c := next.Carry
	if c == nil || c.Playbook.Name != "wf-test" || len(next.Alerts) != 0 {
		t.Fatalf("carry = %+v", c)
	}
	if c.Status.AlertsReceived != 3 || len(c.Status.Alerts) != 3 || stepStatus(c.Status, "stop") != StepWaitingApproval ||
		len(c.Status.Compensations) != 2 || c.Status.LedgerSeq == 0 {
		t.Fatalf("carried status: received %d, alerts %d, stop %s, compensations %d, seq %d",
			c.Status.AlertsReceived, len(c.Status.Alerts), stepStatus(c.Status, "stop"), len(c.Status.Compensations), c.Status.LedgerSeq)
	}
	prevLedger := len(h.fake.ledger)
	if int64(prevLedger) != c.Status.LedgerSeq {
		t.Fatalf("ledger appends not finished before continue-as-new: %d of %d", prevLedger, c.Status.LedgerSeq)
	}

	// Second run: same fakes (ledger continues), a new environment.
	h.fake.mu.Lock()
	h.fake.calls = nil
	h.fake.mu.Unlock()
	h2 := newHarnessWith(t, h.fake, pb)
	dup := h2.approve(time.Minute, "stop", lead)
	second := h2.approve(time.Minute+time.Second, "stop", officer)
	res, st := h2.run(next)
	if res.State != StateResolved || st.Runs != 1 {
		t.Fatalf("state = %s (%s), runs %d", res.State, res.Reason, st.Runs)
	}
	if second.rejected != nil || dup.rejected == nil {
		t.Errorf("second approval %v; duplicate from first run %v/%v (must be rejected)", second.rejected, dup.rejected, dup.err)
	}
	if slices.Contains(h2.fake.steps(""), "resolve") || slices.Contains(h2.fake.steps(""), "isolate") {
		t.Errorf("continued run repeated finished steps: %v", h2.fake.steps(""))
	}
	if !slices.Equal(h2.fake.steps(activities.KCEnableUser), []string{"enable"}) {
		t.Errorf("enable calls = %v", h2.fake.steps(activities.KCEnableUser))
	}
	h2.fake.checkLedger(t, st.LedgerSeq)
}

// TestUnknownPlaybookFails: the workflow fails fast (no retry storm) when
// the playbook does not exist.
func TestUnknownPlaybookFails(t *testing.T) {
	h := newHarness(t)
	h.env.ExecuteWorkflow(IncidentWorkflow, input("no-such-playbook"))
	err := h.env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("error = %v", err)
	}
}

// TestEscalateAndAcknowledgeUpdates: responder escalation notifies the next
// tier; acknowledge sets time to acknowledge; both need an identity.
func TestEscalateAndAcknowledgeUpdates(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	ack := h.update(30*time.Second, AcknowledgeUpdate, AcknowledgeInput{By: lead})
	anon := h.update(40*time.Second, EscalateUpdate, EscalateInput{Reason: "help"})
	esc := h.update(50*time.Second, EscalateUpdate, EscalateInput{By: lead, Reason: "need the CISO"})
	h.approve(time.Minute, "stop", lead2)
	res, st := h.run(input("wf-test"))
	if res.State != StateResolved {
		t.Fatalf("state = %s", res.State)
	}
	if ack.rejected != nil || st.Metrics.TimeToAcknowledge != 30*time.Second {
		t.Errorf("acknowledge: %v, TTA %v", ack.rejected, st.Metrics.TimeToAcknowledge)
	}
	if RejectionType(anon.rejected) != RejectStatement {
		t.Errorf("anonymous escalation: %v", anon.rejected)
	}
	r, _ := esc.result.(EscalateResult)
	if esc.rejected != nil || esc.err != nil || st.EscalationLevel != 1 {
		t.Errorf("escalate: %v %v level %d result %+v", esc.rejected, esc.err, st.EscalationLevel, r)
	}
	if e := h.fake.ledgerKinds("escalation"); len(e) != 1 || e[0].Actor != "sub-lead" || e[0].Outcome != "ir-lead" {
		t.Errorf("escalation ledger = %+v", e)
	}
}

// TestApprovalSignal: decisions sent as signals are checked like updates;
// a rejected one is recorded (ledger, timeline) and ignored.
func TestApprovalSignal(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	h.env.RegisterDelayedCallback(func() {
		h.signal(ApprovalSignal, ApprovalSignalInput{StepID: "stop", Approver: officer, Approve: true})
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.signal(ApprovalSignal, ApprovalSignalInput{StepID: "stop", Approver: lead, Approve: true, Reason: "ok"})
	}, 2*time.Minute)
	res, st := h.run(input("wf-test"))
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	rej := h.fake.ledgerKinds("decision_rejected")
	if len(rej) != 1 || rej[0].Actor != "sub-so" || !strings.Contains(rej[0].Reason, "approver lacks a required role") {
		t.Errorf("rejected decisions = %+v", rej)
	}
	ok := h.fake.ledgerKinds("approval")
	if len(ok) != 1 || ok[0].Detail["via"] != "signal" || ok[0].Actor != "sub-lead" {
		t.Errorf("approvals = %+v", ok)
	}
	if st.Metrics.TimeToAcknowledge != 2*time.Minute {
		t.Errorf("TTA = %v (a rejected decision is no acknowledgement)", st.Metrics.TimeToAcknowledge)
	}
}

// TestDryRun: every action gets DryRun and nothing is registered for
// compensation.
func TestDryRun(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	h.approve(time.Minute, "stop", lead)
	in := input("wf-test")
	in.DryRun = true
	res, st := h.run(in)
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	h.fake.mu.Lock()
	defer h.fake.mu.Unlock()
	for _, c := range h.fake.calls {
		if !c.DryRun {
			t.Errorf("%s ran without DryRun", c.StepID)
		}
	}
	for _, s := range st.Steps {
		if s.Compensation != "" {
			t.Errorf("step %s compensation %q in a dry run", s.ID, s.Compensation)
		}
	}
}

// TestFailedStepIsCompensated: an isolation that fails at its last call has
// changed part of the container; the abort that follows runs its
// compensation too (un-isolating works from what the action recorded).
func TestFailedStepIsCompensated(t *testing.T) {
	h := newHarness(t)
	h.fake.fail["isolate"] = temporal.NewNonRetryableApplicationError("PUT firewall/options: 500", activities.ErrTypePrecondition, nil)
	res, st := h.run(input("container-compromise"))
	if res.State != StateAborted {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	if got := h.fake.steps(activities.PVEUnisolate); !slices.Equal(got, []string{"isolate:compensate"}) {
		t.Errorf("unisolate calls = %v, want the failed isolation compensated", got)
	}
	if got := stepStatus(st, "isolate"); got != StepFailed && got != StepCompensated {
		t.Errorf("isolate = %s", got)
	}
	h.fake.checkLedger(t, st.LedgerSeq)
}

// TestTimeToContainIsWhenContainmentTookEffect: the time to contain is
// when the last containing action (isolation, session revocation) of the
// containment phase finished, not when the phase's slow evidence snapshot
// did; the phase keeps its own duration.
func TestTimeToContainIsWhenContainmentTookEffect(t *testing.T) {
	h := newHarness(t)
	slow := func(d time.Duration, action string) {
		h.env.OnActivity(action, mock.Anything, mock.Anything).After(d).Return(
			func(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
				return h.fake.run(ctx, in)
			})
	}
	slow(300*time.Millisecond, activities.PVEIsolate)
	slow(200*time.Millisecond, activities.KCLogoutUser)
	slow(10*time.Minute, activities.PVESnapshot)
	h.approve(20*time.Minute, "shutdown", lead)
	h.approve(21*time.Minute, "restore", lead2)
	res, st := h.run(input("container-compromise"))
	if res.State != StateResolved {
		t.Fatalf("state = %s (%s)", res.State, res.Reason)
	}
	m := st.Metrics
	isolate := st.Steps[slices.IndexFunc(st.Steps, func(s StepState) bool { return s.ID == "isolate" })]
	if !m.ContainedAt.Equal(isolate.FinishedAt) || m.TimeToContain != m.ContainedAt.Sub(st.OpenedAt) {
		t.Errorf("contained at %s (time to contain %s), want the isolation's end %s", m.ContainedAt, m.TimeToContain, isolate.FinishedAt)
	}
	if m.TimeToContain >= 10*time.Minute || m.TimeToContain < 300*time.Millisecond {
		t.Errorf("time to contain %s: want the 300 ms isolation, without the 10 min snapshot", m.TimeToContain)
	}
	if m.ContainmentPhase < 10*time.Minute || m.ContainmentPhaseDoneAt.Sub(st.OpenedAt) < 10*time.Minute {
		t.Errorf("containment phase %s, done at %s after opening: want the snapshot's 10 min in it",
			m.ContainmentPhase, m.ContainmentPhaseDoneAt.Sub(st.OpenedAt))
	}
	if res.Metrics != m {
		t.Errorf("result metrics %+v, status metrics %+v", res.Metrics, m)
	}
}
