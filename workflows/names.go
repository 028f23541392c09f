package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
)

// TaskQueue is the task queue the worker polls for workflows and activities.
const TaskQueue = "iru-responder"

// Search attributes the platform sets on incident workflows. The dev server
// script registers them (see [SearchAttributeKeys]).
var (
	// SeverityKey is the incident severity (critical, high, medium, low).
	SeverityKey = temporal.NewSearchAttributeKeyKeyword("IruSeverity")
	// PhaseKey is the current incident phase (detection … post_incident).
	PhaseKey = temporal.NewSearchAttributeKeyKeyword("IruPhase")
	// PlaybookKey is the playbook name the incident runs.
	PlaybookKey = temporal.NewSearchAttributeKeyKeyword("IruPlaybook")
	// AssetKey is the asset (container) the incident is about.
	AssetKey = temporal.NewSearchAttributeKeyKeyword("IruAsset")
	// DrillKey marks drill incidents.
	DrillKey = temporal.NewSearchAttributeKeyBool("IruDrill")
)

// SearchAttributeKeys lists the custom search attributes, for registration
// on a server.
func SearchAttributeKeys() []temporal.SearchAttributeKey {
	return []temporal.SearchAttributeKey{SeverityKey, PhaseKey, PlaybookKey, AssetKey, DrillKey}
}

// SearchAttributeFlags renders [SearchAttributeKeys] as the dev server's
// --search-attribute values ("Name=Type").
func SearchAttributeFlags() []string {
	keys := SearchAttributeKeys()
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.GetName()+"="+k.GetValueType().String())
	}
	return out
}

// SelfTestWorkflowID is the workflow id of one self-test run.
func SelfTestWorkflowID(nonce string) string { return "selftest:" + nonce }

// Workflow type names, as registered on the worker.
const (
	// SelfTestWorkflow is the registered name of [SelfTest].
	SelfTestWorkflow = "SelfTest"
)

// Names of the incident workflow and its messages. The starter (intake and
// responder API) and the workflow use these and nothing else.
const (
	// IncidentWorkflow is the registered name of the playbook interpreter.
	IncidentWorkflow = "Incident"
	// AlertSignal carries correlated alerts ([AlertSignalInput]) into an incident.
	AlertSignal = "alert"
	// ApprovalSignal carries a responder decision as a signal (fire and forget).
	ApprovalSignal = "approval"
	// AbortSignal stops an incident and runs its compensations.
	AbortSignal = "abort"
	// StatusQuery returns the incident's status.
	StatusQuery = "status"
	// ApproveUpdate approves a pending step (validated: role, quorum, four-eyes).
	ApproveUpdate = "approve"
	// DenyUpdate denies a pending step.
	DenyUpdate = "deny"
	// EscalateUpdate escalates the incident to the next tier.
	EscalateUpdate = "escalate"
	// AcknowledgeUpdate records that a responder took the incident on
	// (time to acknowledge).
	AcknowledgeUpdate = "acknowledge"
)

// IncidentWorkflowID is the workflow id of the incident with correlation key
// key: alerts with the same key join one incident.
func IncidentWorkflowID(key string) string { return "incident:" + key }

// Names of the watch on incidents stopped outside the platform: runs that an
// operator terminated or reset directly on Temporal (Web UI, CLI), past the
// responder API. The worker, `starter up` and the workflow use these and
// nothing else.
const (
	// WatchWorkflow is the registered name of [Watch].
	WatchWorkflow = "Watch"
	// WatchScheduleID is the Temporal Schedule that runs one [Watch] sweep
	// every [WatchInterval]; its workflows get ids "watch:out-of-band-<time>".
	WatchScheduleID = "watch:out-of-band"
	// WatchInterval is how often the schedule sweeps.
	WatchInterval = 30 * time.Second
	// WatchListActivity lists incident runs closed as terminated since a
	// cursor: [WatchListInput] in, [WatchListResult] out.
	WatchListActivity = "watch.list"
	// WatchReportActivity records one such run in the ledger and opens its
	// follow-up incident: [WatchReportInput] in, [WatchReportResult] out.
	WatchReportActivity = "watch.report"
	// OrphanedCompensationsPlaybook is the playbook of a follow-up
	// incident: its recovery phase gets one approval-gated step per
	// compensation the stopped run left pending ([IncidentInput.Inherited]).
	OrphanedCompensationsPlaybook = "orphaned-compensations"
	// WatchActor is the ledger actor of the watch's own entries.
	WatchActor = "system:watch"
)

// FollowUpKey is the correlation key of the follow-up incident of the
// stopped run runID: derived from the run id, so that the follow-up is
// opened once however often the run is reported.
func FollowUpKey(runID string) string { return "followup:" + runID }
