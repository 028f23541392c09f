package workflows

import (
	"time"

	"github.com/iru-responder/responder/activities"
)

// Alert is one detector alert as the intake hands it to an incident: parsed,
// authenticated, mapped to an asset. The raw request body is not kept;
// RawDigest identifies it.
type Alert struct {
	// ID is unique per accepted alert (assigned by the intake).
	ID string
	// Fingerprint identifies the same alert re-sent by a detector;
	// duplicates are counted, not repeated.
	Fingerprint string
	// Source is the detector: alertmanager, falco, wazuh or generic.
	Source string
	// Rule is the detector's rule or alert name.
	Rule string
	// Severity is critical, high, medium, low or info.
	Severity string
	// Asset is the canonical asset (container) name from the inventory.
	Asset string
	// AssetRef is where the intake's inventory found Asset (nil: the
	// inventory did not know it).
	AssetRef *activities.AssetRef `json:",omitempty"`
	// Summary is a one-line description for people.
	Summary string
	// Labels are the detector's labels and fields, flattened.
	Labels map[string]string
	// ObservedAt is when the detector saw the event.
	ObservedAt time.Time
	// ReceivedAt is when the intake durably accepted the alert.
	ReceivedAt time.Time
	// RawDigest is "sha256:<hex>#<index>": the SHA-256 of the raw request
	// body the alert came in, and the alert's index among the body's alerts.
	// Two alerts with the same digest came in the same request.
	RawDigest string `json:",omitempty"`
	// Resolved marks the detector's resolution of an alert it sent before
	// (Alertmanager's status "resolved"): it marks the incident's alert of
	// the same fingerprint resolved, is not counted as another alert and
	// never opens an incident.
	Resolved bool `json:",omitempty"`
	// ResolvedAt is when the detector says the alert ended (Alertmanager's
	// endsAt); zero: when the incident heard of it.
	ResolvedAt time.Time `json:",omitzero"`
}

// AlertSignalInput is the payload of [AlertSignal]: alerts for one
// correlation key that arrived together, coalesced into one signal.
type AlertSignalInput struct {
	Alerts []Alert
}

// IncidentInput starts an [IncidentWorkflow]. The intake fills it from the
// first alert(s) of a correlation key; drills and operators fill it too.
type IncidentInput struct {
	// IncidentID is the human-facing incident id (also in the ledger).
	IncidentID string
	// Key is the correlation key; the workflow id is IncidentWorkflowID(Key).
	Key string
	// Alerts are the alert(s) that opened the incident.
	Alerts []Alert
	// Asset is the canonical asset (container) name.
	Asset string
	// AssetRef is where the intake's inventory found Asset (nil: unknown;
	// actions then resolve the name themselves).
	AssetRef *activities.AssetRef `json:",omitempty"`
	// Severity is critical, high, medium, low or info.
	Severity string
	// Playbook and PlaybookVersion select the playbook ("" version: current).
	Playbook        string
	PlaybookVersion string
	// Drill marks a drill: acts only on drill targets.
	Drill bool
	// AutoApprove lists the step ids a drill approves as soon as they wait
	// for approval, as the drill identity ([DrillApproverSubject]). It is
	// honoured only on a drill, and never for a protected account.
	AutoApprove []string `json:",omitempty"`
	// OpenedBy is the verified identity or component that opened the incident.
	OpenedBy string
	// DryRun runs every action as a plan: nothing changes.
	DryRun bool `json:",omitempty"`
	// ContinueAsNewAfter is the number of signals and updates one run
	// handles before it continues as new (0: 500).
	ContinueAsNewAfter int `json:",omitempty"`
	// Inherited is set only on a follow-up incident (playbook
	// [OrphanedCompensationsPlaybook]): the compensations a run stopped
	// outside the platform left pending. Each becomes a recovery step that
	// waits for a responder's approval.
	Inherited *InheritedCompensations `json:",omitempty"`
	// Carry is the state of the previous run; set only by continue-as-new.
	Carry *IncidentCarry `json:",omitempty"`
}
