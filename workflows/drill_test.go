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
	"github.com/iru-responder/responder/activities/drillreport"
	"github.com/iru-responder/responder/playbooks"
)

// scriptStep is one step of the scripted incident.
type scriptStep struct {
	id, phase, action string
	took              time.Duration
	approval          bool
}

// scriptedIncident stands in for the Incident child workflow: it runs a
// script of steps with durations. A step with an approval that the input's
// AutoApprove lists is approved by the drill at once (drill_approved), or
// ends as deny says; any other waits approvalTimeout and is then approved
// (like on_timeout: auto_approve).
type scriptedIncident struct {
	script []scriptStep
	// deny makes the approval of these steps end denied (by people).
	deny map[string]bool
	// approvalTimeout is how long an unlisted step waits for approval.
	approvalTimeout time.Duration

	mu      sync.Mutex
	in      IncidentInput
	reports []drillreport.Report
}

func (f *scriptedIncident) run(ctx workflow.Context, in IncidentInput) (IncidentResult, error) {
	f.mu.Lock()
	f.in = in
	f.mu.Unlock()
	res := IncidentResult{IncidentID: in.IncidentID, State: StateResolved, OpenedAt: workflow.Now(ctx).UTC()}
	for i, s := range f.script {
		o := StepOutcome{ID: s.id, Phase: s.phase, Action: s.action}
		if s.approval {
			switch {
			case f.deny[s.id]:
				o.Approval = approvalDenied
			case in.Drill && slices.Contains(in.AutoApprove, s.id):
				o.Approval = approvalDrillApproved
			default:
				if err := workflow.Sleep(ctx, f.approvalTimeout); err != nil {
					return IncidentResult{}, err
				}
				o.Approval = approvalAutoApproved
			}
		}
		if o.Approval == approvalDenied {
			o.Status = StepDenied
			res.Steps = append(res.Steps, o)
			continue
		}
		o.StartedAt = workflow.Now(ctx).UTC()
		if err := workflow.Sleep(ctx, s.took); err != nil {
			return IncidentResult{}, err
		}
		o.Status, o.FinishedAt = StepSucceeded, workflow.Now(ctx).UTC()
		res.Steps = append(res.Steps, o)
		last := i == len(f.script)-1 || f.script[i+1].phase != s.phase
		switch {
		case last && s.phase == playbooks.PhaseContainment:
			res.Metrics.ContainedAt, res.Metrics.TimeToContain = o.FinishedAt, o.FinishedAt.Sub(res.OpenedAt)
		case last && s.phase == playbooks.PhaseRecovery:
			res.Metrics.RecoveredAt, res.Metrics.TimeToRecover = o.FinishedAt, o.FinishedAt.Sub(res.OpenedAt)
		}
	}
	res.ClosedAt = workflow.Now(ctx).UTC()
	return res, nil
}

func (f *scriptedIncident) report(_ context.Context, in drillreport.Input) (drillreport.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, in.Report)
	return drillreport.Result{MarkdownRef: "evidence://" + in.Report.IncidentID + "/md", JSONRef: "evidence://" + in.Report.IncidentID + "/json"}, nil
}

// containerScript is a container-compromise-like script; containment takes
// containTook after a 5 s detection.
func containerScript(containTook time.Duration) []scriptStep {
	return []scriptStep{
		{id: "resolve", phase: playbooks.PhaseDetection, action: activities.PVEResolveAsset, took: 5 * time.Second},
		{id: "isolate", phase: playbooks.PhaseContainment, action: activities.PVEIsolate, took: containTook},
		{id: "evidence", phase: playbooks.PhaseInvestigation, action: activities.PVECollectEvidence, took: 40 * time.Second},
		{id: "shutdown", phase: playbooks.PhaseRemediation, action: activities.PVEShutdown, took: 10 * time.Second, approval: true},
		{id: "restore", phase: playbooks.PhaseRemediation, action: activities.PVERestore, took: 20 * time.Second, approval: true},
		{id: "start", phase: playbooks.PhaseRecovery, action: activities.PVEStart, took: 10 * time.Second},
		{id: "report", phase: playbooks.PhasePostIncident, action: activities.ReportGenerate, took: 3 * time.Second},
	}
}

func runDrill(t *testing.T, f *scriptedIncident, in DrillInput) drillreport.Report {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Drill, workflow.RegisterOptions{Name: DrillWorkflow})
	env.RegisterWorkflowWithOptions(f.run, workflow.RegisterOptions{Name: IncidentWorkflow})
	env.RegisterActivityWithOptions(f.report, activity.RegisterOptions{Name: DrillReportActivity})
	env.ExecuteWorkflow(DrillWorkflow, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("drill did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("drill failed: %v", err)
	}
	var rep drillreport.Report
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
		AutoApprove: []string{"shutdown"},
		Labels:      map[string]string{"health_url": "http://canary/health"},
	}
}

func objective(t *testing.T, rep drillreport.Report, name string) drillreport.ObjectiveResult {
	t.Helper()
	for _, o := range rep.Objectives {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("report has no objective %s: %+v", name, rep.Objectives)
	return drillreport.ObjectiveResult{}
}

func TestDrillObjectivesPassAndOnlyListedStepsApproved(t *testing.T) {
	f := &scriptedIncident{script: containerScript(20 * time.Second), approvalTimeout: 30 * time.Minute}
	rep := runDrill(t, f, drillInput())

	if !rep.Passed || len(rep.Failures) > 0 {
		t.Fatalf("drill did not pass: %v", rep.Failures)
	}
	// The incident was handed the list; only the listed step was approved
	// by the drill, the other waited for people (here: its timeout).
	if !slices.Equal(f.in.AutoApprove, []string{"shutdown"}) {
		t.Errorf("incident input AutoApprove = %v, want [shutdown]", f.in.AutoApprove)
	}
	if len(rep.AutoApproved) != 1 || rep.AutoApproved[0].StepID != "shutdown" || !rep.AutoApproved[0].Accepted || rep.AutoApproved[0].At.IsZero() {
		t.Errorf("AutoApproved = %+v, want shutdown accepted", rep.AutoApproved)
	}
	if !slices.Equal(rep.WaitedForPeople, []string{"restore"}) {
		t.Errorf("WaitedForPeople = %v, want [restore]", rep.WaitedForPeople)
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
	if len(rep.WaitedForPeople) != 0 || len(rep.AutoApproved) != 2 {
		t.Errorf("both steps are listed: approvals %+v, waited %v", rep.AutoApproved, rep.WaitedForPeople)
	}
	if r := objective(t, rep, ObjectiveRecover); !r.Pass {
		t.Errorf("recover objective = %+v, want pass", r)
	}
}

func TestDrillDeniedApprovalFails(t *testing.T) {
	f := &scriptedIncident{script: containerScript(10 * time.Second), approvalTimeout: 2 * time.Minute, deny: map[string]bool{"shutdown": true}}
	rep := runDrill(t, f, drillInput())
	if rep.Passed {
		t.Fatal("drill passed although its listed step was not approved by the drill")
	}
	if len(rep.AutoApproved) != 1 || rep.AutoApproved[0].Accepted || !strings.Contains(rep.AutoApproved[0].Rejection, approvalDenied) {
		t.Errorf("AutoApproved = %+v, want one approval that ended denied", rep.AutoApproved)
	}
	if !slices.ContainsFunc(rep.Failures, func(s string) bool { return strings.Contains(s, "auto-approval of step shutdown") }) {
		t.Errorf("failures = %v", rep.Failures)
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
			var rep drillreport.Report
			EvaluateDrill(&rep, DrillInput{Objectives: tc.objectives}, tc.res, tc.final)
			if rep.Passed != tc.pass {
				t.Errorf("Passed = %v, want %v (failures %v)", rep.Passed, tc.pass, rep.Failures)
			}
			if tc.failure != "" && !slices.ContainsFunc(rep.Failures, func(s string) bool { return strings.Contains(s, tc.failure) }) {
				t.Errorf("failures %v lack %q", rep.Failures, tc.failure)
			}
		})
	}
	var rep drillreport.Report
	EvaluateDrill(&rep, DrillInput{Objectives: []DrillObjective{{Name: ObjectiveContain, Within: time.Minute}}}, &IncidentResult{State: StateResolved, Metrics: contained}, &final)
	want := map[string]time.Duration{playbooks.PhaseDetection: 2 * time.Second, playbooks.PhaseContainment: 28 * time.Second, playbooks.PhasePostIncident: 10*time.Minute - 30*time.Second}
	for _, p := range rep.Phases {
		if d, ok := want[p.Name]; ok != p.Reached || d != p.Duration {
			t.Errorf("phase %s = %+v, want reached=%v duration %s", p.Name, p, ok, d)
		}
	}
}
