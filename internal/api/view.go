package api

import (
	"strings"
	"time"

	"github.com/iru-responder/responder/workflows"
)

// The JSON types of the responder API's answers about an incident. The
// workflow's own types are its history and query payloads; these are the
// API's contract, with snake_case keys, made from them by the view
// functions below.

// IncidentView is the answer of GET /incidents/{id}.
type IncidentView struct {
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// Execution is the workflow's execution status (Running, Completed, …).
	Execution string     `json:"execution"`
	Status    StatusView `json:"status"`
}

// StatusView is the incident's status (the workflow's status query).
type StatusView struct {
	IncidentID      string            `json:"incident_id"`
	Key             string            `json:"key"`
	Playbook        string            `json:"playbook"`
	PlaybookVersion string            `json:"playbook_version"`
	Asset           string            `json:"asset"`
	Severity        string            `json:"severity"`
	Drill           bool              `json:"drill"`
	DryRun          bool              `json:"dry_run"`
	OpenedBy        string            `json:"opened_by"`
	Labels          map[string]string `json:"labels,omitempty"`
	// Phase is the current (or last) phase.
	Phase string `json:"phase"`
	// State is open, resolved, aborted or escalated_failed.
	State string `json:"state"`
	// Reason explains a final state.
	Reason   string    `json:"reason,omitempty"`
	OpenedAt time.Time `json:"opened_at"`
	ClosedAt time.Time `json:"closed_at,omitzero"`
	// Steps are in playbook order.
	Steps []StepView `json:"steps"`
	// Compensations are the undo actions due if the incident aborts, in
	// the order they were registered (they run in reverse).
	Compensations []CompensationView `json:"compensations"`
	// Timeline holds the most recent entries (the ledger has all of them).
	Timeline []TimelineView `json:"timeline"`
	// TimelineDropped counts entries left out of Timeline.
	TimelineDropped int         `json:"timeline_dropped"`
	Alerts          []AlertView `json:"alerts"`
	// AlertsReceived counts every alert, duplicates included.
	AlertsReceived int `json:"alerts_received"`
	// AllAlertsResolvedAt is when every alert was resolved at its detector.
	AllAlertsResolvedAt time.Time `json:"all_alerts_resolved_at,omitzero"`
	// Related are the other incidents on the same asset linked to this one.
	Related         []RelatedView `json:"related"`
	Metrics         MetricsView   `json:"metrics"`
	EscalationLevel int           `json:"escalation_level"`
	EscalatedBy     []string      `json:"escalated_by,omitempty"`
	LedgerSeq       int64         `json:"ledger_seq"`
	LedgerFailures  int           `json:"ledger_failures"`
	// Runs counts continue-as-new generations (0 for the first run).
	Runs int `json:"runs"`
}

// RelatedView is another incident on the same asset, linked to this one
// both ways.
type RelatedView struct {
	// ID is the other incident's API id (its workflow id without the
	// "incident:" prefix): GET /incidents/{id} shows it.
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	// IncidentID is its human-facing id, when known.
	IncidentID string `json:"incident_id,omitempty"`
	Playbook   string `json:"playbook,omitempty"`
	// How is found (open on the asset when this incident opened) or
	// reported (opened on the asset later and linked itself).
	How string    `json:"how"`
	At  time.Time `json:"at"`
}

// StepView is the state of one step.
type StepView struct {
	ID           string            `json:"id"`
	Phase        string            `json:"phase"`
	Action       string            `json:"action"`
	Status       string            `json:"status"`
	StartedAt    time.Time         `json:"started_at,omitzero"`
	FinishedAt   time.Time         `json:"finished_at,omitzero"`
	Params       map[string]string `json:"params,omitempty"`
	Outputs      map[string]string `json:"outputs,omitempty"`
	EvidenceRefs []string          `json:"evidence_refs,omitempty"`
	Plan         []string          `json:"plan,omitempty"`
	Summary      string            `json:"summary,omitempty"`
	Error        string            `json:"error,omitempty"`
	Risk         string            `json:"risk,omitempty"`
	Approval     *ApprovalView     `json:"approval,omitempty"`
	Compensation string            `json:"compensation,omitempty"`
}

// ApprovalView is the approval of one step.
type ApprovalView struct {
	Roles       []string       `json:"roles"`
	Quorum      int            `json:"quorum"`
	RequestedBy string         `json:"requested_by"`
	Deadline    time.Time      `json:"deadline"`
	Escalations int            `json:"escalations"`
	Approvals   []DecisionView `json:"approvals"`
	Denial      *DecisionView  `json:"denial,omitempty"`
	// Outcome is "", approved, denied, auto_approved or escalated_failed.
	Outcome string `json:"outcome,omitempty"`
}

// DecisionView is one recorded approval or denial.
type DecisionView struct {
	By     ApproverView `json:"by"`
	Reason string       `json:"reason,omitempty"`
	At     time.Time    `json:"at"`
	// Via is update or signal.
	Via string   `json:"via"`
	AMR []string `json:"amr,omitempty"`
}

// ApproverView is a verified responder identity.
type ApproverView struct {
	Subject  string   `json:"subject"`
	Username string   `json:"username,omitempty"`
	Roles    []string `json:"roles"`
	SourceIP string   `json:"source_ip,omitempty"`
}

// CompensationView is an undo action registered when its step succeeded.
type CompensationView struct {
	StepID string            `json:"step_id"`
	Action string            `json:"action"`
	Params map[string]string `json:"params,omitempty"`
	Undo   map[string]string `json:"undo,omitempty"`
}

// TimelineView is one event of the incident.
type TimelineView struct {
	At       time.Time `json:"at"`
	Actor    string    `json:"actor,omitempty"`
	SourceIP string    `json:"source_ip,omitempty"`
	What     string    `json:"what"`
	StepID   string    `json:"step_id,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// AlertView is one distinct alert (by fingerprint) and how often it came.
type AlertView struct {
	Fingerprint string    `json:"fingerprint"`
	ID          string    `json:"id"`
	Source      string    `json:"source"`
	Rule        string    `json:"rule"`
	Severity    string    `json:"severity"`
	Summary     string    `json:"summary"`
	Count       int       `json:"count"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	ObservedAt  time.Time `json:"observed_at,omitzero"`
	ReceivedAt  time.Time `json:"received_at,omitzero"`
	// ResolvedAt is when the detector resolved the alert (absent: firing).
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
}

// MetricsView are the incident's response times, measured from its
// opening, in seconds.
type MetricsView struct {
	AcknowledgedAt           time.Time `json:"acknowledged_at,omitzero"`
	ContainedAt              time.Time `json:"contained_at,omitzero"`
	RecoveredAt              time.Time `json:"recovered_at,omitzero"`
	TimeToAcknowledgeSeconds float64   `json:"time_to_acknowledge_seconds,omitempty"`
	TimeToContainSeconds     float64   `json:"time_to_contain_seconds,omitempty"`
	TimeToRecoverSeconds     float64   `json:"time_to_recover_seconds,omitempty"`
	// ContainmentPhaseDoneAt and ContainmentPhaseSeconds are the whole
	// containment phase (evidence steps included), apart from the time to
	// contain, which ends when the containing actions took effect.
	ContainmentPhaseDoneAt  time.Time `json:"containment_phase_done_at,omitzero"`
	ContainmentPhaseSeconds float64   `json:"containment_phase_seconds,omitempty"`
}

// DecisionAnswer is the answer of POST …/steps/{step}/approve and deny.
type DecisionAnswer struct {
	ID string `json:"id"`
	// Decision is approve or deny.
	Decision string             `json:"decision"`
	Result   DecisionResultView `json:"result"`
}

// DecisionResultView is the step after a decision.
type DecisionResultView struct {
	StepID string `json:"step_id"`
	// Status is the step's status after the decision.
	Status string `json:"status"`
	// Approvals is the number of distinct approvals so far; Quorum is needed.
	Approvals int `json:"approvals"`
	Quorum    int `json:"quorum"`
}

// RerouteAnswer is the answer of POST /incidents/{id}/reroute.
type RerouteAnswer struct {
	ID     string      `json:"id"`
	Result RerouteView `json:"result"`
}

// RerouteView is the incident a triage was re-routed into.
type RerouteView struct {
	// ID is its API id.
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	Playbook   string `json:"playbook"`
	Asset      string `json:"asset"`
}

// EscalateAnswer is the answer of POST /incidents/{id}/escalate.
type EscalateAnswer struct {
	ID     string         `json:"id"`
	Result EscalationView `json:"result"`
}

// EscalationView is the incident's escalation after the request.
type EscalationView struct {
	// Level is the escalation level (0: none).
	Level int `json:"level"`
	// Tier is the notification tier that was notified.
	Tier string `json:"tier"`
}

// AcknowledgeAnswer is the answer of POST /incidents/{id}/ack.
type AcknowledgeAnswer struct {
	ID     string              `json:"id"`
	Result AcknowledgementView `json:"result"`
}

// AcknowledgementView is the incident's first acknowledgement.
type AcknowledgementView struct {
	AcknowledgedAt time.Time `json:"acknowledged_at"`
}

// statusView is the API's view of the workflow's status.
// StatusViewOf is the API's view of an incident workflow's status, as
// GET /incidents/{id} answers it (the console's trend metrics use it).
func StatusViewOf(s workflows.IncidentStatus) StatusView { return statusView(s) }

func statusView(s workflows.IncidentStatus) StatusView {
	v := StatusView{
		IncidentID: s.IncidentID, Key: s.Key, Playbook: s.Playbook, PlaybookVersion: s.PlaybookVersion,
		Asset: s.Asset, Severity: s.Severity, Drill: s.Drill, DryRun: s.DryRun, OpenedBy: s.OpenedBy,
		Labels: s.Labels, Phase: s.Phase, State: s.State, Reason: s.Reason, OpenedAt: s.OpenedAt, ClosedAt: s.ClosedAt,
		Steps: make([]StepView, 0, len(s.Steps)), Compensations: make([]CompensationView, 0, len(s.Compensations)),
		Timeline: make([]TimelineView, 0, len(s.Timeline)), TimelineDropped: s.TimelineDropped,
		Alerts: make([]AlertView, 0, len(s.Alerts)), AlertsReceived: s.AlertsReceived,
		AllAlertsResolvedAt: s.AllAlertsResolvedAt, Related: make([]RelatedView, 0, len(s.Related)),
		Metrics: MetricsView{
			AcknowledgedAt: s.Metrics.AcknowledgedAt, ContainedAt: s.Metrics.ContainedAt, RecoveredAt: s.Metrics.RecoveredAt,
			TimeToAcknowledgeSeconds: s.Metrics.TimeToAcknowledge.Seconds(), TimeToContainSeconds: s.Metrics.TimeToContain.Seconds(),
			TimeToRecoverSeconds:   s.Metrics.TimeToRecover.Seconds(),
			ContainmentPhaseDoneAt: s.Metrics.ContainmentPhaseDoneAt, ContainmentPhaseSeconds: s.Metrics.ContainmentPhase.Seconds(),
		},
		EscalationLevel: s.EscalationLevel, EscalatedBy: s.EscalatedBy, LedgerSeq: s.LedgerSeq,
		LedgerFailures: s.LedgerFailures, Runs: s.Runs,
	}
	for _, st := range s.Steps {
		v.Steps = append(v.Steps, StepView{
			ID: st.ID, Phase: st.Phase, Action: st.Action, Status: st.Status, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
			Params: st.Params, Outputs: st.Outputs, EvidenceRefs: st.EvidenceRefs, Plan: st.Plan, Summary: st.Summary,
			Error: st.Error, Risk: st.Risk, Approval: approvalView(st.Approval), Compensation: st.Compensation,
		})
	}
	for _, r := range s.Related {
		v.Related = append(v.Related, RelatedView{ID: strings.TrimPrefix(r.WorkflowID, workflows.IncidentWorkflowID("")), WorkflowID: r.WorkflowID,
			IncidentID: r.IncidentID, Playbook: r.Playbook, How: r.How, At: r.At})
	}
	for _, c := range s.Compensations {
		v.Compensations = append(v.Compensations, CompensationView{StepID: c.StepID, Action: c.Action, Params: c.Params, Undo: c.Undo})
	}
	for _, e := range s.Timeline {
		v.Timeline = append(v.Timeline, TimelineView{At: e.At, Actor: e.Actor, SourceIP: e.SourceIP, What: e.What, StepID: e.StepID, Reason: e.Reason})
	}
	for _, a := range s.Alerts {
		v.Alerts = append(v.Alerts, AlertView{
			Fingerprint: a.Fingerprint, ID: a.ID, Source: a.Source, Rule: a.Rule, Severity: a.Severity, Summary: a.Summary,
			Count: a.Count, FirstSeen: a.FirstSeen, LastSeen: a.LastSeen, ObservedAt: a.ObservedAt, ReceivedAt: a.ReceivedAt,
			ResolvedAt: a.ResolvedAt,
		})
	}
	return v
}

func approvalView(a *workflows.ApprovalState) *ApprovalView {
	if a == nil {
		return nil
	}
	v := &ApprovalView{Roles: a.Roles, Quorum: a.Quorum, RequestedBy: a.RequestedBy, Deadline: a.Deadline,
		Escalations: a.Escalations, Approvals: make([]DecisionView, 0, len(a.Approvals)), Outcome: a.Outcome}
	for _, d := range a.Approvals {
		v.Approvals = append(v.Approvals, decisionView(d))
	}
	if a.Denial != nil {
		d := decisionView(*a.Denial)
		v.Denial = &d
	}
	return v
}

func decisionView(d workflows.Decision) DecisionView {
	return DecisionView{
		By:     ApproverView{Subject: d.By.Subject, Username: d.By.Username, Roles: d.By.Roles, SourceIP: d.By.SourceIP},
		Reason: d.Reason, At: d.At, Via: d.Via, AMR: d.AMR,
	}
}
