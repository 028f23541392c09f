package drillreport

import "time"

// ApproverSubject is the subject of the identity that approves the steps a
// drill lists (the drill report names it).
const ApproverSubject = "system:drill"

// Input is the input of [Activities.Report].
type Input struct {
	Report Report
}

// Result is the result of [Activities.Report]: evidence refs.
type Result struct {
	MarkdownRef string
	JSONRef     string
}

// Phase is one phase's measured duration.
type Phase struct {
	Name     string
	Reached  bool
	Start    time.Time     `json:",omitzero"`
	End      time.Time     `json:",omitzero"`
	Duration time.Duration `json:",omitempty"`
}

// ObjectiveResult is one objective, measured.
type ObjectiveResult struct {
	Name   string
	Within time.Duration
	// Reached is false when the measured point never came (for example
	// containment did not complete); the objective then fails.
	Reached  bool
	Measured time.Duration `json:",omitempty"`
	Pass     bool
	Detail   string `json:",omitempty"`
}

// Approval is the approval of one step the drill listed.
type Approval struct {
	StepID string
	// At is when the step's action started after the approval.
	At time.Time `json:",omitzero"`
	// Accepted is true when the drill identity approved the step; else
	// Rejection says how the step's approval ended instead.
	Accepted  bool
	Rejection string `json:",omitempty"`
}

// Report is the result of a drill (the workflows.Drill workflow): how each phase went against the
// objectives. It is also stored in the evidence locker (Markdown and JSON).
type Report struct {
	Drill       string
	Playbook    string
	Target      string
	Mode        string
	TriggeredBy string `json:",omitempty"`
	// IncidentID and the incident workflow's execution.
	IncidentID         string
	IncidentWorkflowID string
	IncidentRunID      string `json:",omitempty"`
	StartedAt          time.Time
	FinishedAt         time.Time
	// State and Reason are the incident's final state.
	State  string
	Reason string `json:",omitempty"`
	Phases []Phase
	// Objectives are evaluated in the order the drill lists them.
	Objectives []ObjectiveResult
	// AutoApproved are the approvals of the listed steps that waited.
	AutoApproved []Approval `json:",omitempty"`
	// WaitedForPeople are steps that waited for approval but are not in the
	// drill's auto_approve list: the drill left them to people (or to the
	// step's own timeout policy).
	WaitedForPeople []string `json:",omitempty"`
	// Passed is true when the incident resolved, every objective passed
	// and every auto-approval was accepted; Failures say what did not.
	Passed   bool
	Failures []string `json:",omitempty"`
	// Notes are problems that did not decide the outcome (a listed step
	// that never waited, a report that could not be stored, …).
	Notes []string `json:",omitempty"`
	// MarkdownRef and JSONRef reference the stored report.
	MarkdownRef string `json:",omitempty"`
	JSONRef     string `json:",omitempty"`
}
