package watch

import (
	"context"
	"time"
)

// Names of the watch's activities.
const (
	// ListActivity lists incident runs closed as terminated since a
	// cursor: [ListInput] in, [ListResult] out.
	ListActivity = "watch.list"
	// ReportActivity records one such run in the ledger and opens its
	// follow-up incident: [ReportInput] in, [ReportResult] out.
	ReportActivity = "watch.report"
)

// How a run was stopped outside the platform ([ReportResult.How]).
const (
	// StoppedTerminated: an operator terminated the run (Web UI, CLI, SDK).
	StoppedTerminated = "terminated"
	// StoppedReset: an operator reset the workflow; Temporal terminated
	// this run and started a new one from the reset point.
	StoppedReset = "reset"
)

// StoppedRun is an incident run that closed as terminated.
type StoppedRun struct {
	WorkflowID string
	RunID      string
	// TaskQueue is the run's task queue (the follow-up incident runs there).
	TaskQueue string
	CloseTime time.Time
}

// ListInput is the input of [ListActivity].
type ListInput struct {
	// Since lists runs that closed at or after it.
	Since     time.Time `json:",omitzero"`
	TaskQueue string    `json:",omitempty"`
	// Limit bounds the runs returned (the oldest first).
	Limit int
}

// ListResult is the result of [ListActivity]: runs in close time order,
// oldest first.
type ListResult struct {
	Runs []StoppedRun `json:",omitempty"`
}

// ReportInput is the input of [ReportActivity].
type ReportInput struct {
	Run StoppedRun
}

// ReportResult is what [ReportActivity] found and did.
type ReportResult struct {
	WorkflowID string
	RunID      string
	// IncidentID is the stopped incident's id.
	IncidentID string `json:",omitempty"`
	// How is [StoppedTerminated] or [StoppedReset].
	How string
	// By is the identity Temporal recorded for the termination, as the
	// client declared it; Reason is the operator's reason; At is when.
	By     string
	Reason string `json:",omitempty"`
	At     time.Time
	// NewRunID is the run a reset started.
	NewRunID string `json:",omitempty"`
	// Compensations are the undo actions the run left pending.
	Compensations int
	// FollowUpWorkflowID is the follow-up incident's workflow ("": none,
	// nothing was pending).
	FollowUpWorkflowID string `json:",omitempty"`
	FollowUpIncidentID string `json:",omitempty"`
	// Chains are the ledger chains the report was written to.
	Chains []string `json:",omitempty"`
	// Problem says what could not be read (the run's pending compensations
	// when its status cannot be replayed).
	Problem string `json:",omitempty"`
}

// Compensation is an undo action an incident run registered when its
// step succeeded, as the incident workflow records it.
type Compensation struct {
	StepID string
	Action string
	Params map[string]string `json:",omitempty"`
	Undo   map[string]string `json:",omitempty"`
}

// Status is the watch's view of an incident run's status query.
type Status struct {
	IncidentID string
	Asset      string
	Severity   string
	Drill      bool
	// Compensations are the undo actions the run holds.
	Compensations []Compensation
	// Settled are the ids of the steps that succeeded or were denied.
	Settled []string
}

// Input is the watch's view of an incident run's input.
type Input struct {
	IncidentID string
	Asset      string
	Severity   string
	Drill      bool
	// Carried is the status a continued run took over from its
	// predecessor (nil: a first run).
	Carried *Status
	// Inherited are the compensations of a follow-up incident (nil: not
	// a follow-up).
	Inherited *Inherited
}

// Inherited are the compensations a follow-up incident took over from a
// stopped run.
type Inherited struct {
	// IncidentID is the incident whose changes they undo.
	IncidentID string
	// Steps are the follow-up's steps that run them, in order.
	Steps []InheritedStep
}

// InheritedStep is one step of a follow-up incident that runs an
// inherited compensation.
type InheritedStep struct {
	StepID       string
	Compensation Compensation
}

// FollowUp is the follow-up incident of a stopped run: it offers the
// compensations the run left pending to the responders.
type FollowUp struct {
	// Run is the stopped run; the follow-up runs on its task queue.
	Run StoppedRun
	// IncidentID is the follow-up's incident id.
	IncidentID string
	// Stopped is the stopped incident's id (the run's workflow id when
	// it is unknown); Owner is the incident whose changes the
	// compensations undo.
	Stopped string
	Owner   string
	// How, By, Reason and At say how the run was stopped; NewRunID is
	// the run a reset started.
	How      string
	By       string
	Reason   string
	At       time.Time
	NewRunID string
	// Asset, Severity and Drill are the stopped incident's.
	Asset    string
	Severity string
	Drill    bool
	// Summary and Labels describe the stop in the follow-up's alert,
	// received at ReceivedAt.
	Summary    string
	Labels     map[string]string
	ReceivedAt time.Time
	// Pending are the compensations offered, in the order the stopped run
	// registered them.
	Pending []Compensation
}

// Incidents is what the watch needs of the incident workflow; the worker
// host implements it over the workflow's contract.
type Incidents interface {
	// WorkflowType is the incident workflow's type name.
	WorkflowType() string
	// Status asks a run for its status (a worker replays a closed run to
	// answer); the error is a *serviceerror.QueryFailed when the run
	// cannot be replayed.
	Status(ctx context.Context, workflowID, runID string) (Status, error)
	// Input reads a run's input from its history.
	Input(ctx context.Context, workflowID, runID string) (Input, error)
	// OpenFollowUp starts f's incident once and returns its workflow id:
	// the id derives from the stopped run's id, so a second call starts
	// nothing and returns the same id.
	OpenFollowUp(ctx context.Context, f FollowUp) (workflowID string, err error)
}
