package activities

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ActionInput is the single input of every playbook action. The incident
// workflow builds it; implementations must treat it as read-only.
type ActionInput struct {
	// IncidentID is the incident the action runs for.
	IncidentID string
	// StepID is the playbook step id (or "<step>:compensate" for a compensation).
	StepID string
	// Action is the catalog name of the action (e.g. [PVEIsolate]).
	Action string
	// Params are the step's parameters, already templated and completed with
	// the catalog defaults, as text; the action decodes them into its params
	// struct (params.go) with [DecodeParams].
	Params map[string]string
	// Asset is the incident's canonical asset (container) name.
	Asset string
	// Resolved is where the intake found Asset in the operator's inventory
	// (nil: the incident was opened without one). An action whose asset
	// parameter names Asset acts on this container instead of resolving the
	// name again.
	Resolved *AssetRef `json:",omitempty"`
	// Drill is true in a drill: implementations must act on drill targets only
	// and refuse anything else with [ErrTypePrecondition].
	Drill bool
	// DryRun asks for a plan instead of a change: return [ActionResult.Plan]
	// and change nothing. Only sent to actions whose [Action.DryRun] is true.
	DryRun bool
	// IdempotencyKey is the same for every attempt of the step (and across
	// worker restarts and continue-as-new): implementations use it so that a
	// retried attempt converges on the first attempt's effect.
	IdempotencyKey string
	// LedgerSeq is the sequence number of the last ledger entry the workflow
	// issued before scheduling the step (typically its approval decision).
	LedgerSeq int64
	// Undo is set only for a compensation: the [ActionResult.Undo] of the
	// forward step it reverses (for example the prior firewall state).
	Undo map[string]string `json:",omitempty"`
	// Phase is the playbook phase of the step (empty for a compensation or
	// a notification of the interpreter's own). The worker runs the steps
	// of the phases after containment behind those of detection and
	// containment under load (see workerhost.ContainFirst).
	Phase string `json:",omitempty"`
	// Override is set by the workflow only when the step's approval was
	// granted by [ProtectedQuorum] distinct holders of [ProtectedRole]: it
	// lets an action run against a protected account (see
	// [ErrTypeProtected]). Nothing an alert carries can set it.
	Override *Override `json:",omitempty"`
}

// AssetRef locates a canonical asset: the container the operator's
// inventory lists under Name. Only the intake's inventory fills it; nothing
// an alert's labels say does.
type AssetRef struct {
	// Name is the canonical asset (container) name.
	Name string
	// Node is the Proxmox node the container runs on.
	Node string
	// VMID is the container's Proxmox VMID.
	VMID int
}

// Override is the approval that lets an action act on a protected account:
// who approved the step, as the workflow recorded the decisions.
type Override struct {
	// StepID is the step the approval was for.
	StepID string
	// Approvers are the approvals' verified identities.
	Approvers []OverrideApprover
}

// OverrideApprover is one approval carried by an [Override].
type OverrideApprover struct {
	Subject  string
	Username string `json:",omitempty"`
	Roles    []string
}

// Grants reports whether o holds approvals of at least [ProtectedQuorum]
// distinct subjects holding [ProtectedRole] for step stepID.
func (o *Override) Grants(stepID string) bool {
	if o == nil || o.StepID != stepID {
		return false
	}
	seen := map[string]bool{}
	for _, a := range o.Approvers {
		if a.Subject != "" && slices.Contains(a.Roles, ProtectedRole) {
			seen[a.Subject] = true
		}
	}
	return len(seen) >= ProtectedQuorum
}

// Protected accounts: an action against one runs only after an approval
// by ProtectedQuorum distinct holders of ProtectedRole.
const (
	ProtectedRole   = "ir-admin"
	ProtectedQuorum = 2
)

// ProtectedRefusal is the detail of an [ErrTypeProtected] error: which
// account, and why it is protected.
type ProtectedRefusal struct {
	Realm    string
	UserID   string
	Username string
	// Reasons say why the account is protected (e.g. "holds realm role ir-lead").
	Reasons []string
}

// ActionResult is the single result of every playbook action. Keep it small:
// evidence, reports and secrets travel as references, never as content.
type ActionResult struct {
	// Outputs are named results that later steps may reference as
	// {{ .Steps.<step>.<output> }}; [Action.Outputs] lists the names.
	Outputs map[string]string `json:",omitempty"`
	// EvidenceRefs reference what the action stored in the evidence locker.
	EvidenceRefs []string `json:",omitempty"`
	// Undo is what the compensation needs to reverse the action (for example
	// a reference to the prior state), recorded before the change was made.
	Undo map[string]string `json:",omitempty"`
	// Plan lists, for a dry run, what would change.
	Plan []string `json:",omitempty"`
	// Summary is one line for people (timeline, ledger).
	Summary string `json:",omitempty"`
}

// Names of the playbook actions. These strings are the activity names the
// worker registers and the `action:` values playbooks use.
const (
	// PVEResolveAsset looks up the container of an asset: node, vmid,
	// status, primary ip and last_backup (volid of the newest backup taken
	// before the incident, "" if none).
	PVEResolveAsset = "pve.resolve_asset"
	// PVEIsolate cuts a container off the network (firewall or link down),
	// keeping an allow list; compensated by [PVEUnisolate].
	PVEIsolate = "pve.isolate"
	// PVEUnisolate restores the network state recorded by [PVEIsolate].
	PVEUnisolate = "pve.unisolate"
	// PVESnapshot takes an evidence snapshot with a name derived from the incident.
	PVESnapshot = "pve.snapshot"
	// PVECollectEvidence copies logs, config and task history of a time window
	// into the evidence locker.
	PVECollectEvidence = "pve.collect_evidence"
	// PVEStop stops a container immediately.
	PVEStop = "pve.stop"
	// PVEShutdown shuts a container down cleanly (optionally forced after a timeout).
	PVEShutdown = "pve.shutdown"
	// PVEStart starts a container.
	PVEStart = "pve.start"
	// PVEBackup backs a container up to a storage.
	PVEBackup = "pve.backup"
	// PVERestore restores a container from a backup volume id or a snapshot.
	PVERestore = "pve.restore"
	// PVERotateToken replaces a Proxmox API token; the new secret goes to the
	// secret store and only its reference is returned.
	PVERotateToken = "pve.rotate_token"

	// NetHealthProbe checks that a service answers (HTTP(S) URL or TCP address).
	NetHealthProbe = "net.health_probe"

	// KCResolveUser looks up a Keycloak user by username.
	KCResolveUser = "kc.resolve_user"
	// KCListSessions lists a user's sessions (stored as evidence).
	KCListSessions = "kc.list_sessions"
	// KCDisableUser disables a user; compensated by [KCEnableUser].
	KCDisableUser = "kc.disable_user"
	// KCEnableUser enables a user.
	KCEnableUser = "kc.enable_user"
	// KCLogoutUser ends all sessions of a user.
	KCLogoutUser = "kc.logout_user"
	// KCDeleteSession ends one session.
	KCDeleteSession = "kc.delete_session"
	// KCRevokeRealm sets the realm's not-before and pushes the revocation to clients.
	KCRevokeRealm = "kc.revoke_realm"
	// KCRotateClientSecret regenerates a client's secret; only a reference to
	// the new secret is returned.
	KCRotateClientSecret = "kc.rotate_client_secret"
	// KCCollectEvents copies the realm's login and admin events of a window
	// into the evidence locker.
	KCCollectEvents = "kc.collect_events"

	// KeysRotateKEK rotates a key-encryption key in the HSM and rewraps.
	KeysRotateKEK = "keys.rotate_kek"
	// KeysRotateIntakeKeys rotates the detector intake API keys / HMAC secrets.
	KeysRotateIntakeKeys = "keys.rotate_intake_keys"

	// LedgerAppend appends one entry to the audit ledger. The interpreter
	// calls it itself with [LedgerAppendInput]; playbooks cannot use it.
	LedgerAppend = "ledger.append"
	// LedgerAppendBatch appends consecutive entries of one incident's
	// chain, pipelined, with [LedgerAppendBatchInput]; the interpreter's
	// ledger writer uses it instead of [LedgerAppend] (one local activity
	// for every entry queued, not one per entry). It is not a catalog
	// action: playbooks cannot use it.
	LedgerAppendBatch = "ledger.append_batch"
	// NotifySend sends a notification about an incident event to a channel.
	NotifySend = "notify.send"
	// ComplianceNotify opens a regulatory notification (e.g. GDPR Art. 33,
	// 72 hours) with its deadline.
	ComplianceNotify = "compliance.notify"
	// ReportGenerate writes the incident report from the ledger and the
	// evidence manifest.
	ReportGenerate = "report.generate"

	// SelfTestProbe is the activity that the self-test workflow runs on a
	// worker: it echoes a nonce and reports what the worker can reach.
	// Playbooks cannot use it.
	SelfTestProbe = "selftest.probe"
)

// OutputUndelivered is the output of [NotifySend] that names the channels
// it could not deliver to (comma-separated; empty: none).
const OutputUndelivered = "undelivered"

// Stable error types. Implementations return
// temporal.NewNonRetryableApplicationError(msg, ErrTypeX, cause) (see
// [NewFinalError]) for these; they are final and never retried. Any other
// error is retried under the action's [Action.Options] retry policy.
const (
	// ErrTypeNotFound: the asset, user, session, backup … does not exist.
	ErrTypeNotFound = "NotFound"
	// ErrTypeBadParams: a parameter is missing or malformed.
	ErrTypeBadParams = "BadParams"
	// ErrTypePermission: the platform's credentials may not do this.
	ErrTypePermission = "Permission"
	// ErrTypePrecondition: the target is not in a state that allows the
	// action (for example a non-drill target in a drill).
	ErrTypePrecondition = "Precondition"
	// ErrTypeConflict: a conflicting change exists (for example a ledger
	// entry with the same sequence number and different content).
	ErrTypeConflict = "Conflict"
	// ErrTypeProtected: the target is a protected account (a responder,
	// an administrator, a service account, a listed account) and the step
	// carries no [Override]; the error's details are a [ProtectedRefusal].
	// The incident workflow turns the step into an approval for
	// [ProtectedRole] with quorum [ProtectedQuorum] and runs it again with
	// the override.
	ErrTypeProtected = "ProtectedAccount"
)

// ErrTypeLedgerGap is returned (final) by [LedgerAppend] when an entry
// arrives before its predecessor. The interpreter's one ledger writer sends
// an incident's entries in order, each after its predecessor is stored, so
// a gap is a defect, not a race: retrying cannot fill it.
const ErrTypeLedgerGap = "LedgerGap"

// FinalErrorTypes lists the error types that are never retried.
func FinalErrorTypes() []string {
	return []string{ErrTypeNotFound, ErrTypeBadParams, ErrTypePermission, ErrTypePrecondition, ErrTypeConflict, ErrTypeProtected}
}

// NewFinalError returns a non-retryable application error of one of the
// stable types; msg must not contain secrets.
func NewFinalError(errType, msg string, cause error) error {
	return temporal.NewNonRetryableApplicationError(msg, errType, cause)
}

// NewProtectedError returns the final [ErrTypeProtected] error of an action
// refused against a protected account, with the refusal as its details.
func NewProtectedError(msg string, r ProtectedRefusal) error {
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeProtected, nil, r)
}

// LedgerAppendInput is the input of [LedgerAppend] and the record the
// ledger keeps of the event: the entry stores it (without At, the entry's
// own time) as canonical JSON, and the entry hash covers it, so the
// incident report is built from the ledger alone. Seq is assigned by the
// workflow (a deterministic counter starting at 1 per incident); the store
// must accept the same (IncidentID, Seq, content) again idempotently, and
// refuse an entry whose Seq-1 is missing ([ErrTypeLedgerGap]) or a
// different entry at an existing Seq ([ErrTypeConflict]). It holds what
// the incident's state holds (actions return references to secrets, never
// secrets), and the ledger keeps it for good.
type LedgerAppendInput struct {
	IncidentID string
	Seq        int64
	// At is the workflow time of the event.
	At time.Time
	// Kind is incident_opened, alert, phase, step, approval, denial,
	// escalation, compensation, abort, incident_closed …
	Kind string
	// Actor is who did it: a verified subject or "workflow".
	Actor string
	// ActorName is the human actor's username, when it differs from Actor.
	ActorName string `json:",omitempty"`
	// SourceIP is the verified client address of a human actor.
	SourceIP string `json:",omitempty"`
	Phase    string `json:",omitempty"`
	StepID   string `json:",omitempty"`
	Action   string `json:",omitempty"`
	// What is the event in words, as the incident's timeline shows it.
	What string `json:",omitempty"`
	// Outcome is the workflow's word for what happened: succeeded,
	// failed, skipped, approved, denied, "3 new" …
	Outcome string `json:",omitempty"`
	// Status is the entry's outcome class in the ledger (empty: [LedgerOK]).
	Status LedgerStatus `json:",omitempty"`
	// Approvals and Quorum are set on an approval: the distinct approvals
	// of the step so far and how many it needs.
	Approvals int `json:",omitempty"`
	Quorum    int `json:",omitempty"`
	// Reason is the human reason, a step's summary or the error message.
	Reason string `json:",omitempty"`
	// StartedAt is when a step's action started (step entries of steps
	// that ran).
	StartedAt time.Time `json:",omitzero"`
	// Params are a step's rendered parameters, Outputs and EvidenceRefs
	// what its action returned, and Compensation the state of its undo
	// (registered, failed) when the step ended.
	Params       map[string]string `json:",omitempty"`
	Outputs      map[string]string `json:",omitempty"`
	EvidenceRefs []string          `json:",omitempty"`
	Compensation string            `json:",omitempty"`
	// Alerts are the alerts of an alert entry: the new ones with their
	// fields, the repeats of known ones with their fingerprint and count.
	Alerts []LedgerAlert `json:",omitempty"`
	// Opening is set on the incident_opened entry.
	Opening *LedgerOpening `json:",omitempty"`
	// Related is set on a related entry: the other incident open on the
	// same asset that this one is linked to.
	Related *LedgerRelated `json:",omitempty"`
	// Detail holds small extra facts (undo values, statements, roles).
	Detail map[string]string `json:",omitempty"`
}

// LedgerStoredEntry is the details of the [ErrTypeConflict] error of a
// [LedgerAppend] refused because its slot holds another entry: that
// entry's seq and record (zero for an entry stored without one).
type LedgerStoredEntry struct {
	Seq    int64
	Record LedgerAppendInput
}

// LedgerRelated is the incident a related entry links to.
type LedgerRelated struct {
	// WorkflowID is the other incident's workflow id; IncidentID its
	// human-facing id, when known.
	WorkflowID string
	IncidentID string `json:",omitempty"`
	Playbook   string `json:",omitempty"`
	// How is found (this incident found the other open on its asset when
	// it opened) or reported (the other incident found this one).
	How string
}

// LedgerAlert is one alert as an alert entry records it.
type LedgerAlert struct {
	Fingerprint string
	Source      string    `json:",omitempty"`
	Rule        string    `json:",omitempty"`
	Severity    string    `json:",omitempty"`
	Summary     string    `json:",omitempty"`
	ObservedAt  time.Time `json:",omitzero"`
	ReceivedAt  time.Time `json:",omitzero"`
	// Count is how many times the incident has received the alert so far.
	Count int
	// ResolvedAt is when the detector resolved the alert, on the entry
	// that records its resolution.
	ResolvedAt time.Time `json:",omitzero"`
}

// LedgerOpening is what the incident_opened entry records of the incident.
type LedgerOpening struct {
	Playbook        string
	PlaybookVersion string
	Asset           string
	Severity        string
	Drill           bool `json:",omitempty"`
	DryRun          bool `json:",omitempty"`
	// Steps are the playbook's steps, in order.
	Steps []LedgerPlannedStep
}

// LedgerPlannedStep is one step of the playbook an incident runs.
type LedgerPlannedStep struct {
	ID     string
	Phase  string
	Action string
}

// LedgerStatus is the outcome class of a ledger entry: a lowercase token
// ([a-z][a-z_]*, at most 32 bytes). The constants are the common ones.
type LedgerStatus string

// Ledger outcome classes.
const (
	LedgerOK      LedgerStatus = "ok"      // done as asked
	LedgerFailed  LedgerStatus = "failed"  // tried and failed
	LedgerDenied  LedgerStatus = "denied"  // refused: approval, policy, abort
	LedgerSkipped LedgerStatus = "skipped" // deliberately not run
)

// LedgerAppendResult is the result of [LedgerAppend].
type LedgerAppendResult struct {
	// Hash is the entry's chain hash (hex).
	Hash string
}

// MaxLedgerBatch is the most entries one [LedgerAppendBatch] takes. The
// incident workflow groups its entries by it, so recorded histories depend
// on it: changing it needs a new version marker in the workflow.
const MaxLedgerBatch = 64

// LedgerAppendBatchInput is the input of [LedgerAppendBatch]: at most
// [MaxLedgerBatch] entries of one incident, with consecutive sequence
// numbers, in sequence order.
type LedgerAppendBatchInput struct {
	Entries []LedgerAppendInput
}

// LedgerAppendBatchResult is the result of [LedgerAppendBatch]. The first
// len(Stored) entries are stored, in order (Stored[i] is the result of
// Entries[i]); when Failed is set, the next entry was refused for good and
// none after it was stored; otherwise the entries after the stored ones
// were not tried (send them again). An entry whose append failed in a way
// worth retrying is left untried when entries before it are stored, and
// fails the activity (which is retried) when it is the first.
type LedgerAppendBatchResult struct {
	Stored []LedgerAppendResult
	Failed *LedgerAppendFailure `json:",omitempty"`
}

// LedgerAppendFailure is the final refusal of one entry of a
// [LedgerAppendBatch]: the error type and message [LedgerAppend] would
// have failed with, and for an [ErrTypeConflict] with the slot taken, the
// entry stored there.
type LedgerAppendFailure struct {
	Type    string
	Message string
	Stored  *LedgerStoredEntry `json:",omitempty"`
}

// ParamKind is how a parameter value (always a string on the wire) is parsed.
type ParamKind string

// Parameter kinds.
const (
	KindString   ParamKind = "string"
	KindInt      ParamKind = "int"
	KindBool     ParamKind = "bool"
	KindDuration ParamKind = "duration"  // time.ParseDuration syntax
	KindCIDRList ParamKind = "cidr-list" // comma separated CIDRs or addresses
	KindEnum     ParamKind = "enum"      // one of Param.Allowed
	KindTime     ParamKind = "time"      // RFC 3339
)

// Param describes one parameter of an action.
type Param struct {
	Name     string
	Kind     ParamKind
	Required bool
	// Default is used when the playbook omits the parameter ("" = none).
	Default string
	// Allowed lists the values of a [KindEnum] parameter.
	Allowed []string
	Doc     string
}

// Action describes one playbook action: what the playbook validator checks
// and how the interpreter runs it.
type Action struct {
	Name        string
	Description string
	// Params are the parameters, derived from the action's params struct
	// (params.go); see [Action.ParamsType].
	Params []Param
	// params is the action's params struct type (nil: no parameters).
	params reflect.Type
	// Outputs are the keys the action always sets in [ActionResult.Outputs].
	Outputs []string
	// Compensation is the action that undoes this one ("" = none: the action
	// is read-only, final, or its effect is meant to stay).
	Compensation string
	// DryRun is true when the action can plan without changing anything.
	DryRun bool
	// Destructive actions need an approval in non-drill playbooks unless the
	// step explicitly waives it.
	Destructive bool
	// Internal actions are used by the interpreter, never by playbooks.
	Internal bool
	// Long actions wait on tasks (Proxmox vzdump, restore …) and heartbeat.
	Long bool
	// Contains marks the actions that contain an incident: once they took
	// effect the attacker's reach is cut (a container isolated or stopped,
	// an account's sessions ended or the account disabled). An incident's
	// time to contain is when the last containing action of its
	// containment phase finished, not when the phase (with its evidence
	// steps) did.
	Contains bool
}

// Param returns the parameter called name.
func (a Action) Param(name string) (Param, bool) {
	for _, p := range a.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// ParamsType returns the action's params struct type, nil for an action
// without parameters.
func (a Action) ParamsType() reflect.Type { return a.params }

// HasOutput reports whether the action declares output name.
func (a Action) HasOutput(name string) bool { return slices.Contains(a.Outputs, name) }

// Options returns the recommended activity options: bounded retries with the
// stable error types final; long actions get a longer StartToClose and a
// heartbeat timeout (implementations heartbeat while they wait on tasks).
func (a Action) Options() workflow.ActivityOptions {
	if a.Name == LedgerAppend {
		return LedgerAppendOptions()
	}
	o := workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: FinalErrorTypes(),
		},
	}
	if a.Long {
		o.StartToCloseTimeout = 30 * time.Minute
		o.HeartbeatTimeout = 30 * time.Second
		o.RetryPolicy.MaximumAttempts = 3
	}
	return o
}

// LedgerAppendOptions are the options of [LedgerAppend]: the audit trail must
// be complete, so appends retry (with backoff) until they land; only bad
// input, conflicts and gaps are final.
func LedgerAppendOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        200 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{ErrTypeBadParams, ErrTypeConflict, ErrTypeLedgerGap},
		},
	}
}

// LedgerAppendLocalOptions are the options of [LedgerAppend] run as a
// local activity (the interpreter's default): the same retries, no server
// round trip.
func LedgerAppendLocalOptions() workflow.LocalActivityOptions {
	o := LedgerAppendOptions()
	return workflow.LocalActivityOptions{StartToCloseTimeout: o.StartToCloseTimeout, RetryPolicy: o.RetryPolicy}
}

// ErrUnknownAction is returned by [Lookup] for a name that is not an action.
var ErrUnknownAction = errors.New("activities: unknown action")

// Lookup returns the catalog entry of action name.
func Lookup(name string) (Action, error) {
	for _, a := range catalog {
		if a.Name == name {
			return a, nil
		}
	}
	return Action{}, fmt.Errorf("%w %q", ErrUnknownAction, name)
}

// Catalog returns every action, sorted by name. The slice is a copy.
func Catalog() []Action {
	out := slices.Clone(catalog)
	slices.SortFunc(out, func(a, b Action) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// declare completes an action with the parameters its params struct P
// declares (see params.go).
func declare[P any](a Action) Action {
	a.params, a.Params = paramsOf[P]()
	return a
}

// catalog lists every action; each one's parameters are the fields of its
// params struct in params.go.
var catalog = []Action{
	declare[PVEResolveAssetParams](Action{Name: PVEResolveAsset, Description: "Resolve an asset to its Proxmox container (node, vmid, status).",
		Outputs: []string{"node", "vmid", "status", "ip", "last_backup"}, DryRun: true}),
	declare[PVEIsolateParams](Action{Name: PVEIsolate, Description: "Isolate a container: enable a deny-all firewall with an allow list, or take its links down.",
		Outputs: []string{"method"}, Compensation: PVEUnisolate, DryRun: true, Contains: true}),
	declare[PVEUnisolateParams](Action{Name: PVEUnisolate, Description: "Lift an isolation, restoring the recorded prior network state.",
		Outputs: []string{"method"}, DryRun: true}),
	declare[PVESnapshotParams](Action{Name: PVESnapshot, Description: "Take an evidence snapshot named after the incident (deterministic: retries find it).",
		Outputs: []string{"snapshot"}, DryRun: true, Long: true}),
	declare[PVECollectEvidenceParams](Action{Name: PVECollectEvidence, Description: "Collect config, logs and task history of a window into the evidence locker.",
		Outputs: []string{"manifest"}, DryRun: true, Long: true}),
	declare[PVEStopParams](Action{Name: PVEStop, Description: "Stop a container immediately (memory state is lost).",
		Outputs: []string{"status"}, Compensation: PVEStart, DryRun: true, Destructive: true, Long: true, Contains: true}),
	declare[PVEShutdownParams](Action{Name: PVEShutdown, Description: "Shut a container down cleanly, optionally forcing a stop after the timeout.",
		Outputs: []string{"status"}, Compensation: PVEStart, DryRun: true, Destructive: true, Long: true, Contains: true}),
	declare[PVEStartParams](Action{Name: PVEStart, Description: "Start a container.",
		Outputs: []string{"status"}, DryRun: true, Long: true}),
	declare[PVEBackupParams](Action{Name: PVEBackup, Description: "Back a container up (vzdump) to a storage.",
		Outputs: []string{"volid"}, DryRun: true, Long: true}),
	declare[PVERestoreParams](Action{Name: PVERestore, Description: "Restore a container from a backup volume id or roll back to a snapshot.",
		Outputs: []string{"status"}, DryRun: true, Destructive: true, Long: true}),
	declare[PVERotateTokenParams](Action{Name: PVERotateToken, Description: "Replace a Proxmox API token; the new secret goes to the secret store.",
		Outputs: []string{"token_ref"}, DryRun: true, Destructive: true}),
	declare[NetHealthProbeParams](Action{Name: NetHealthProbe, Description: "Probe an asset's service at its inventory address (IRU_PROBE_SCHEME/PORT/PATH) or its allow-listed target: HTTP(S) (2xx/3xx) or TCP (connect).",
		Outputs: []string{"healthy", "detail"}, DryRun: true}),
	declare[KCResolveUserParams](Action{Name: KCResolveUser, Description: "Resolve a Keycloak username to its user id.",
		Outputs: []string{"user_id", "enabled"}, DryRun: true}),
	declare[KCListSessionsParams](Action{Name: KCListSessions, Description: "List a user's sessions into the evidence locker.",
		Outputs: []string{"count"}, DryRun: true}),
	declare[KCDisableUserParams](Action{Name: KCDisableUser, Description: "Disable a user (prior state recorded for the undo).",
		Outputs: []string{"was_enabled"}, Compensation: KCEnableUser, DryRun: true, Contains: true}),
	declare[KCEnableUserParams](Action{Name: KCEnableUser, Description: "Enable a user (restores the recorded prior state when compensating).",
		Outputs: []string{"enabled"}, DryRun: true}),
	declare[KCLogoutUserParams](Action{Name: KCLogoutUser, Description: "End every session of a user.",
		Outputs: []string{"sessions_ended"}, DryRun: true, Contains: true}),
	declare[KCDeleteSessionParams](Action{Name: KCDeleteSession, Description: "End one session.",
		DryRun: true, Contains: true}),
	declare[KCRevokeRealmParams](Action{Name: KCRevokeRealm, Description: "Set the realm's not-before to now and push the revocation to clients.",
		Outputs: []string{"not_before"}, DryRun: true, Destructive: true, Contains: true}),
	declare[KCRotateClientSecretParams](Action{Name: KCRotateClientSecret, Description: "Regenerate a client secret; the new secret goes to the secret store.",
		Outputs: []string{"secret_ref"}, DryRun: true, Destructive: true}),
	declare[KCCollectEventsParams](Action{Name: KCCollectEvents, Description: "Collect login and admin events of a window into the evidence locker.",
		Outputs: []string{"manifest", "failed_logins"}, DryRun: true, Long: true}),
	declare[KeysRotateKEKParams](Action{Name: KeysRotateKEK, Description: "Rotate a key-encryption key in the HSM and rewrap the data keys.",
		Outputs: []string{"key_version"}, DryRun: true, Destructive: true, Long: true}),
	declare[KeysRotateIntakeKeysParams](Action{Name: KeysRotateIntakeKeys, Description: "Rotate detector intake API keys and HMAC secrets.",
		Outputs: []string{"rotated"}, DryRun: true, Destructive: true}),
	{Name: LedgerAppend, Description: "Append an entry to the audit ledger (interpreter only).", Internal: true},
	declare[NotifySendParams](Action{Name: NotifySend, Description: "Notify a channel about an incident event.",
		Outputs: []string{"notification_id", OutputUndelivered}, DryRun: true}),
	declare[ComplianceNotifyParams](Action{Name: ComplianceNotify, Description: "Open a regulatory notification with its deadline (GDPR: 72 hours from awareness).",
		Outputs: []string{"due_at", "notice_ref"}, DryRun: true}),
	declare[ReportGenerateParams](Action{Name: ReportGenerate, Description: "Write the incident report from the ledger and the evidence manifest.",
		Outputs: []string{"report_ref"}, DryRun: true}),
	declare[PVEFirewallEnableParams](Action{Name: PVEFirewallEnable, Description: "Turn the datacenter firewall, or a container's firewall, on (enable=1); nothing else changes.",
		Outputs: []string{"changed"}, DryRun: true}),
	declare[PVEFirewallRestoreParams](Action{Name: PVEFirewallRestore, Description: "Restore a container's firewall options and rules from a control's last passing check (prior state kept as evidence).",
		Outputs: []string{"changed", "prior_ref"}, DryRun: true, Destructive: true}),
	declare[KCDisableDirectGrantsParams](Action{Name: KCDisableDirectGrants, Description: "Turn off a client's direct access grants (password grant).",
		Outputs: []string{"changed"}, DryRun: true}),
	declare[ControlsRecheckParams](Action{Name: ControlsCollect, Description: "Run a control's check now and keep what was read and expected as the incident's evidence.",
		Outputs: []string{"status", "findings", "evidence"}, DryRun: true}),
	declare[ControlsRecheckParams](Action{Name: ControlsRecheck, Description: "Run a control's check again; fails unless the control passes.",
		Outputs: []string{"status", "findings", "evidence"}, DryRun: true}),
}

// Validate checks a literal value against the parameter's kind.
func (p Param) Validate(v string) error {
	switch p.Kind {
	case KindString:
		return nil
	case KindInt:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("parameter %s: %q is not an integer", p.Name, v)
		}
	case KindBool:
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("parameter %s: %q is not a boolean", p.Name, v)
		}
	case KindDuration:
		if _, err := ParseDuration(v); err != nil {
			return fmt.Errorf("parameter %s: %w", p.Name, err)
		}
	case KindCIDRList:
		if _, err := ParseCIDRList(v); err != nil {
			return fmt.Errorf("parameter %s: %w", p.Name, err)
		}
	case KindTime:
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return fmt.Errorf("parameter %s: %q is not an RFC 3339 time", p.Name, v)
		}
	case KindEnum:
		if !slices.Contains(p.Allowed, v) {
			return fmt.Errorf("parameter %s: %q is not one of %s", p.Name, v, strings.Join(p.Allowed, ", "))
		}
	default:
		return fmt.Errorf("parameter %s: unknown kind %q", p.Name, p.Kind)
	}
	return nil
}

// ParseDuration parses a [KindDuration] value (time.ParseDuration syntax,
// not negative).
func ParseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("parse duration %q: %w", v, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("parse duration %q: negative", v)
	}
	return d, nil
}

// ParseCIDRList parses a [KindCIDRList] value: comma separated CIDRs or
// single addresses (as /32 or /128). The empty string is the empty list.
func ParseCIDRList(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("parse cidr list: %w", err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("parse cidr list: %w", err)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
