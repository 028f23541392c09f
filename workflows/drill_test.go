package workflows

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/playbooks"
)

// scriptStep is one step of the scripted incident.
type scriptStep struct {
	id, phase, action string
	took              time.Duration
	approval          bool
	roles             []string
}

// scriptedIncident stands in for the Incident child workflow: it runs a
// script of steps with durations, waits for approvals, and exposes its
// status to the fake drill activities through shared memory (the test
// environment cannot query a child from an activity).
type scriptedIncident struct {
	script []scriptStep
	// reject makes the fake approve activity reject these steps.
	reject map[string]bool
	// approvalTimeout is how long an unapproved step waits before the
	// script approves it itself (like on_timeout: auto_approve).
	approvalTimeout time.Duration

	mu        sync.Mutex
	in        IncidentInput
	status    DrillChildStatus
	approved  map[string]Approver
	approves  []DrillApproveInput
	reports   []DrillReport
	statusErr int // status reads to fail first
}

func (f *scriptedIncident) update(fn func(st *DrillChildStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.status)
}

func (f *scriptedIncident) step(st *DrillChildStatus, id string) *DrillStepStatus {
	for i := range st.Steps {
		if st.Steps[i].ID == id {
			return &st.Steps[i]
		}
	}
	panic("no step " + id)
}

func (f *scriptedIncident) isApproved(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.approved[id]
	return ok
}

func (f *scriptedIncident) run(ctx workflow.Context, in IncidentInput) (IncidentResult, error) {
	opened := workflow.Now(ctx).UTC()
	f.mu.Lock()
	f.in = in
	f.status = DrillChildStatus{State: StateOpen, OpenedAt: opened}
	for _, s := range f.script {
		f.status.Steps = append(f.status.Steps, DrillStepStatus{ID: s.id, Phase: s.phase, Action: s.action, Status: StepPending})
	}
	f.mu.Unlock()
	for i, s := range f.script {
		f.update(func(st *DrillChildStatus) { st.Phase = s.phase })
		if s.approval {
			f.update(func(st *DrillChildStatus) {
				p := f.step(st, s.id)
				p.Status, p.AwaitingApproval, p.Roles, p.Quorum = StepWaitingApproval, true, s.roles, 1
			})
			deadline := workflow.Now(ctx).Add(f.approvalTimeout)
			for !f.isApproved(s.id) && workflow.Now(ctx).Before(deadline) {
				if err := workflow.Sleep(ctx, time.Second); err != nil {
					return IncidentResult{}, err
				}
			}
			f.update(func(st *DrillChildStatus) { f.step(st, s.id).AwaitingApproval = false })
		}
		f.update(func(st *DrillChildStatus) {
			p := f.step(st, s.id)
			p.Status, p.StartedAt = StepRunning, workflow.Now(ctx).UTC()
		})
		if err := workflow.Sleep(ctx, s.took); err != nil {
			return IncidentResult{}, err
		}
		now := workflow.Now(ctx).UTC()
		f.update(func(st *DrillChildStatus) {
			p := f.step(st, s.id)
			p.Status, p.FinishedAt = StepSucceeded, now
			last := i == len(f.script)-1 || f.script[i+1].phase != s.phase
			switch {
			case last && s.phase == playbooks.PhaseContainment:
				st.Metrics.ContainedAt, st.Metrics.TimeToContain = now, now.Sub(opened)
			case last && s.phase == playbooks.PhaseRecovery:
				st.Metrics.RecoveredAt, st.Metrics.TimeToRecover = now, now.Sub(opened)
			}
		})
	}
	var res IncidentResult
	f.update(func(st *DrillChildStatus) {
		st.State, st.ClosedAt = StateResolved, workflow.Now(ctx).UTC()
		res = IncidentResult{IncidentID: in.IncidentID, State: StateResolved, Metrics: st.Metrics}
	})
	return res, nil
}

func (f *scriptedIncident) childStatus(_ context.Context, in DrillChildStatusInput) (DrillChildStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.WorkflowID != IncidentWorkflowID(f.in.IncidentID) {
		return DrillChildStatus{}, activities.NewFinalError(activities.ErrTypeNotFound, "no workflow "+in.WorkflowID, nil)
	}
	if f.statusErr > 0 {
		f.statusErr--
		return DrillChildStatus{}, activities.NewFinalError(activities.ErrTypeNotFound, "status read failed (test)", nil)
	}
	out := f.status
	out.Steps = slices.Clone(f.status.Steps)
	return out, nil
}

func (f *scriptedIncident) approve(_ context.Context, in DrillApproveInput) (DrillApproveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.approves = append(f.approves, in)
	id := in.Decision.StepID
	if f.reject[id] {
		return DrillApproveResult{Rejection: "four-eyes (test)"}, nil
	}
	for _, s := range f.status.Steps {
		if s.ID == id && s.AwaitingApproval {
			if f.approved == nil {
				f.approved = map[string]Approver{}
			}
			f.approved[id] = in.Decision.Approver
			return DrillApproveResult{Accepted: true, Result: DecisionResult{StepID: id, Status: s.Status, Approvals: 1, Quorum: 1}}, nil
		}
	}
	return DrillApproveResult{Rejection: "step is not waiting for approval"}, nil
}

func (f *scriptedIncident) report(_ context.Context, in DrillReportInput) (DrillReportResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, in.Report)
	return DrillReportResult{MarkdownRef: "evidence://" + in.Report.IncidentID + "/md", JSONRef: "evidence://" + in.Report.IncidentID + "/json"}, nil
}

// containerScript is a container-compromise-like script; containment takes
// containTook after a 5 s detection.
func containerScript(containTook time.Duration) []scriptStep {
	return []scriptStep{
		{id: "resolve", phase: playbooks.PhaseDetection, action: activities.PVEResolveAsset, took: 5 * time.Second},
		{id: "isolate", phase: playbooks.PhaseContainment, action: activities.PVEIsolate, took: containTook},
		{id: "evidence", phase: playbooks.PhaseInvestigation, action: activities.PVECollectEvidence, took: 40 * time.Second},
		{id: "shutdown", phase: playbooks.PhaseRemediation, action: activities.PVEShutdown, took: 10 * time.Second, approval: true, roles: []string{"ir-lead"}},
		{id: "restore", phase: playbooks.PhaseRemediation, action: activities.PVERestore, took: 20 * time.Second, approval: true, roles: []string{"ir-lead"}},
		{id: "start", phase: playbooks.PhaseRecovery, action: activities.PVEStart, took: 10 * time.Second},
		{id: "report", phase: playbooks.PhasePostIncident, action: activities.ReportGenerate, took: 3 * time.Second},
	}
}

func runDrill(t *testing.T, f *scriptedIncident, in DrillInput) DrillReport {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Drill, workflow.RegisterOptions{Name: DrillWorkflow})
	env.RegisterWorkflowWithOptions(f.run, workflow.RegisterOptions{Name: IncidentWorkflow})
	env.RegisterActivityWithOptions(f.childStatus, activity.RegisterOptions{Name: DrillChildStatusActivity})
	env.RegisterActivityWithOptions(f.approve, activity.RegisterOptions{Name: DrillApproveActivity})
	env.RegisterActivityWithOptions(f.report, activity.RegisterOptions{Name: DrillReportActivity})
	env.ExecuteWorkflow(DrillWorkflow, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("drill did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("drill failed: %v", err)
	}
	var rep DrillReport
	if err := env.GetWorkflowResult(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

func drillInput() DrillInput {
	return DrillInput{
		Name: "canary", Playbook: "container-compromise", Target: "drill-canary", Mode: DrillModeLive,
		Objectives: []DrillObjective{
			{Name: ObjectiveContain, Within: 60 * time.Second},
			{Name: ObjectiveRecover, Within: time.Hour},
			{Name: ObjectiveReport, Within: 2 * time.Hour},
			{Name: PhaseObjective(playbooks.PhaseInvestigation), Within: time.Minute},
		},
		AutoApprove:  []string{"shutdown"},
		PollInterval: 5 * time.Second,
		Labels:       map[string]string{"health_url": "http://canary/health"},
	}
}

func objective(t *testing.T, rep DrillReport, name string) ObjectiveResult {
	t.Helper()
	for _, o := range rep.Objectives {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("report has no objective %s: %+v", name, rep.Objectives)
	return ObjectiveResult{}
}

func TestDrillObjectivesPassAndOnlyListedStepsApproved(t *testing.T) {
	f := &scriptedIncident{script: containerScript(20 * time.Second), approvalTimeout: 30 * time.Minute, statusErr: 1}
	rep := runDrill(t, f, drillInput())

	if !rep.Passed || len(rep.Failures) > 0 {
		t.Fatalf("drill did not pass: %v", rep.Failures)
	}
	// Only the listed step was approved, by the drill identity.
	var approved []string
	for _, a := range f.approves {
		approved = append(approved, a.Decision.StepID)
		if a.Decision.Approver.Subject != DrillApproverSubject || a.Decision.Approver.Username != DrillApproverUsername ||
			!slices.Contains(a.Decision.Approver.Roles, "ir-lead") {
			t.Errorf("approval sent as %+v, want the drill identity with ir-lead", a.Decision.Approver)
		}
		if a.UpdateID == "" || a.WorkflowID != rep.IncidentWorkflowID {
			t.Errorf("approval %+v: want an update id and the incident workflow %s", a, rep.IncidentWorkflowID)
		}
	}
	if !slices.Equal(approved, []string{"shutdown"}) {
		t.Errorf("approved %v, want exactly [shutdown]", approved)
	}
	if !slices.Equal(rep.WaitedForPeople, []string{"restore"}) {
		t.Errorf("WaitedForPeople = %v, want [restore]", rep.WaitedForPeople)
	}
	if len(rep.AutoApproved) != 1 || !rep.AutoApproved[0].Accepted {
		t.Errorf("AutoApproved = %+v", rep.AutoApproved)
	}
	// The child ran as a drill on the target.
	if !f.in.Drill || f.in.DryRun || f.in.Asset != "drill-canary" || f.in.Playbook != "container-compromise" ||
		f.in.OpenedBy != DrillOpenedBy || f.in.IncidentID != rep.IncidentID || len(f.in.Alerts) != 1 ||
		f.in.Alerts[0].Labels["health_url"] != "http://canary/health" {
		t.Errorf("incident input = %+v", f.in)
	}
	if c := objective(t, rep, ObjectiveContain); !c.Pass || c.Measured != 25*time.Second {
		t.Errorf("contain objective = %+v, want pass at 25s (5s detection + 20s containment)", c)
	}
	if inv := objective(t, rep, "investigation_within"); !inv.Pass || inv.Measured != 40*time.Second {
		t.Errorf("investigation objective = %+v, want 40s", inv)
	}
	if len(rep.Phases) != len(playbooks.Phases) {
		t.Fatalf("phases = %+v", rep.Phases)
	}
	for _, p := range rep.Phases {
		if !p.Reached || p.Duration <= 0 {
			t.Errorf("phase %s = %+v, want reached with a duration", p.Name, p)
		}
	}
	if len(f.reports) != 1 || f.reports[0].IncidentID != rep.IncidentID || rep.MarkdownRef == "" || rep.JSONRef == "" {
		t.Errorf("report stored %d times, refs %q %q", len(f.reports), rep.MarkdownRef, rep.JSONRef)
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "status read(s) failed") }) {
		t.Errorf("notes %v should mention the failed status read", rep.Notes)
	}
}

func TestDrillObjectiveFails(t *testing.T) {
	f := &scriptedIncident{script: containerScript(90 * time.Second), approvalTimeout: 30 * time.Minute}
	in := drillInput()
	in.Mode = DrillModeDryRun
	in.AutoApprove = []string{"shutdown", "restore"}
	rep := runDrill(t, f, in)

	if rep.Passed {
		t.Fatal("drill passed with containment over the objective")
	}
	c := objective(t, rep, ObjectiveContain)
	if c.Pass || !c.Reached || c.Measured != 95*time.Second {
		t.Errorf("contain objective = %+v, want a failure at 95s", c)
	}
	if len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0], "contain_within") || !strings.Contains(rep.Failures[0], "35s") {
		t.Errorf("failures = %v, want one naming contain_within and the 35s overrun", rep.Failures)
	}
	if !f.in.DryRun || !f.in.Drill {
		t.Errorf("dry-run drill started the incident with Drill=%v DryRun=%v", f.in.Drill, f.in.DryRun)
	}
	if len(rep.WaitedForPeople) != 0 || len(f.approves) != 2 {
		t.Errorf("both steps are listed: approvals %d, waited %v", len(f.approves), rep.WaitedForPeople)
	}
	if r := objective(t, rep, ObjectiveRecover); !r.Pass {
		t.Errorf("recover objective = %+v, want pass", r)
	}
}

func TestDrillRejectedApprovalFails(t *testing.T) {
	f := &scriptedIncident{script: containerScript(10 * time.Second), approvalTimeout: 2 * time.Minute, reject: map[string]bool{"shutdown": true}}
	rep := runDrill(t, f, drillInput())
	if rep.Passed {
		t.Fatal("drill passed although its auto-approval was rejected")
	}
	if len(rep.AutoApproved) != 1 || rep.AutoApproved[0].Accepted || rep.AutoApproved[0].Rejection == "" {
		t.Errorf("AutoApproved = %+v, want one rejected approval", rep.AutoApproved)
	}
	if !slices.ContainsFunc(rep.Failures, func(s string) bool { return strings.Contains(s, "auto-approval of step shutdown") }) {
		t.Errorf("failures = %v", rep.Failures)
	}
	if len(f.approves) != 1 {
		t.Errorf("approve sent %d times, want once per step", len(f.approves))
	}
}

func TestDrillInvalidInput(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Drill, workflow.RegisterOptions{Name: DrillWorkflow})
	in := drillInput()
	in.Mode = "chaos"
	env.ExecuteWorkflow(DrillWorkflow, in)
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "mode") {
		t.Fatalf("err = %v, want a bad-params error about the mode", err)
	}
}

func TestDrillInputValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*DrillInput)
		want   string
	}{
		{"valid", func(*DrillInput) {}, ""},
		{"bad name", func(in *DrillInput) { in.Name = "Canary Drill" }, "name"},
		{"no playbook", func(in *DrillInput) { in.Playbook = "" }, "no playbook"},
		{"no target", func(in *DrillInput) { in.Target = "" }, "no target"},
		{"unknown objective", func(in *DrillInput) { in.Objectives = []DrillObjective{{Name: "be_fast", Within: time.Second}} }, `objective "be_fast"`},
		{"zero objective", func(in *DrillInput) { in.Objectives = []DrillObjective{{Name: ObjectiveContain}} }, "not positive"},
		{"fast poll", func(in *DrillInput) { in.PollInterval = time.Millisecond }, "poll interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := drillInput()
			tc.mutate(&in)
			err := in.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestEvaluateDrill(t *testing.T) {
	opened := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return opened.Add(d) }
	final := DrillChildStatus{State: StateResolved, OpenedAt: opened, ClosedAt: at(10 * time.Minute), Steps: []DrillStepStatus{
		{ID: "resolve", Phase: playbooks.PhaseDetection, Status: StepSucceeded, StartedAt: at(0), FinishedAt: at(2 * time.Second)},
		{ID: "isolate", Phase: playbooks.PhaseContainment, Status: StepSucceeded, StartedAt: at(2 * time.Second), FinishedAt: at(30 * time.Second)},
		{ID: "report", Phase: playbooks.PhasePostIncident, Action: activities.ReportGenerate, Status: StepSucceeded, StartedAt: at(9 * time.Minute), FinishedAt: at(9*time.Minute + 30*time.Second)},
	}}
	contained := Metrics{ContainedAt: at(30 * time.Second), TimeToContain: 30 * time.Second}
	for _, tc := range []struct {
		name       string
		res        *IncidentResult
		final      *DrillChildStatus
		objectives []DrillObjective
		pass       bool
		failure    string
	}{
		{"all pass", &IncidentResult{State: StateResolved, Metrics: contained}, &final,
			[]DrillObjective{{Name: ObjectiveContain, Within: time.Minute}, {Name: ObjectiveReport, Within: 10 * time.Minute}}, true, ""},
		{"report late", &IncidentResult{State: StateResolved, Metrics: contained}, &final,
			[]DrillObjective{{Name: ObjectiveReport, Within: 5 * time.Minute}}, false, "took 9m30s"},
		{"containment never completed", &IncidentResult{State: StateResolved}, &final,
			[]DrillObjective{{Name: ObjectiveContain, Within: time.Minute}}, false, "containment did not complete"},
		{"recovery phase not reached", &IncidentResult{State: StateResolved, Metrics: contained}, &final,
			[]DrillObjective{{Name: PhaseObjective(playbooks.PhaseRecovery), Within: time.Minute}}, false, "phase recovery was not reached"},
		{"incident aborted", &IncidentResult{State: StateAborted, Reason: "step isolate failed", Metrics: contained}, &final,
			[]DrillObjective{{Name: ObjectiveContain, Within: time.Minute}}, false, "incident ended aborted"},
		{"no status", &IncidentResult{State: StateResolved, Metrics: contained}, nil,
			[]DrillObjective{{Name: ObjectiveReport, Within: time.Hour}}, false, "could not be read"},
		{"no objectives", &IncidentResult{State: StateResolved, Metrics: contained}, &final, nil, false, ErrNoObjectives.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rep DrillReport
			EvaluateDrill(&rep, DrillInput{Objectives: tc.objectives}, tc.res, tc.final)
			if rep.Passed != tc.pass {
				t.Errorf("Passed = %v, want %v (failures %v)", rep.Passed, tc.pass, rep.Failures)
			}
			if tc.failure != "" && !slices.ContainsFunc(rep.Failures, func(s string) bool { return strings.Contains(s, tc.failure) }) {
				t.Errorf("failures %v lack %q", rep.Failures, tc.failure)
			}
		})
	}
	var rep DrillReport
	EvaluateDrill(&rep, DrillInput{Objectives: []DrillObjective{{Name: ObjectiveContain, Within: time.Minute}}}, &IncidentResult{State: StateResolved, Metrics: contained}, &final)
	want := map[string]time.Duration{playbooks.PhaseDetection: 2 * time.Second, playbooks.PhaseContainment: 28 * time.Second, playbooks.PhasePostIncident: 10*time.Minute - 30*time.Second}
	for _, p := range rep.Phases {
		if d, ok := want[p.Name]; ok != p.Reached || d != p.Duration {
			t.Errorf("phase %s = %+v, want reached=%v duration %s", p.Name, p, ok, d)
		}
	}
}
