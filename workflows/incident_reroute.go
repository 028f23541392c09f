package workflows

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	decisionpkg "github.com/iru-responder/responder/internal/decision"
)

// StateRerouted is the final state of an unknown-asset triage that a
// responder re-routed to the right asset ([RerouteUpdate]): its alerts
// went on in the incident of that asset's playbook.
const StateRerouted = "rerouted"

// RelatedRerouted links a triage and the incident it was re-routed into
// ([RelatedIncident.How]), on both sides.
const RelatedRerouted = "rerouted"

// RoutedPlaybookLabel is the alert label in which the intake keeps the
// playbook its rules chose for an alert whose asset is in no inventory.
const RoutedPlaybookLabel = "iru.routed_playbook"

// RejectNotTriage refuses a re-route of an incident that is not an
// unknown-asset triage.
const RejectNotTriage = "NotTriage"

// rerouteRoles may re-route a triage (it closes the triage, like an abort).
var rerouteRoles = []string{"ir-lead", "ir-admin"}

// rerouteOptions bound the two activities of a re-route: the asset's
// lookup in the inventory and the start of the incident.
var rerouteOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 5,
		NonRetryableErrorTypes: activities.FinalErrorTypes(),
	},
}

// RerouteInput is the input of [RerouteUpdate].
type RerouteInput struct {
	By Approver
	// Asset is the asset the responder picked; it must resolve in the
	// inventory.
	Asset  string
	Reason string
	// Statement is the signed reroute statement; its StepID binds Asset.
	Statement decisionpkg.Signed
}

// RerouteResult is the result of [RerouteUpdate]: the incident the
// triage's alerts went to.
type RerouteResult struct {
	WorkflowID string
	Playbook   string
	Asset      string
}

// RerouteOpenInput is the input of [RerouteActivity]: the incident to open
// (or join, when one is open for the key) with the triage's alerts.
type RerouteOpenInput struct {
	Playbook string
	Asset    string
	// AssetRef is where the inventory found Asset.
	AssetRef *activities.AssetRef `json:",omitempty"`
	Severity string
	Alerts   []Alert
	// From is the triage's workflow id, FromIncident its incident id.
	From         string
	FromIncident string
	// By is who re-routed (the new incident's opener).
	By string
}

// RerouteOpenResult is the result of [RerouteActivity]: the incident's
// workflow id (a new incident, or the one open for the playbook and asset
// already, which the alerts joined).
type RerouteOpenResult struct {
	WorkflowID string
}

// validateReroute checks a re-route: an open triage incident, a valid
// statement for a reroute to in.Asset by an ir-lead or ir-admin who is
// not the incident's subject. Whether the asset resolves is checked after
// acceptance (it takes I/O).
func (w *incident) validateReroute(ctx workflow.Context, in RerouteInput) (decisionpkg.Statement, Approver, error) {
	switch {
	case w.pb == nil:
		return decisionpkg.Statement{}, Approver{}, errNotStarted()
	case w.st.Playbook != UnknownAssetPlaybook:
		return decisionpkg.Statement{}, Approver{}, reject(RejectNotTriage, "only an unknown-asset triage is re-routed; this incident runs %s", w.st.Playbook)
	case w.st.State != StateOpen || w.halt != nil:
		return decisionpkg.Statement{}, Approver{}, errClosed()
	case w.rerouting:
		return decisionpkg.Statement{}, Approver{}, reject(RejectClosed, "a re-route of this triage is under way")
	case in.Asset == "":
		return decisionpkg.Statement{}, Approver{}, reject(activities.ErrTypeBadParams, "a re-route needs the asset")
	}
	st, by, err := w.verifyStatement(ctx, in.Statement, decisionpkg.Reroute, in.Asset, in.By)
	switch {
	case err != nil:
		return st, by, err
	case by.Subject == "":
		return st, by, errNoIdentity()
	case !slices.ContainsFunc(by.Roles, func(r string) bool { return slices.Contains(rerouteRoles, r) }):
		return st, by, reject(RejectWrongRole, "approver lacks a required role: re-routing needs one of %v", rerouteRoles)
	case w.isSubject(by):
		return st, by, errSubject(by, w.st.IncidentID)
	}
	return st, by, nil
}

// reroute applies an accepted re-route: it resolves the asset in the
// inventory, opens the incident of the rules' playbook for it with the
// triage's alerts, links the two and closes the triage as re-routed. An
// asset that does not resolve, or an incident that cannot be opened,
// leaves the triage open (recorded) and is the update's error.
func (w *incident) reroute(ctx workflow.Context, in RerouteInput) (RerouteResult, error) {
	stmt, by, err := w.validateReroute(ctx, in)
	if err != nil {
		return RerouteResult{}, err
	}
	w.useNonce(stmt)
	w.rerouting = true
	defer func() { w.rerouting = false }()
	w.acknowledge(ctx, by)
	who := cmp.Or(by.Username, by.Subject)
	reason := cmp.Or(stmt.Reason, "re-routed")
	refused := func(what string, err error) (RerouteResult, error) {
		w.record(ctx, activities.LedgerAppendInput{Kind: "reroute", Actor: by.Subject, SourceIP: by.SourceIP, Outcome: "refused",
			Status: activities.LedgerFailed, Reason: rejectionText(err), Detail: map[string]string{"asset": in.Asset, "username": by.Username}},
			TimelineEntry{Actor: who, What: what})
		return RerouteResult{}, err
	}
	actx := workflow.WithActivityOptions(ctx, rerouteOptions)
	var found activities.ActionResult
	if err := workflow.ExecuteActivity(actx, activities.PVEResolveAsset, activities.ActionInput{
		IncidentID: w.st.IncidentID, StepID: "reroute", Action: activities.PVEResolveAsset, Params: map[string]string{"asset": in.Asset},
		Asset: in.Asset, IdempotencyKey: w.st.IncidentID + "/reroute/" + in.Asset,
	}).Get(ctx, &found); err != nil {
		return refused(fmt.Sprintf("re-route to %s refused: the asset does not resolve in the inventory", in.Asset), err)
	}
	pb := w.st.Labels[RoutedPlaybookLabel]
	if pb == "" {
		return refused("re-route refused: the triage's alerts name no playbook", reject(activities.ErrTypeBadParams, "the triage's alerts carry no %s label", RoutedPlaybookLabel))
	}
	open := RerouteOpenInput{Playbook: pb, Asset: in.Asset, AssetRef: refOf(in.Asset, found.Outputs), Severity: w.st.Severity, Alerts: w.reroutedAlerts(in.Asset),
		From: workflow.GetInfo(ctx).WorkflowExecution.ID, FromIncident: w.st.IncidentID, By: by.Subject}
	var opened RerouteOpenResult
	if err := workflow.ExecuteActivity(actx, RerouteActivity, open).Get(ctx, &opened); err != nil {
		return refused(fmt.Sprintf("re-route to %s failed: the %s incident did not open", in.Asset, pb), err)
	}
	w.addRelated(ctx, RelatedIncident{WorkflowID: opened.WorkflowID, Playbook: pb, How: RelatedRerouted})
	link := LinkSignalInput{WorkflowID: open.From, IncidentID: w.st.IncidentID, Playbook: w.st.Playbook, Asset: w.st.Asset, How: RelatedRerouted}
	if err := workflow.SignalExternalWorkflow(ctx, opened.WorkflowID, "", LinkSignal, link).Get(ctx, nil); err != nil {
		w.timeline(TimelineEntry{At: workflow.Now(ctx).UTC(), What: "re-routed incident " + opened.WorkflowID + " could not be told of the link", Reason: err.Error()})
	}
	w.setHalt(StateRerouted, fmt.Sprintf("re-routed by %s to %s (%s, %s): %s", who, in.Asset, pb, opened.WorkflowID, reason), by)
	w.record(ctx, activities.LedgerAppendInput{Kind: "reroute", Actor: by.Subject, SourceIP: by.SourceIP, Outcome: StateRerouted, Reason: reason,
		Detail: statementDetail(map[string]string{"username": by.Username, "asset": in.Asset, "playbook": pb, "incident": opened.WorkflowID}, in.Statement)},
		TimelineEntry{Actor: who, What: fmt.Sprintf("re-routed to %s: playbook %s, incident %s", in.Asset, pb, opened.WorkflowID)})
	return RerouteResult{WorkflowID: opened.WorkflowID, Playbook: pb, Asset: in.Asset}, nil
}

// reroutedAlerts are the triage's alerts for the asset picked, with the
// triage's labels (the unmapped mark dropped, the origin added).
func (w *incident) reroutedAlerts(asset string) []Alert {
	labels := map[string]string{}
	for _, k := range workflow.DeterministicKeys(w.st.Labels) {
		if k != "iru.unmapped" {
			labels[k] = w.st.Labels[k]
		}
	}
	labels["iru.rerouted_from"] = w.st.IncidentID
	out := make([]Alert, 0, len(w.st.Alerts))
	for _, a := range w.st.Alerts {
		out = append(out, Alert{ID: a.ID, Fingerprint: a.Fingerprint, Source: a.Source, Rule: a.Rule, Severity: a.Severity, Asset: asset,
			Summary: a.Summary, Labels: labels, ObservedAt: a.ObservedAt, ReceivedAt: a.ReceivedAt})
	}
	return out
}

// refOf is the asset reference in pve.resolve_asset's outputs (nil when
// they name no container).
func refOf(asset string, out map[string]string) *activities.AssetRef {
	vmid, err := strconv.Atoi(out["vmid"])
	if out["node"] == "" || err != nil {
		return nil
	}
	return &activities.AssetRef{Name: asset, Node: out["node"], VMID: vmid}
}
