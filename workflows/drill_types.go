package workflows

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/iru-responder/responder/playbooks"
)

// Drill modes ([DrillInput.Mode]).
const (
	// DrillModeLive runs the playbook's actions for real, on the drill
	// target only (activities refuse anything that is not a drill target).
	DrillModeLive = "live"
	// DrillModeDryRun runs every action as a plan: nothing changes.
	DrillModeDryRun = "dry-run"
)

// Objective names ([DrillObjective.Name]). Besides these, "<phase>_within"
// (for example "investigation_within") bounds one phase's own duration.
const (
	// ObjectiveContain bounds the time from opening the incident to the end
	// of the containment phase ([Metrics.TimeToContain]).
	ObjectiveContain = "contain_within"
	// ObjectiveRecover bounds the time from opening to the end of the
	// recovery phase ([Metrics.TimeToRecover]).
	ObjectiveRecover = "recover_within"
	// ObjectiveReport bounds the time from opening until the incident report
	// (the first report.generate step) is written.
	ObjectiveReport = "report_within"
)

// PhaseObjective returns the objective name that bounds the duration of
// phase ("containment_within").
func PhaseObjective(phase string) string { return phase + "_within" }

// ObjectiveNames lists every valid objective name.
func ObjectiveNames() []string {
	out := []string{ObjectiveContain, ObjectiveRecover, ObjectiveReport}
	for _, p := range playbooks.Phases {
		out = append(out, PhaseObjective(p))
	}
	return out
}

// DefaultDrillTimeout bounds a drill's incident.
const DefaultDrillTimeout = time.Hour

// DrillNameRE is what a drill name looks like: it becomes part of schedule,
// workflow and incident ids.
var DrillNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// DrillObjective is one time objective of a drill.
type DrillObjective struct {
	// Name is one of [ObjectiveNames].
	Name string
	// Within is the longest acceptable time.
	Within time.Duration
}

// DrillInput starts a [Drill]. The drills file (package internal/drills)
// turns each drill definition into one.
type DrillInput struct {
	// Name is the drill's name ([DrillNameRE]).
	Name string
	// Playbook and PlaybookVersion select the playbook ("" version: current).
	Playbook        string
	PlaybookVersion string `json:",omitempty"`
	// Target is the drill asset (for example the canary container).
	Target string
	// Mode is [DrillModeLive] or [DrillModeDryRun].
	Mode       string
	Objectives []DrillObjective
	// AutoApprove lists the step ids the drill's incident approves as the
	// drill identity as soon as they wait for approval
	// ([IncidentInput.AutoApprove]). No other step is approved by the drill.
	AutoApprove []string `json:",omitempty"`
	// Labels are given to the drill's synthetic alert (templates see them
	// as .Labels, for example health_url).
	Labels map[string]string `json:",omitempty"`
	// Timeout bounds the incident (0: [DefaultDrillTimeout]).
	Timeout time.Duration `json:",omitempty"`
	// TriggeredBy is who started the drill (a schedule, an operator).
	TriggeredBy string `json:",omitempty"`
}

// Validate checks the input; the drills file loader checks the same with
// line numbers, so this only catches hand-made inputs.
func (in DrillInput) Validate() error {
	var p []string
	if !DrillNameRE.MatchString(in.Name) {
		p = append(p, fmt.Sprintf("name %q: want %s", in.Name, DrillNameRE))
	}
	if in.Playbook == "" {
		p = append(p, "no playbook")
	}
	if in.Target == "" {
		p = append(p, "no target")
	}
	if in.Mode != DrillModeLive && in.Mode != DrillModeDryRun {
		p = append(p, fmt.Sprintf("mode %q: want %s or %s", in.Mode, DrillModeLive, DrillModeDryRun))
	}
	names := ObjectiveNames()
	for _, o := range in.Objectives {
		if !slices.Contains(names, o.Name) {
			p = append(p, fmt.Sprintf("objective %q: want one of %s", o.Name, strings.Join(names, ", ")))
		}
		if o.Within <= 0 {
			p = append(p, fmt.Sprintf("objective %s: %s is not positive", o.Name, o.Within))
		}
	}
	if in.Timeout < 0 {
		p = append(p, fmt.Sprintf("timeout %s is negative", in.Timeout))
	}
	if len(p) > 0 {
		return fmt.Errorf("drill input: %s", strings.Join(p, "; "))
	}
	return nil
}

// DrillIncidentID is the incident id of a drill run: readable, unique per
// run, and valid as a ledger and evidence incident id.
func DrillIncidentID(name string, started time.Time, runID string) string {
	var short []byte
	for i := 0; i < len(runID) && len(short) < 8; i++ {
		if c := runID[i]; c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			short = append(short, c)
		}
	}
	return "drill-" + name + "-" + started.UTC().Format("20060102T150405Z") + "-" + string(short)
}

// DrillChildStatus is what a drill measures of its incident: the
// incident's result, seen as phases and steps with their times.
type DrillChildStatus struct {
	State    string
	Reason   string `json:",omitempty"`
	OpenedAt time.Time
	ClosedAt time.Time `json:",omitzero"`
	Metrics  Metrics
	Steps    []DrillStepStatus
}

// DrillStepStatus is one step of a [DrillChildStatus].
type DrillStepStatus struct {
	ID         string
	Phase      string
	Action     string
	Status     string
	StartedAt  time.Time `json:",omitzero"`
	FinishedAt time.Time `json:",omitzero"`
}

// drillStatusOf is the drill's view of its incident's result.
func drillStatusOf(res IncidentResult) DrillChildStatus {
	out := DrillChildStatus{State: res.State, Reason: res.Reason, OpenedAt: res.OpenedAt, ClosedAt: res.ClosedAt, Metrics: res.Metrics}
	for _, s := range res.Steps {
		out.Steps = append(out.Steps, DrillStepStatus{ID: s.ID, Phase: s.Phase, Action: s.Action, Status: s.Status, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt})
	}
	return out
}
