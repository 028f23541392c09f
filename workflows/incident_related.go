package workflows

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/related"
	"github.com/iru-responder/responder/playbooks"
)

// How an incident came to be linked to another ([RelatedIncident.How]).
const (
	// RelatedFound: this incident found the other open on its asset when
	// it opened.
	RelatedFound = "found"
	// RelatedReported: the other incident opened later on the same asset,
	// found this one and told it ([LinkSignal]).
	RelatedReported = "reported"
)

// maxRelated bounds the links an incident keeps.
const maxRelated = 50

// relatedOptions bound the lookup of the related incidents: it is a
// convenience for the responders, so a visibility store that does not
// answer costs the incident a few seconds, never its playbook.
var relatedOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 3,
		NonRetryableErrorTypes: []string{activities.ErrTypeBadParams},
	},
}

// relatedLocalOptions bound the lookup as a local activity (runs with
// [relatedLocalChange]). A workflow task's commands wait for its local
// activities, so the lookup waits until nothing the containment needs is
// in front of it (see relatedDue), and then holds the task it runs in at
// most a second: one attempt; a lookup that takes longer or fails runs
// again as an activity ([relatedOptions]).
var relatedLocalOptions = workflow.LocalActivityOptions{
	ScheduleToCloseTimeout: time.Second,
	RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
}

// relatedDue reports whether the local lookup of the related incidents
// may run: it holds the workflow task it runs in, so not before the
// containment is over (the incident is past the containment phase), the
// incident halted, or it waits for a person's decision on a step. Under
// load the lookup (a visibility query) then no longer competes with the
// first steps of its own incident: at ten incidents a second on the dev
// server, looking up in the opening task instead raised the containment's
// p50 by about a fifth.
func (w *incident) relatedDue() bool {
	if w.halt != nil || playbooks.AfterContainment(w.st.Phase) {
		return true
	}
	return slices.ContainsFunc(w.st.Steps, func(s StepState) bool { return s.Status == StepWaitingApproval })
}

// findRelated looks up the open incidents on in.Asset: in runs with
// relatedLocal as a local activity first, then (or in older runs only) as
// an activity.
func (w *incident) findRelated(ctx workflow.Context, in related.FindInput) (related.FindResult, error) {
	var res related.FindResult
	if w.relatedLocal {
		lctx := workflow.WithLocalActivityOptions(ctx, relatedLocalOptions)
		err := workflow.ExecuteLocalActivity(lctx, related.FindActivity, in).Get(ctx, &res)
		if err == nil || RejectionType(err) == activities.ErrTypeBadParams {
			return res, err
		}
		w.logger.Warn("related incidents: the local lookup failed; looking up as an activity", "error", err)
		res = related.FindResult{}
	}
	opts := relatedOptions
	// Beside the first steps, the lookup leaves the worker's eager slots
	// of the workflow task (three) to them.
	opts.DisableEagerExecution = w.containFirst
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), related.FindActivity, in).Get(ctx, &res)
	return res, err
}

// RelatedIncident is another incident on the same asset, linked to this
// one both ways: an alert of another playbook for an asset that has an
// open incident opens its own incident, and the two know each other.
type RelatedIncident struct {
	// WorkflowID is the other incident's workflow id (the API's incident
	// id is it without the "incident:" prefix).
	WorkflowID string
	// IncidentID is its human-facing id, when known (the incident that
	// reports itself gives it; visibility does not).
	IncidentID string `json:",omitempty"`
	Playbook   string `json:",omitempty"`
	// How is [RelatedFound], [RelatedReported] or [RelatedRerouted].
	How string
	At  time.Time
}

// LinkSignalInput is the payload of [LinkSignal]: the incident that opened
// on the receiver's asset and linked itself to it.
type LinkSignalInput struct {
	WorkflowID string
	IncidentID string
	Playbook   string
	Asset      string
	// How is empty for an incident on the same asset, [RelatedRerouted]
	// from the triage whose alerts were re-routed to the receiver (its
	// asset is the one no inventory knew).
	How string `json:",omitempty"`
}

// startLinkRelated links the related incidents: in runs with
// containFirst in a coroutine of its own, beside the first phase's steps
// (with relatedLocal once the containment is over, see relatedDue);
// before them in older runs. A run does not wait for it to close or
// continue as new: a lookup still waiting or running then (its activity
// lost with a worker and waiting out its timeout) is dropped, and the
// next run, which the carried [IncidentCarry.RelatedPending] tells, links
// them again (see linkRelated).
func (w *incident) startLinkRelated(ctx workflow.Context) {
	w.relatedPending = true
	if !w.containFirst {
		w.linkRelated(ctx)
		return
	}
	workflow.Go(ctx, w.linkRelated)
}

// linkRelated looks up the other incidents open on the asset (drills and
// incidents without an asset look up nothing), links them and tells each
// of them, so both sides hold the link. Visibility is eventually
// consistent: of two incidents that open on an asset at the same moment
// at least the later one usually sees the earlier, and one link is enough
// for both sides to know. A failed lookup is recorded in the timeline and
// the playbook goes on.
//
// A run that links again (linksAgain) also tells the incidents it finds that the run before had linked
// as found: that run may have continued as new before it told them.
func (w *incident) linkRelated(ctx workflow.Context) {
	defer func() { w.relatedPending = false }()
	if w.st.Asset == "" || w.st.Drill {
		return
	}
	if w.relatedLocal {
		if err := workflow.Await(ctx, w.relatedDue); err != nil {
			return
		}
	}
	self := workflow.GetInfo(ctx).WorkflowExecution.ID
	res, err := w.findRelated(ctx, related.FindInput{Asset: w.st.Asset, Self: self})
	if err != nil {
		w.logger.Warn("related incidents not looked up", "error", err)
		w.timeline(TimelineEntry{At: workflow.Now(ctx).UTC(), What: "open incidents on the same asset could not be looked up", Reason: rejectionText(err)})
		return
	}
	told := make(map[string]bool, len(res.Incidents))
	for _, o := range res.Incidents {
		added := w.addRelated(ctx, RelatedIncident{WorkflowID: o.WorkflowID, Playbook: o.Playbook, How: RelatedFound})
		tell := added || w.linksAgain() && w.linkedAs(o.WorkflowID, RelatedFound)
		if !tell || told[o.WorkflowID] {
			continue
		}
		told[o.WorkflowID] = true
		in := LinkSignalInput{WorkflowID: self, IncidentID: w.st.IncidentID, Playbook: w.st.Playbook, Asset: w.st.Asset}
		// Only the workflow id: the link goes to whichever run is current.
		if err := workflow.SignalExternalWorkflow(ctx, o.WorkflowID, "", LinkSignal, in).Get(ctx, nil); err != nil {
			w.logger.Warn("related incident not told of the link", "workflowID", o.WorkflowID, "error", err)
			w.timeline(TimelineEntry{At: workflow.Now(ctx).UTC(), What: "related incident " + o.WorkflowID + " could not be told of the link", Reason: err.Error()})
		}
	}
}

// linksAgain reports whether this run links the related incidents again:
// the run before it continued as new before it had linked them.
func (w *incident) linksAgain() bool {
	c := w.in.Carry
	return c != nil && c.RelatedPending
}

// linkedAs reports whether the incident links workflowID, as how.
func (w *incident) linkedAs(workflowID, how string) bool {
	return slices.ContainsFunc(w.st.Related, func(r RelatedIncident) bool { return r.WorkflowID == workflowID && r.How == how })
}

// onLink records the back-link to an incident that opened on this one's
// asset later.
func (w *incident) onLink(ctx workflow.Context, in LinkSignalInput) {
	if in.WorkflowID == "" || in.WorkflowID == workflow.GetInfo(ctx).WorkflowExecution.ID {
		return
	}
	how := RelatedReported
	if in.How == RelatedRerouted {
		how = RelatedRerouted
	} else if in.Asset != w.st.Asset {
		w.timeline(TimelineEntry{At: workflow.Now(ctx).UTC(), What: fmt.Sprintf("link from %s ignored: its asset %q is not this incident's", in.WorkflowID, in.Asset)})
		return
	}
	w.addRelated(ctx, RelatedIncident{WorkflowID: in.WorkflowID, IncidentID: in.IncidentID, Playbook: in.Playbook, How: how})
}

// addRelated records a link in the status, the timeline and the ledger;
// it reports false when the incident is linked already (a known link only
// gains the other's incident id) or holds the most links it keeps.
func (w *incident) addRelated(ctx workflow.Context, r RelatedIncident) bool {
	for i := range w.st.Related {
		if w.st.Related[i].WorkflowID == r.WorkflowID {
			w.st.Related[i].IncidentID = cmp.Or(w.st.Related[i].IncidentID, r.IncidentID)
			return false
		}
	}
	if len(w.st.Related) >= maxRelated {
		return false
	}
	r.At = workflow.Now(ctx).UTC()
	w.st.Related = append(w.st.Related, r)
	name := cmp.Or(r.IncidentID, r.WorkflowID)
	what := fmt.Sprintf("related incident %s (%s) is open on the same asset", name, cmp.Or(r.Playbook, "playbook unknown"))
	switch r.How {
	case RelatedReported:
		what = fmt.Sprintf("related incident %s (%s) opened on the same asset", name, cmp.Or(r.Playbook, "playbook unknown"))
	case RelatedRerouted:
		what = fmt.Sprintf("linked to %s (%s): the triage's alerts were re-routed", name, cmp.Or(r.Playbook, "playbook unknown"))
	}
	w.record(ctx, activities.LedgerAppendInput{Kind: "related", Actor: actorWorkflow, Outcome: r.How,
		Related: &activities.LedgerRelated{WorkflowID: r.WorkflowID, IncidentID: r.IncidentID, Playbook: r.Playbook, How: r.How}},
		TimelineEntry{What: what})
	return true
}
