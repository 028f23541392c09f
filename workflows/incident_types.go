package workflows

import (
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/playbooks"
)

// Final states of an incident ([IncidentStatus.State]).
const (
	// StateOpen: the playbook is running.
	StateOpen = "open"
	// StateResolved: every phase ran (failed steps with on_failure=continue
	// are listed in the result).
	StateResolved = "resolved"
	// StateAborted: stopped by an abort signal, a failed step with
	// on_failure=abort or a denied step; the compensations ran.
	StateAborted = "aborted"
	// StateEscalatedFailed: automation handed the incident over to people
	// (a step with on_failure=escalate failed, or an approval's escalations
	// ran out); containment stays in place, no compensation runs.
	StateEscalatedFailed = "escalated_failed"
)

// Step statuses ([StepState.Status]).
const (
	StepPending         = "pending"
	StepWaitingApproval = "waiting_approval"
	StepRunning         = "running"
	StepSucceeded       = "succeeded"
	StepFailed          = "failed"
	StepSkipped         = "skipped"
	StepDenied          = "denied"
	StepCompensated     = "compensated"
)

// Approver is a responder identity, verified by the API server (Keycloak
// token) before it reaches the workflow.
type Approver struct {
	// Subject is the token's sub claim: the stable identity.
	Subject  string
	Username string
	Roles    []string
	// SourceIP is the client address the API server saw.
	SourceIP string
}

// DecisionInput is the input of the [ApproveUpdate] and [DenyUpdate] updates.
//
// Statement is the API server's signed decision statement; the workflow
// believes only it. Approver, if set, must name the statement's identity
// (it is what callers wrote; the statement is what counts), and Reason is
// taken from the statement.
type DecisionInput struct {
	StepID    string
	Approver  Approver
	Reason    string
	Statement decision.Signed
}

// DecisionResult is the result of the approve and deny updates.
type DecisionResult struct {
	StepID string
	// Status is the step's status after the decision.
	Status string
	// Approvals is the number of distinct approvals so far; Quorum is needed.
	Approvals int
	Quorum    int
}

// ApprovalSignalInput is the payload of [ApprovalSignal]: a decision sent
// fire-and-forget. It is checked like the updates; rejected decisions are
// recorded in the timeline and the ledger and otherwise ignored.
type ApprovalSignalInput struct {
	StepID   string
	Approver Approver
	Reason   string
	// Approve is true for an approval, false for a denial.
	Approve bool
	// Statement is the signed decision statement (approve or deny).
	Statement decision.Signed
}

// EscalateInput is the input of the [EscalateUpdate] update.
type EscalateInput struct {
	By     Approver
	Reason string
	// Statement is the signed decision statement; By must match it.
	Statement decision.Signed
}

// EscalateResult is the result of the escalate update.
type EscalateResult struct {
	// Level is the escalation level after the update (0: none).
	Level int
	// Tier is the notification tier that was notified.
	Tier string
}

// AcknowledgeInput is the input of the [AcknowledgeUpdate] update.
type AcknowledgeInput struct {
	By     Approver
	Reason string
	// Statement is the signed decision statement; By must match it.
	Statement decision.Signed
}

// AcknowledgeResult is the result of the acknowledge update.
type AcknowledgeResult struct {
	// AcknowledgedAt is the first acknowledgement of the incident.
	AcknowledgedAt time.Time
}

// AbortInput is the payload of [AbortSignal]. It is applied only with a
// valid signed statement; a refused abort is recorded.
type AbortInput struct {
	By     Approver
	Reason string
	// Statement is the signed decision statement; By must match it.
	Statement decision.Signed
}

// DecisionKeysInput is the (empty) input of [DecisionKeysActivity] and of
// [DecisionKeysSignal].
type DecisionKeysInput struct{}

// DecisionKeysResult is the worker's decision key set.
type DecisionKeysResult struct {
	Keys decision.KeySet
}

// StatusQueryInput is the (empty) input of [StatusQuery].
type StatusQueryInput struct{}

// IncidentStatus is the incident's state, returned by [StatusQuery] and
// carried across continue-as-new.
type IncidentStatus struct {
	IncidentID      string
	Key             string
	Playbook        string
	PlaybookVersion string
	Asset           string
	// AssetRef is where the intake's inventory found Asset (nil: unknown).
	AssetRef *activities.AssetRef `json:",omitempty"`
	Severity string
	Drill    bool
	DryRun   bool
	OpenedBy string
	// Labels are the first alert's labels (templates see them as .Labels).
	Labels map[string]string `json:",omitempty"`
	// Phase is the current (or last) phase.
	Phase string
	// State is open, resolved, aborted, escalated_failed or rerouted.
	State string
	// Reason explains a final state.
	Reason   string
	OpenedAt time.Time
	ClosedAt time.Time `json:",omitzero"`
	// Steps are in playbook order.
	Steps []StepState
	// Compensations are the undo actions due if the incident aborts, in the
	// order they were registered (they run in reverse).
	Compensations []PendingCompensation
	// Timeline holds the most recent entries (the ledger has all of them).
	Timeline []TimelineEntry
	// TimelineDropped counts entries dropped from Timeline (still in the ledger).
	TimelineDropped int
	// Alerts are the distinct alerts, by fingerprint, in arrival order.
	Alerts []AlertRecord
	// AlertsReceived counts every alert, duplicates included (not
	// resolutions).
	AlertsReceived int
	// AllAlertsResolvedAt is when the last open alert of the incident was
	// resolved at its detector (zero while any alert fires). The
	// responders are told; nothing is done automatically.
	AllAlertsResolvedAt time.Time `json:",omitzero"`
	Metrics             Metrics
	// Related are the other incidents open on the same asset when this one
	// opened, and those that opened on it later and linked themselves to
	// it, in the order they were linked.
	Related []RelatedIncident `json:",omitempty"`
	// EscalationLevel is 0 until the first escalation.
	EscalationLevel int
	// EscalatedBy are the people (subjects) who escalated the incident;
	// four-eyes keeps them from approving its steps.
	EscalatedBy []string `json:",omitempty"`
	// LedgerSeq is the last ledger sequence number issued.
	LedgerSeq int64
	// LedgerFailures counts ledger appends that failed for good.
	LedgerFailures int
	// Runs counts continue-as-new generations (0 for the first run).
	Runs int
}

// StepState is the state of one step.
type StepState struct {
	ID         string
	Phase      string
	Action     string
	Status     string
	StartedAt  time.Time `json:",omitzero"`
	FinishedAt time.Time `json:",omitzero"`
	// Params are the rendered parameters (set when the step ran).
	Params       map[string]string `json:",omitempty"`
	Outputs      map[string]string `json:",omitempty"`
	EvidenceRefs []string          `json:",omitempty"`
	Plan         []string          `json:",omitempty"`
	Summary      string            `json:",omitempty"`
	Error        string            `json:",omitempty"`
	// Risk is the playbook's risk of the step (high: approving it needs a
	// second factor).
	Risk     string         `json:",omitempty"`
	Approval *ApprovalState `json:",omitempty"`
	// Compensation is "" (none), registered, lifted (a later step undid the
	// change), compensated or failed.
	Compensation string `json:",omitempty"`
}

// ApprovalState is the approval of one step.
type ApprovalState struct {
	Roles  []string
	Quorum int
	// RequestedBy is whoever triggered the step (the incident's opener);
	// they cannot approve it.
	RequestedBy string
	// Deadline is when the current wait times out.
	Deadline    time.Time
	Escalations int
	Approvals   []Decision `json:",omitempty"`
	Denial      *Decision  `json:",omitempty"`
	// Outcome is "", approved, denied, auto_approved or escalated_failed.
	Outcome string `json:",omitempty"`
}

// Decision is one recorded approval or denial.
type Decision struct {
	By     Approver
	Reason string
	At     time.Time
	// Via is update or signal.
	Via string
	// AMR are the authentication methods of the decider's token.
	AMR []string `json:",omitempty"`
}

// PendingCompensation is an undo action registered when its step succeeded.
type PendingCompensation struct {
	StepID string
	Action string
	Params map[string]string `json:",omitempty"`
	Undo   map[string]string `json:",omitempty"`
}

// TimelineEntry is one event of the incident: who did what, when, from
// where and why.
type TimelineEntry struct {
	At       time.Time
	Actor    string
	SourceIP string `json:",omitempty"`
	What     string
	StepID   string `json:",omitempty"`
	Reason   string `json:",omitempty"`
}

// AlertRecord is one distinct alert (by fingerprint) and how often it came.
type AlertRecord struct {
	Fingerprint string
	ID          string
	Source      string
	Rule        string
	Severity    string
	Summary     string
	Count       int
	FirstSeen   time.Time
	LastSeen    time.Time
	// ObservedAt is when the detector saw the event, ReceivedAt when the
	// intake accepted the alert (their difference is the time to detect).
	ObservedAt time.Time `json:",omitzero"`
	ReceivedAt time.Time `json:",omitzero"`
	// ResolvedAt is when the detector resolved the alert (zero: firing).
	// The alert firing again clears it.
	ResolvedAt time.Time `json:",omitzero"`
}

// Metrics are the incident's response times, measured from OpenedAt.
//
// ContainedAt is when the containing actions of the containment phase
// ([activities.Action.Contains]: isolation verified, sessions ended …)
// had all taken effect: the latest end of those that succeeded, set as
// soon as the last of them is done. A containment phase without a
// containing action that succeeded counts as contained when it ends.
// ContainmentPhaseDoneAt is when the whole phase, evidence steps
// included, ended.
type Metrics struct {
	AcknowledgedAt         time.Time     `json:",omitzero"`
	ContainedAt            time.Time     `json:",omitzero"`
	ContainmentPhaseDoneAt time.Time     `json:",omitzero"`
	RecoveredAt            time.Time     `json:",omitzero"`
	TimeToAcknowledge      time.Duration `json:",omitempty"`
	TimeToContain          time.Duration `json:",omitempty"`
	// ContainmentPhase is the containment phase's duration, from the
	// first of its steps to start until its end.
	ContainmentPhase time.Duration `json:",omitempty"`
	TimeToRecover    time.Duration `json:",omitempty"`
}

// IncidentCarry is the state one run hands to the next on continue-as-new.
type IncidentCarry struct {
	// Playbook is the playbook resolved by the first run.
	Playbook playbooks.Playbook
	Status   IncidentStatus
	// Nonces are the decision statement nonces used so far, with their
	// statements' expiry (expired ones are dropped: they cannot verify).
	Nonces map[string]time.Time `json:",omitempty"`
	// RelatedPending is true when the run continued as new before it had
	// linked the related incidents (the lookup waits for the end of the
	// containment, see relatedDue): the next run links them.
	RelatedPending bool `json:",omitempty"`
}

// StepOutcome is a step's final status, for [IncidentResult].
type StepOutcome struct {
	ID     string
	Phase  string
	Action string
	Status string
	Error  string `json:",omitempty"`
	// StartedAt and FinishedAt are the step's action's start and end.
	StartedAt  time.Time `json:",omitzero"`
	FinishedAt time.Time `json:",omitzero"`
	// Approval is the outcome of the step's approval ("" when it needed
	// none): approved, denied, auto_approved, drill_approved or
	// escalated_failed.
	Approval string `json:",omitempty"`
}

// IncidentResult is the result of [IncidentWorkflow].
type IncidentResult struct {
	IncidentID string
	// State is resolved, aborted or escalated_failed.
	State    string
	Reason   string
	OpenedAt time.Time
	ClosedAt time.Time
	Steps    []StepOutcome
	// ReportRefs are the outputs of report.generate steps.
	ReportRefs     []string `json:",omitempty"`
	Metrics        Metrics
	AlertsReceived int
	LedgerSeq      int64
	LedgerFailures int
}
