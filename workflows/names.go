package workflows

import (
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities/drillreport"
)

// This file declares every name the platform gives Temporal: the task
// queue, workflow types, signals, queries and updates, schedules, search
// attributes, workflow ids and the activities that workflows run for
// themselves. The playbook actions are named in package activities (the
// catalog). The worker, the starter, the API server and the workflows use
// these and nothing else.

// TaskQueue is the task queue the worker polls for workflows and activities.
const TaskQueue = "iru-responder"

// Workflow types, as registered on the worker: each is the name of the
// function that implements it.
const (
	// IncidentWorkflow is the registered name of [Incident], the playbook
	// interpreter.
	IncidentWorkflow = "Incident"
	// DrillWorkflow is the registered name of [Drill].
	DrillWorkflow = "Drill"
	// WatchWorkflow is the registered name of [Watch], the sweep for
	// incidents stopped outside the platform: runs that an operator
	// terminated or reset directly on Temporal (Web UI, CLI), past the
	// responder API.
	WatchWorkflow = "Watch"
	// SelfTestWorkflow is the registered name of [SelfTest].
	SelfTestWorkflow = "SelfTest"
	// RotateIntakeKeysWorkflow is the registered name of [RotateIntakeKeys].
	RotateIntakeKeysWorkflow = "RotateIntakeKeys"
	// SignDailyChainsWorkflow is the registered name of [SignDailyChains].
	SignDailyChainsWorkflow = "SignDailyChains"
	// SweepEvidenceWorkflow is the registered name of [SweepEvidence].
	SweepEvidenceWorkflow = "SweepEvidence"
	// ControlsWorkflow is the registered name of [Controls], the check of
	// the hardening guide's controls.
	ControlsWorkflow = "Controls"
)

// Messages of the incident workflow: signals, queries and updates.
const (
	// AlertSignal carries correlated alerts ([AlertSignalInput]) into an incident.
	AlertSignal = "alert"
	// ApprovalSignal carries a responder decision as a signal (fire and forget).
	ApprovalSignal = "approval"
	// AbortSignal stops an incident and runs its compensations.
	AbortSignal = "abort"
	// DecisionKeysSignal makes the incident re-read the decision public
	// keys from its worker (sent on rotation, or by the API server when a
	// statement's key is unknown). Its payload is ignored: the keys come
	// from the worker's configuration through [DecisionKeysActivity],
	// never from the sender.
	DecisionKeysSignal = "decision_keys"
	// LinkSignal tells an incident that another incident opened on its
	// asset and linked itself to it ([LinkSignalInput]); the receiver
	// records the back-link.
	LinkSignal = "link"
	// StatusQuery returns the incident's status.
	StatusQuery = "status"
	// ApproveUpdate approves a pending step (validated: role, quorum, four-eyes).
	ApproveUpdate = "approve"
	// DenyUpdate denies a pending step.
	DenyUpdate = "deny"
	// EscalateUpdate escalates the incident to the next tier.
	EscalateUpdate = "escalate"
	// RerouteUpdate moves an unknown-asset triage to the asset a
	// responder picked ([RerouteInput]): the incident of the right playbook
	// for that asset opens with the triage's alerts, the two are linked,
	// and the triage closes as re-routed.
	RerouteUpdate = "reroute"
	// AcknowledgeUpdate records that a responder took the incident on
	// (time to acknowledge).
	AcknowledgeUpdate = "acknowledge"
)

// Activities the workflows run for themselves (not playbook actions).
const (
	// ResolveActivity resolves a playbook (playbooks.Resolver.Resolve):
	// playbooks.ResolveInput in, playbooks.ResolveResult out. [Incident]
	// runs it as a local activity once.
	ResolveActivity = "playbook.resolve"
	// DecisionKeysActivity is the local activity that returns the decision
	// public keys the worker trusts: [DecisionKeysInput] in,
	// [DecisionKeysResult] out.
	DecisionKeysActivity = "decision.keys"
	// DrillReportActivity stores a drill report (Markdown and JSON) in the
	// evidence locker: [drillreport.Input] in, [drillreport.Result] out.
	DrillReportActivity = "drill.report"
	// SignDailyChainsActivity signs the head of each ended day's daily
	// chains (access log, key changes, configuration) with the HSM key.
	SignDailyChainsActivity = "ledger.sign_daily_chains"
	// RerouteActivity opens (SignalWithStart) the incident a triage is
	// re-routed into: [RerouteOpenInput] in, [RerouteOpenResult] out.
	RerouteActivity = "incident.reroute"
	// SweepEvidenceActivity destroys the evidence whose retention ended
	// (shredding its data keys) and records each destruction in the audit
	// ledger.
	SweepEvidenceActivity = "evidence.sweep"
	// ControlsEvidenceActivity keeps one control check result in the
	// evidence locker and finds the control's newest passing result:
	// [ControlEvidenceInput] in, [ControlEvidenceResult] out.
	ControlsEvidenceActivity = "controls.evidence"
	// ControlsIncidentActivity opens (SignalWithStart, as the intake does)
	// the control-drift incident of a failing control, or tells the one
	// open for it: [ControlIncidentInput] in, [ControlIncidentResult] out.
	ControlsIncidentActivity = "controls.incident"
)

// Temporal Schedules. The server uses a schedule's id as the workflow id
// of its runs, with the scheduled time appended.
const (
	// WatchScheduleID runs one [Watch] sweep every [WatchInterval].
	WatchScheduleID = "watch:out-of-band"
	// IntakeKeyRotationScheduleID starts [RotateIntakeKeys] every
	// [IntakeKeyRotationInterval].
	IntakeKeyRotationScheduleID = "keys:intake-rotation"
	// SignDailyChainsScheduleID runs [SignDailyChains] shortly after every
	// UTC midnight.
	SignDailyChainsScheduleID = "audit:sign-daily-chains"
	// SweepEvidenceScheduleID runs [SweepEvidence] every day.
	SweepEvidenceScheduleID = "evidence:retention-sweep"
	// DrillSchedulePrefix starts the id of every drill schedule
	// ([DrillScheduleID]); `starter drills sync` owns (creates, updates
	// and deletes) exactly the schedules with it.
	DrillSchedulePrefix = "drill:"
	// ControlsScheduleID runs [Controls] on every control once a day.
	ControlsScheduleID = "controls:daily"
)

// DrillScheduleID is the id of the Temporal Schedule of the drill called
// name.
func DrillScheduleID(name string) string { return DrillSchedulePrefix + name }

// Workflow ids of runs started by hand or by the platform itself.
const (
	// IntakeKeyRotationManualPrefix starts the workflow id of a rotation an
	// operator runs (`starter keys rotate-intake`).
	IntakeKeyRotationManualPrefix = "keys:intake-rotation:manual:"
	// SweepEvidenceManualPrefix starts the workflow id of a sweep an
	// operator runs (`starter evidence sweep`).
	SweepEvidenceManualPrefix = "evidence:retention-sweep:manual:"
	// ControlsManualPrefix starts the workflow id of a check an operator
	// runs; ControlsStepPrefix that of a check an incident's step runs
	// (followed by the step's idempotency key).
	ControlsManualPrefix = "controls:manual:"
	ControlsStepPrefix   = "controls:step:"
)

// IncidentWorkflowID is the workflow id of the incident with correlation key
// key: alerts with the same key join one incident.
func IncidentWorkflowID(key string) string { return "incident:" + key }

// FollowUpKey is the correlation key of the follow-up incident of the
// stopped run runID: derived from the run id, so that the follow-up is
// opened once however often the run is reported.
func FollowUpKey(runID string) string { return "followup:" + runID }

// DrillRunWorkflowID is the workflow id of a drill started by hand
// (`starter drill run`); nonce makes it unique.
func DrillRunWorkflowID(name, nonce string) string {
	return DrillSchedulePrefix + name + ":run-" + nonce
}

// SelfTestWorkflowID is the workflow id of one self-test run.
func SelfTestWorkflowID(nonce string) string { return "selftest:" + nonce }

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

// Identities and actors under which the workflows act.
const (
	// WatchActor is the ledger actor of the watch's own entries.
	WatchActor = "system:watch"
	// DrillApproverSubject is the subject of the identity that approves the
	// steps a drill lists in auto_approve.
	DrillApproverSubject = drillreport.ApproverSubject
	// DrillApproverUsername is that identity's username.
	DrillApproverUsername = "drill"
	// DrillOpenedBy opens drill incidents. It differs from the approver so
	// that the four-eyes rule holds for drill approvals too.
	DrillOpenedBy = "system:drill-scheduler"
)

// OrphanedCompensationsPlaybook is the playbook of a follow-up incident
// opened by [Watch]: its recovery phase gets one approval-gated step per
// compensation the stopped run left pending ([IncidentInput.Inherited]).
const OrphanedCompensationsPlaybook = "orphaned-compensations"

// UnknownAssetPlaybook is the playbook of an alert whose asset is in no
// inventory: a triage that takes no automatic action (the intake routes
// such alerts to it; the playbook the rules chose is in the alert's label
// "iru.routed_playbook").
const UnknownAssetPlaybook = "unknown-asset-triage"
