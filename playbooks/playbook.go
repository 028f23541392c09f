// Package playbooks holds the incident response playbooks (declarative YAML,
// embedded in the binary and loadable from a folder), their loader and
// validator, and the template engine the incident workflow uses to fill step
// parameters from the incident.
//
// A playbook has the six phases in fixed order (detection, containment,
// investigation, remediation, recovery, post_incident); each phase lists
// steps that run catalog actions (package activities), optionally guarded by
// a `when` condition and an approval, and groups of steps that run in
// parallel. Everything a playbook refers to is checked when it is loaded;
// errors name the file and line.
package playbooks

import (
	"slices"
	"time"
)

// Phases are the six incident phases, in the order they run.
var Phases = []string{PhaseDetection, PhaseContainment, PhaseInvestigation, PhaseRemediation, PhaseRecovery, PhasePostIncident}

// AfterContainment reports whether phase is one of the phases after
// containment (investigation to post-incident); an unknown or empty phase
// is not.
func AfterContainment(phase string) bool {
	return slices.Index(Phases, phase) > slices.Index(Phases, PhaseContainment)
}

// Phase names.
const (
	PhaseDetection     = "detection"
	PhaseContainment   = "containment"
	PhaseInvestigation = "investigation"
	PhaseRemediation   = "remediation"
	PhaseRecovery      = "recovery"
	PhasePostIncident  = "post_incident"
)

// Failure policies of a step (on_failure).
const (
	// OnFailureAbort stops the incident and runs the compensations (default).
	OnFailureAbort = "abort"
	// OnFailureContinue records the failure and goes on.
	OnFailureContinue = "continue"
	// OnFailureEscalate notifies the next tier and hands the incident over to
	// people: no further steps run and containment stays in place.
	OnFailureEscalate = "escalate"
)

// Approval timeout policies (on_timeout).
const (
	// TimeoutEscalate notifies the next tier and extends the wait, up to
	// MaxEscalations times; then the incident ends escalated-failed.
	TimeoutEscalate = "escalate"
	// TimeoutDeny treats the timeout as a denial.
	TimeoutDeny = "deny"
	// TimeoutAutoApprove approves on timeout, in drills only.
	TimeoutAutoApprove = "auto_approve"
)

// DefaultEscalation is the escalation chain of a playbook that names none.
var DefaultEscalation = []string{"security-team", "ir-lead", "ciso"}

// Playbook is a validated playbook, as the workflow interprets it. It is
// plain data (JSON-serialisable) so it can be recorded in workflow history.
type Playbook struct {
	Name            string
	Version         string
	Description     string
	SeverityDefault string
	// Drill marks a drill playbook: destructive actions need no approval and
	// approvals may auto-approve on timeout.
	Drill bool `json:",omitempty"`
	// Escalation is the chain of notification tiers, lowest first.
	Escalation []string
	// Phases are the six phases, always all present and in [Phases] order.
	Phases []Phase
	// File is where the playbook was loaded from.
	File string `json:",omitempty"`
}

// Phase is one phase and its entries, run in order.
type Phase struct {
	Name    string
	Entries []Entry
}

// Entry is either one step or a group of steps that run in parallel.
type Entry struct {
	Step     *Step  `json:",omitempty"`
	Parallel []Step `json:",omitempty"`
}

// Steps returns the entry's steps (one, or the parallel group).
func (e Entry) Steps() []Step {
	if e.Step != nil {
		return []Step{*e.Step}
	}
	return e.Parallel
}

// Step risk levels ([Step.Risk]).
const (
	RiskNormal = "normal"
	RiskHigh   = "high"
)

// Step is one action of a playbook.
type Step struct {
	ID     string
	Action string
	// Params are templates; the loader completed them with catalog defaults.
	Params map[string]string `json:",omitempty"`
	// When is a template that renders to "true" or "false"; "" runs always.
	When     string    `json:",omitempty"`
	Approval *Approval `json:",omitempty"`
	// ApprovalWaived is the reason a destructive step runs without approval.
	ApprovalWaived string `json:",omitempty"`
	// Risk is "" (normal) or high: approving a high-risk step needs a
	// token whose amr shows a second factor (otp).
	Risk string `json:",omitempty"`
	// Timeout overrides the catalog's StartToClose timeout.
	Timeout time.Duration `json:",omitempty"`
	Retry   *Retry        `json:",omitempty"`
	// OnFailure is abort, continue or escalate.
	OnFailure string
	// Compensation undoes the step; nil when it has none. The loader fills
	// the catalog default.
	Compensation *Compensation `json:",omitempty"`
	// Compensates names an earlier step whose compensation this step
	// performs (e.g. recovery lifting an isolation): once it succeeds, that
	// compensation is no longer due.
	Compensates string `json:",omitempty"`
	// Line is the step's line in File.
	Line int `json:",omitempty"`
}

// Approval is a step's approval requirement.
type Approval struct {
	// Roles may approve (any one of them).
	Roles []string
	// Quorum is the number of distinct approvers needed.
	Quorum int
	// Timeout bounds each wait.
	Timeout time.Duration
	// OnTimeout is escalate, deny or auto_approve.
	OnTimeout string
	// DrillOnly limits auto_approve to drill incidents; in a real incident
	// the timeout escalates instead.
	DrillOnly bool `json:",omitempty"`
	// MaxEscalations bounds the escalate policy.
	MaxEscalations int
}

// Retry overrides the catalog retry policy of a step.
type Retry struct {
	MaxAttempts     int32
	InitialInterval time.Duration `json:",omitempty"`
	MaximumInterval time.Duration `json:",omitempty"`
}

// Compensation is the action (and its parameter templates) that undoes a step.
// Its templates may reference the forward step's own outputs.
type Compensation struct {
	Action string
	Params map[string]string `json:",omitempty"`
}

// Step returns the step with id and the phase it is in.
func (p *Playbook) Step(id string) (Step, string, bool) {
	for _, ph := range p.Phases {
		for _, e := range ph.Entries {
			for _, s := range e.Steps() {
				if s.ID == id {
					return s, ph.Name, true
				}
			}
		}
	}
	return Step{}, "", false
}

// StepCount returns the number of steps in the playbook.
func (p *Playbook) StepCount() int {
	n := 0
	for _, ph := range p.Phases {
		for _, e := range ph.Entries {
			n += len(e.Steps())
		}
	}
	return n
}
