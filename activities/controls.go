package activities

import "time"

// Control verification (the hardening guide's own controls, checked against
// live state). The controls file (package controls) lists each control; the
// worker runs one [ControlsCheck] activity per control, and the controls
// workflow opens a control-drift incident for every control that fails.
const (
	// ControlsList returns the controls the worker loaded ([ControlsListResult]).
	ControlsList = "controls.list"
	// ControlsCheck runs one control's check against live state
	// ([ControlCheckInput] in, [ControlCheckResult] out).
	ControlsCheck = "controls.check"
)

// Control check outcomes ([ControlCheckResult.Status]).
const (
	// ControlPass: every target was read and met the control.
	ControlPass = "pass"
	// ControlFail: at least one target was read and did not meet the control
	// ([ControlCheckResult.Findings] names each one).
	ControlFail = "fail"
	// ControlUnknown: the state could not be established (for example a key
	// with no rotation record); never counted as passing.
	ControlUnknown = "unknown"
)

// ControlSummary describes one control of the controls file.
type ControlSummary struct {
	// ID is the control's id in the controls file (e.g. "net-ingress-ports").
	ID string
	// Section is the hardening guide's section the control comes from.
	Section string
	// Title says in one line what is checked.
	Title string
	// Check is the kind of check that runs (e.g. "pve.ingress").
	Check string
	// Severity is the severity of the incident a failure opens.
	Severity string
	// Playbook is the playbook a failure opens (normally "control-drift").
	Playbook string
	// Frameworks are the SOC 2 / ISO 27001 clauses the control supports.
	Frameworks []string `json:",omitempty"`
}

// ControlsListInput is the input of [ControlsList].
type ControlsListInput struct {
	// IDs limits the list to these controls (empty: all of them).
	IDs []string `json:",omitempty"`
}

// ControlsListResult is the result of [ControlsList].
type ControlsListResult struct {
	Controls []ControlSummary
	// Digest is the SHA-256 of the controls file the worker loaded.
	Digest string
}

// ControlCheckInput is the input of [ControlsCheck].
type ControlCheckInput struct {
	// ID is the control to check.
	ID string
	// Drill is true when the check runs in a drill (lab targets only).
	Drill bool `json:",omitempty"`
}

// ControlFinding is one target that did not meet a control, or whose state
// could not be read.
type ControlFinding struct {
	// Target is what was read: a container ("pve/node1/lxc/101"), a realm
	// ("keycloak/iru"), a client, a key id, a ledger chain.
	Target string
	// Setting names the exact rule or setting (e.g. "firewall rule pos 3",
	// "accessTokenLifespan").
	Setting string
	// Observed is what was read, as text.
	Observed string
	// Expected is what the control requires, as text.
	Expected string
	// Fix names the catalog action that restores the setting when a safe
	// fix exists ("": none); FixParams are its parameters.
	Fix       string            `json:",omitempty"`
	FixParams map[string]string `json:",omitempty"`
}

// ControlCheckResult is the result of [ControlsCheck].
type ControlCheckResult struct {
	Control ControlSummary
	// Status is [ControlPass], [ControlFail] or [ControlUnknown].
	Status string
	// Targets counts what was read.
	Targets int
	// Findings lists each target that failed or could not be read.
	Findings []ControlFinding `json:",omitempty"`
	// Observed is the state that was read (canonical JSON), kept as the
	// check's evidence.
	Observed []byte `json:",omitempty"`
	// CheckedAt is when the check read the state.
	CheckedAt time.Time
}
