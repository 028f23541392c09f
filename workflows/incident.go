package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/playbooks"
)

// Tuning of the interpreter.
const (
	// defaultContinueAsNewAfter is the number of signals and updates one run
	// handles before it continues as new.
	defaultContinueAsNewAfter = 500
	// maxTimeline bounds the timeline kept in state (the ledger has all).
	maxTimeline = 300
	// maxAlertRecords bounds the distinct alerts kept in state.
	maxAlertRecords = 200
	// actorWorkflow is the actor of the interpreter's own entries.
	actorWorkflow = "workflow"
)

// resolveOptions bound the playbook.resolve local activity.
var resolveOptions = workflow.LocalActivityOptions{
	StartToCloseTimeout: 10 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 2 * time.Second, MaximumAttempts: 3,
		NonRetryableErrorTypes: []string{activities.ErrTypeNotFound},
	},
}

// Incident is the playbook interpreter, registered as [IncidentWorkflow].
// It runs the six phases of a playbook in order for one incident: steps as
// activities (by catalog name), approvals as waits with timers, compensation
// registered as steps succeed and run in reverse on abort, every step and
// decision appended to the ledger.
//
// The playbook is resolved once, by the local activity
// [ResolveActivity], so it is recorded in history; replays and
// continued runs (which carry it in [IncidentInput.Carry]) never read the
// worker's current playbook files.
//
// Aborted and escalated incidents complete normally with the state in
// [IncidentResult.State]; the workflow fails only when it cannot start
// (unknown playbook).
func Incident(ctx workflow.Context, in IncidentInput) (IncidentResult, error) {
	wf := new(incident)
	if err := wf.setup(ctx, &in); err != nil {
		return IncidentResult{}, err
	}
	res, err := wf.run(ctx)
	if err != nil {
		return IncidentResult{}, err
	}
	return *res, nil
}

// halt is a request to stop running steps: an abort or an escalation to people.
type halt struct {
	state  string // StateAborted, StateEscalatedFailed or StateRerouted
	reason string
	by     Approver
}

// incident is the interpreter's state for one run.
type incident struct {
	in     IncidentInput
	pb     *playbooks.Playbook
	st     IncidentStatus
	logger log.Logger
	// stepIdx maps step ids to indexes in st.Steps; alertIdx maps
	// fingerprints to indexes in st.Alerts.
	stepIdx  map[string]int
	alertIdx map[string]int
	// alertIDs are the alert ids seen (redeliveries are dropped).
	alertIDs map[string]bool
	halt     *halt
	// running counts step activities in flight.
	running int
	// ledgerQueue holds the ledger entries not yet appended, in sequence
	// order; its head is the append in flight (see writeLedger).
	ledgerQueue []activities.LedgerAppendInput
	// ledgerHead is the last seq of the incident's chain this run knows
	// stored; ledgerTaken are the records of entries found stored in a
	// slot this run meant for another entry (see writeLedger), not yet
	// made by this run.
	ledgerHead  int64
	ledgerTaken []string
	// ledgerInFlight is how many entries at the queue's head are being
	// appended.
	ledgerInFlight int
	// ledgerBatch is true in runs with [ledgerBatchChange].
	ledgerBatch bool
	// ledgerOnDemand is true in runs with [oneMarkerChange]; there,
	// ledgerWriting is true while a writer coroutine runs, and ledgerCtx
	// (the run's, disconnected) is the one writers start from, whichever
	// coroutine (the run, a signal, an update handler) recorded the entry.
	ledgerOnDemand bool
	ledgerWriting  bool
	ledgerCtx      workflow.Context
	// notifying counts notifications in flight (see notify).
	notifying int
	// messages counts signals and updates handled in this run.
	messages int
	canAfter int
	// compensationWaiting is the step whose compensation waits for an
	// approval while the incident aborts (decisions on it are accepted
	// during the halt); "" when none.
	compensationWaiting string
	// decKeys verify decision statements (nil until loaded from the
	// worker); nonces are the statement nonces used, with their expiry.
	decKeys *decision.KeySet
	nonces  map[string]time.Time
	// rerouting is set while an accepted re-route runs (a second one is
	// refused).
	rerouting bool
	// factorAll is true in runs that started with this build or later:
	// an abort, and a denial of a step whose approval needs a second
	// factor, need one too (older runs keep the rule they started with).
	factorAll bool
	// containFirst is true in runs with [containFirstChange]: nothing the
	// containment does not need runs in front of it.
	containFirst bool
	// sparseUpsert is true in runs with [oneMarkerChange]: upsert leaves
	// out the search attributes that hold their values already.
	sparseUpsert bool
	// relatedLocal is true in runs with [relatedLocalChange]: the lookup
	// of the related incidents is a local activity first (see
	// findRelated).
	relatedLocal bool
	// notifyLocal is true in runs with [notifyLocalChange]: the first
	// attempt of the interpreter's own notifications is a local activity
	// while nothing else runs (see sendNotification).
	notifyLocal bool
	// relatedPending is true from the start of the related incidents'
	// link (startLinkRelated) until it is done: a run that continues as
	// new before then carries it ([IncidentCarry.RelatedPending]).
	relatedPending bool
}

// containFirstChange is the version marker of the runs that put nothing
// the containment does not need in front of it: the decision keys load
// while the playbook is resolved, and the lookup of the related incidents
// (a visibility query, a convenience for the responders) runs beside the
// first phase's steps instead of before them.
const containFirstChange = "contain-first"

// ledgerBatchChange is the version marker of the runs whose ledger writer
// appends every queued entry in one local activity
// ([activities.LedgerAppendBatch], pipelined in the ledger), not one
// local activity per entry: a workflow task's commands wait for its local
// activities, so the entries recorded before the first steps (opening,
// alerts, phase) held those steps back one append after another.
const ledgerBatchChange = "ledger-batch"

// oneMarkerChange is the version marker of the runs that record it alone
// for the changes before it ([secondFactorChange], [containFirstChange],
// [ledgerBatchChange]: all in force) and that also:
//   - upsert only the search attributes whose values differ from the
//     run's (see upsert). An incident opening in an alert storm recorded
//     three markers, each with an upsert of TemporalChangeVersion, and a
//     fourth upsert of the values its start had set already: each upsert
//     is a visibility task, which costs the server as much as the history
//     write;
//   - run the ledger writer only while entries are queued: record starts
//     it, and it ends once the queue is empty, instead of one writer
//     coroutine waiting for the life of the run. Every coroutine is a
//     goroutine with its own stack (about 16 KB each once grown), so an
//     incident that waits (for an approval, for days) keeps one fewer.
const oneMarkerChange = "one-marker"

// relatedLocalChange is the version marker of the runs that record it
// alone for every change before it ([oneMarkerChange] and those it
// stands for, all in force) and that look up the related incidents as a
// local activity once the containment is over, instead of as an activity
// beside the first steps. The activity cost the server about a fifth of
// an incident's opening (its task through matching, its start and
// completion, each a history write); the local activity is a marker. See
// relatedDue for when it runs and [relatedLocalOptions] for how long it
// may hold a workflow task.
const relatedLocalChange = "related-local"

// notifyLocalChange is the version marker of the runs that record it
// alone for every change before it ([relatedLocalChange] and those it
// stands for, all in force) and that send the interpreter's own
// notifications (approval needed, escalation) first as a local activity
// while no step's action runs: see sendNotification.
const notifyLocalChange = "notify-local"

// errContinueAsNew asks the run loop to continue as new at a safe point.
var errContinueAsNew = errors.New("continue as new")

func (w *incident) setup(ctx workflow.Context, in *IncidentInput) error {
	w.in = *in
	w.logger = log.With(workflow.GetLogger(ctx), "incidentID", in.IncidentID)
	w.stepIdx, w.alertIdx, w.alertIDs, w.nonces = map[string]int{}, map[string]int{}, map[string]bool{}, map[string]time.Time{}
	w.canAfter = in.ContinueAsNewAfter
	if w.canAfter <= 0 {
		w.canAfter = defaultContinueAsNewAfter
	}
	if in.Carry != nil {
		w.st = in.Carry.Status
		w.st.Runs++
		pb := in.Carry.Playbook
		w.pb = &pb
		if in.Inherited == nil {
			w.pb = sharedPlaybook(&pb)
		}
		w.index()
		for _, n := range workflow.DeterministicKeys(in.Carry.Nonces) {
			w.nonces[n] = in.Carry.Nonces[n]
		}
	} else {
		w.st = IncidentStatus{
			IncidentID: in.IncidentID, Key: in.Key, Asset: in.Asset, AssetRef: in.AssetRef, Severity: in.Severity,
			Drill: in.Drill, DryRun: in.DryRun, OpenedBy: in.OpenedBy,
			Playbook: in.Playbook, PlaybookVersion: in.PlaybookVersion,
			State: StateOpen, OpenedAt: workflow.GetInfo(ctx).WorkflowStartTime.UTC(),
		}
	}
	// One marker stands for every change before it: each GetVersion
	// records a marker and upserts TemporalChangeVersion (a visibility
	// write on the server) when a run opens. Older runs find their own
	// markers: GetVersion of a change they did not record is
	// DefaultVersion in replay.
	// A change is asked for only in runs without a later marker (|| does
	// not evaluate its right side then).
	w.notifyLocal = workflow.GetVersion(ctx, notifyLocalChange, workflow.DefaultVersion, 1) >= 1
	w.relatedLocal = w.notifyLocal || workflow.GetVersion(ctx, relatedLocalChange, workflow.DefaultVersion, 1) >= 1
	if w.relatedLocal || workflow.GetVersion(ctx, oneMarkerChange, workflow.DefaultVersion, 1) >= 1 {
		w.factorAll, w.containFirst, w.ledgerBatch, w.sparseUpsert, w.ledgerOnDemand = true, true, true, true, true
	} else {
		w.factorAll = workflow.GetVersion(ctx, secondFactorChange, workflow.DefaultVersion, 1) >= 1
		w.containFirst = workflow.GetVersion(ctx, containFirstChange, workflow.DefaultVersion, 1) >= 1
		w.ledgerBatch = workflow.GetVersion(ctx, ledgerBatchChange, workflow.DefaultVersion, 1) >= 1
	}
	// Before any handler is registered: a handler may record.
	w.ledgerCtx = disconnected(ctx)
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func(StatusQueryInput) (IncidentStatus, error) {
		return w.st, nil
	}); err != nil {
		return fmt.Errorf("register %s query: %w", StatusQuery, err)
	}
	return w.setupUpdates(ctx)
}

// index rebuilds the lookup maps from the carried state.
func (w *incident) index() {
	for i, s := range w.st.Steps {
		w.stepIdx[s.ID] = i
	}
	for i, a := range w.st.Alerts {
		w.alertIdx[a.Fingerprint] = i
		if a.ID != "" {
			w.alertIDs[a.ID] = true
		}
	}
}

func (w *incident) run(ctx workflow.Context) (*IncidentResult, error) {
	// Every run reads the worker's decision keys before it accepts a
	// decision; with containFirst, while the playbook is resolved.
	keys := w.startDecisionKeys(ctx)
	if !w.containFirst {
		w.takeDecisionKeys(ctx, keys)
	}
	w.ledgerHead = w.st.LedgerSeq
	if !w.ledgerOnDemand {
		workflow.Go(disconnected(ctx), w.writeLedger)
	}
	opening := w.pb == nil
	if opening {
		if err := w.resolve(ctx); err != nil {
			return nil, err
		}
	}
	if w.containFirst {
		w.takeDecisionKeys(ctx, keys)
	}
	if opening {
		w.open(ctx)
	}
	if w.linksAgain() {
		w.startLinkRelated(ctx)
	}
	// Signals wait in their channels until the playbook is resolved, so the
	// ledger starts with incident_opened.
	workflow.Go(ctx, w.receiveSignals)

	return w.end(ctx, w.runPhases(ctx))
}

// The functions a waiting incident's main coroutine is parked in (run,
// runPhases, runEntry, runStep, awaitApproval) keep their frames small:
// what they do before or after the wait (ledger entries, messages,
// results) is in functions of its own, which return before it parks. Its
// stack then stays under a quarter of 32 KiB, and the collector halves it
// to 16 KiB: 10,000 waiting incidents hold 160 MB less.

// open records the incident's opening and takes the alerts it started with.
func (w *incident) open(ctx workflow.Context) {
	w.record(ctx, activities.LedgerAppendInput{Kind: "incident_opened", Actor: cmp.Or(w.in.OpenedBy, actorWorkflow),
		Opening: w.opening(), Detail: w.inheritedDetail(map[string]string{})},
		TimelineEntry{What: fmt.Sprintf("incident opened with playbook %s %s", w.pb.Name, w.pb.Version)})
	w.onAlerts(ctx, w.in.Alerts)
	w.takeStartAlerts(ctx)
}

// end ends the run after its phases returned err: it continues as new,
// fails, or closes the incident.
func (w *incident) end(ctx workflow.Context, err error) (*IncidentResult, error) {
	if errors.Is(err, errContinueAsNew) {
		return nil, w.continueAsNew(ctx)
	}
	if err != nil {
		return nil, err
	}
	res := w.finish(ctx)
	return &res, nil
}

// takeStartAlerts handles the alert signals already received: the intake
// starts an incident with its alerts in the start's signal (the input
// carries none), so the first steps see them.
func (w *incident) takeStartAlerts(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, AlertSignal)
	for ch.Len() > 0 {
		var in AlertSignalInput
		if !ch.ReceiveAsync(&in) {
			return
		}
		w.messages++
		w.onAlerts(ctx, in.Alerts)
	}
}

// resolve fetches the playbook through the local activity and fills the
// playbook-dependent state.
func (w *incident) resolve(ctx workflow.Context) error {
	lctx := workflow.WithLocalActivityOptions(ctx, resolveOptions)
	var res playbooks.ResolveResult
	err := workflow.ExecuteLocalActivity(lctx, ResolveActivity,
		playbooks.ResolveInput{Name: w.in.Playbook, Version: w.in.PlaybookVersion}).Get(ctx, &res)
	if err != nil {
		return fmt.Errorf("resolve playbook %q version %q: %w", w.in.Playbook, w.in.PlaybookVersion, err)
	}
	if len(res.Playbook.Phases) != len(playbooks.Phases) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("resolved playbook %q has %d phases, want %d", res.Playbook.Name, len(res.Playbook.Phases), len(playbooks.Phases)),
			activities.ErrTypeBadParams, nil)
	}
	// Shared with the worker's other incidents of this version: read only
	// (inherit copies before it adds steps).
	w.pb = sharedPlaybook(&res.Playbook)
	if err := w.inherit(); err != nil {
		return err
	}
	w.st.Playbook, w.st.PlaybookVersion = w.pb.Name, w.pb.Version
	if w.st.Severity == "" {
		w.st.Severity = w.pb.SeverityDefault
	}
	w.st.Drill = w.drill()
	for _, ph := range w.pb.Phases {
		for _, e := range ph.Entries {
			for _, s := range e.Steps() {
				w.stepIdx[s.ID] = len(w.st.Steps)
				w.st.Steps = append(w.st.Steps, StepState{ID: s.ID, Phase: ph.Name, Action: s.Action, Status: StepPending, Risk: s.Risk})
			}
		}
	}
	return nil
}

// drill reports whether the incident is a drill (by input or playbook).
func (w *incident) drill() bool { return w.in.Drill || (w.pb != nil && w.pb.Drill) }

// runPhases runs the phases from where the state says, in order. On a halt
// it runs the compensations (abort) and then the post-incident phase.
func (w *incident) runPhases(ctx workflow.Context) error {
	start := max(slices.Index(playbooks.Phases, w.st.Phase), 0)
	for i := start; i < len(w.pb.Phases); i++ {
		ph := w.pb.Phases[i]
		if w.halt != nil && ph.Name != playbooks.PhasePostIncident {
			continue
		}
		if w.st.Phase != ph.Name {
			w.enterPhase(ctx, i, ph.Name)
		}
		if w.halt != nil && w.halt.state == StateAborted {
			// Post-incident after an abort: compensate first, then
			// document what happened.
			w.compensate(ctx)
		}
		for _, e := range ph.Entries {
			if w.halt != nil && ph.Name != playbooks.PhasePostIncident {
				break
			}
			if w.canNow(ctx) {
				return errContinueAsNew
			}
			if err := w.runEntry(ctx, ph.Name, e); err != nil {
				return err
			}
		}
		w.phaseDone(ctx, ph.Name)
	}
	if w.halt != nil && w.halt.state == StateAborted {
		w.compensate(ctx) // no-op unless post_incident itself aborted
	}
	return nil
}

// enterPhase moves the incident into phase name, the i-th.
func (w *incident) enterPhase(ctx workflow.Context, i int, name string) {
	w.st.Phase = name
	w.upsert(ctx, i == 0)
	w.record(ctx, activities.LedgerAppendInput{Kind: "phase", Actor: actorWorkflow}, TimelineEntry{What: "phase " + name})
	if i == 0 {
		w.startLinkRelated(ctx)
	}
}

// phaseDone records the response-time metrics a phase completes.
func (w *incident) phaseDone(ctx workflow.Context, phase string) {
	if w.halt != nil {
		return
	}
	now := workflow.Now(ctx).UTC()
	switch phase {
	case playbooks.PhaseContainment:
		m := &w.st.Metrics
		m.ContainmentPhaseDoneAt = now
		if first := w.phaseStart(playbooks.PhaseContainment); !first.IsZero() {
			m.ContainmentPhase = now.Sub(first)
		}
		if m.ContainedAt.IsZero() {
			m.ContainedAt, m.TimeToContain = now, now.Sub(w.st.OpenedAt)
		}
	case playbooks.PhaseRecovery:
		w.st.Metrics.RecoveredAt, w.st.Metrics.TimeToRecover = now, now.Sub(w.st.OpenedAt)
	}
}

// phaseStart is the earliest start of the phase's steps (zero if none ran).
func (w *incident) phaseStart(phase string) time.Time {
	var first time.Time
	for _, s := range w.st.Steps {
		if s.Phase == phase && !s.StartedAt.IsZero() && (first.IsZero() || s.StartedAt.Before(first)) {
			first = s.StartedAt
		}
	}
	return first
}

// noteContained sets the time to contain once every containing step of
// the containment phase is done and one of them succeeded: the latest end
// among those that succeeded (see [Metrics]).
func (w *incident) noteContained() {
	if w.halt != nil || !w.st.Metrics.ContainedAt.IsZero() {
		return
	}
	var last time.Time
	for _, s := range w.st.Steps {
		if s.Phase != playbooks.PhaseContainment {
			continue
		}
		if act, err := activities.Lookup(s.Action); err != nil || !act.Contains {
			continue
		}
		if !terminal(s.Status) {
			return
		}
		if s.Status == StepSucceeded && s.FinishedAt.After(last) {
			last = s.FinishedAt
		}
	}
	if !last.IsZero() {
		w.st.Metrics.ContainedAt, w.st.Metrics.TimeToContain = last, last.Sub(w.st.OpenedAt)
	}
}

// runEntry runs one step or a parallel group. It returns errContinueAsNew
// when the run should continue as new; failures become w.halt.
func (w *incident) runEntry(ctx workflow.Context, phase string, e playbooks.Entry) error {
	if e.Step != nil {
		err := w.runStep(ctx, phase, e.Step)
		w.stepDone(phase)
		return err
	}
	return w.runParallel(ctx, phase, e.Parallel)
}

// runParallel runs a parallel group's steps, each in a coroutine of its
// own, and returns when all of them have finished.
func (w *incident) runParallel(ctx workflow.Context, phase string, group []playbooks.Step) error {
	errs := make([]error, len(group))
	done := 0
	for i := range group {
		workflow.Go(ctx, func(gctx workflow.Context) {
			errs[i] = w.runStep(gctx, phase, &group[i])
			w.stepDone(phase)
			done++
		})
	}
	// Wait on the disconnected context: branches always finish (they stop
	// waiting for approvals on a halt; in-flight actions complete so their
	// compensations are registered).
	if err := workflow.Await(disconnected(ctx), func() bool { return done == len(group) }); err != nil {
		return fmt.Errorf("wait for parallel group: %w", err)
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// stepDone updates the metrics a step of phase may complete.
func (w *incident) stepDone(phase string) {
	if phase == playbooks.PhaseContainment {
		w.noteContained()
	}
}

// canNow reports whether this run should continue as new now.
func (w *incident) canNow(ctx workflow.Context) bool {
	if w.halt != nil || w.running > 0 {
		return false
	}
	return w.messages >= w.canAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

// continueAsNew waits for handlers, ledger appends and notifications, drains the signal
// channels, and continues as new carrying the state.
func (w *incident) continueAsNew(ctx workflow.Context) error {
	for {
		w.drainSignals(ctx)
		if err := workflow.Await(disconnected(ctx), func() bool {
			return workflow.AllHandlersFinished(ctx) && w.settled()
		}); err != nil {
			return fmt.Errorf("wait for handlers before continue-as-new: %w", err)
		}
		if !w.signalsPending(ctx) {
			break
		}
	}
	w.timeline(TimelineEntry{What: fmt.Sprintf("continued as new after %d messages", w.messages)})
	next := w.in
	next.Alerts = nil
	next.Carry = &IncidentCarry{Playbook: *w.pb, Status: w.st, Nonces: w.liveNonces(workflow.Now(ctx)), RelatedPending: w.relatedPending}
	w.logger.Info("continuing as new", "runs", w.st.Runs, "messages", w.messages)
	return workflow.NewContinueAsNewError(ctx, IncidentWorkflow, next)
}

// finish closes the incident: marks unreached steps, records the close,
// waits for handlers, notifications and ledger appends.
func (w *incident) finish(ctx workflow.Context) IncidentResult {
	now := workflow.Now(ctx).UTC()
	for i := range w.st.Steps {
		if s := &w.st.Steps[i]; s.Status == StepPending || s.Status == StepWaitingApproval {
			s.Status, s.Summary = StepSkipped, "not reached"
		}
	}
	state, reason := StateResolved, "all phases completed"
	if w.halt != nil {
		state, reason = w.halt.state, w.halt.reason
	}
	w.st.State, w.st.Reason, w.st.ClosedAt = state, reason, now
	w.record(ctx, activities.LedgerAppendInput{Kind: "incident_closed", Actor: actorWorkflow, Outcome: state, Status: closedStatus(state), Reason: reason},
		TimelineEntry{What: "incident " + state, Reason: reason})
	// Updates may still be running; wait for them, the notifications and
	// the ledger so the audit trail is complete when the workflow closes.
	_ = workflow.Await(disconnected(ctx), func() bool { return workflow.AllHandlersFinished(ctx) && w.settled() })
	res := IncidentResult{
		IncidentID: w.st.IncidentID, State: state, Reason: reason, OpenedAt: w.st.OpenedAt, ClosedAt: now, Metrics: w.st.Metrics,
		AlertsReceived: w.st.AlertsReceived, LedgerSeq: w.st.LedgerSeq, LedgerFailures: w.st.LedgerFailures,
	}
	for _, s := range w.st.Steps {
		o := StepOutcome{ID: s.ID, Phase: s.Phase, Action: s.Action, Status: s.Status, Error: s.Error, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt}
		if s.Approval != nil {
			o.Approval = s.Approval.Outcome
		}
		res.Steps = append(res.Steps, o)
		if s.Action == activities.ReportGenerate && s.Outputs["report_ref"] != "" {
			res.ReportRefs = append(res.ReportRefs, s.Outputs["report_ref"])
		}
	}
	w.logger.Info("incident closed", "state", state, "reason", reason)
	return res
}

// upsert sets the search attributes: all of them when the first phase
// starts, the phase and severity afterwards (continue-as-new keeps them).
func (w *incident) upsert(ctx workflow.Context, all bool) {
	var ups []temporal.SearchAttributeUpdate
	// With sparseUpsert, a value the run's search attributes hold already
	// (set by the start or an earlier upsert) is left out, and nothing is
	// upserted when every value is there.
	cur := workflow.GetTypedSearchAttributes(ctx)
	keyword := func(k temporal.SearchAttributeKeyKeyword, v string) {
		if got, ok := cur.GetKeyword(k); !w.sparseUpsert || !ok || got != v {
			ups = append(ups, k.ValueSet(v))
		}
	}
	keyword(PhaseKey, w.st.Phase)
	keyword(SeverityKey, w.st.Severity)
	if all {
		keyword(PlaybookKey, w.st.Playbook)
		keyword(AssetKey, w.st.Asset)
		if got, ok := cur.GetBool(DrillKey); !w.sparseUpsert || !ok || got != w.st.Drill {
			ups = append(ups, DrillKey.ValueSet(w.st.Drill))
		}
	}
	if len(ups) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, ups...); err != nil {
		w.logger.Warn("upsert search attributes failed", "error", err)
	}
}

// timeline appends an entry to the timeline, bounded in entries and bytes
// (see budget.go).
func (w *incident) timeline(e TimelineEntry) {
	if e.Actor == "" {
		e.Actor = actorWorkflow
	}
	w.st.Timeline = append(w.st.Timeline, clipEntry(e))
	if n := max(len(w.st.Timeline)-maxTimeline, timelineOver(w.st.Timeline)); n > 0 {
		w.st.Timeline = slices.Delete(w.st.Timeline, 0, n)
		w.st.TimelineDropped += n
	}
}

// record queues a ledger entry with the next sequence number for
// writeLedger and appends the matching timeline entry; the entry records
// the timeline's words and the actor's name.
func (w *incident) record(ctx workflow.Context, e activities.LedgerAppendInput, t TimelineEntry) {
	now := workflow.Now(ctx).UTC()
	w.st.LedgerSeq++
	e.IncidentID, e.Seq, e.At = w.st.IncidentID, w.st.LedgerSeq, now
	if e.Phase == "" {
		e.Phase = w.st.Phase
	}
	e.What = cmp.Or(e.What, t.What)
	if t.Actor != "" && t.Actor != e.Actor {
		e.ActorName = t.Actor
	}
	t.At = now
	if t.Actor == "" {
		t.Actor = e.Actor
	}
	if t.SourceIP == "" {
		t.SourceIP = e.SourceIP
	}
	if t.StepID == "" {
		t.StepID = e.StepID
	}
	if t.Reason == "" {
		t.Reason = e.Reason
	}
	w.timeline(t)
	w.ledgerQueue = append(w.ledgerQueue, e)
	w.dropTaken()
	if w.ledgerOnDemand && !w.ledgerWriting && len(w.ledgerQueue) > 0 {
		w.ledgerWriting = true
		workflow.Go(w.ledgerCtx, w.writeLedger)
	}
}

// writeLedger is the incident's one ledger writer (for the life of the
// run, or with [oneMarkerChange] while entries are queued): it appends the queued entries one after the other, in sequence
// order, each as a local activity (a marker in history, no round trip
// through the server); with [ledgerBatchChange], all those queued at once
// (see writeLedgerBatches). An entry is sent only once its predecessor is
// stored, so the ledger never sees a gap. An entry that fails for good is
// counted and recorded in the timeline; the next ones still go. With
// [oneMarkerChange] the writer ends when the queue is empty, and
// record starts the next one.
func (w *incident) writeLedger(ctx workflow.Context) {
	if w.ledgerBatch {
		w.writeLedgerBatches(ctx)
		return
	}
	lctx := workflow.WithLocalActivityOptions(ctx, activities.LedgerAppendLocalOptions())
	for w.ledgerPending(ctx) {
		e := w.ledgerQueue[0]
		e.Seq = w.ledgerHead + 1
		var res activities.LedgerAppendResult
		w.ledgerInFlight = 1
		err := workflow.ExecuteLocalActivity(lctx, activities.LedgerAppend, e).Get(ctx, &res)
		w.ledgerInFlight = 0
		if stored, ok := takenSlot(err); ok {
			w.slotTaken(stored)
			continue
		}
		w.appended(ctx, e, err)
	}
}

// writeLedgerBatches is writeLedger's loop in runs with
// [ledgerBatchChange]: it sends the queued entries (at most
// [activities.MaxLedgerBatch]) in one local activity, which pipelines them
// in the ledger, and takes the results in order as writeLedger takes one
// entry's: the stored ones leave the queue; at the first refused one the
// batch ends, and the entries after it go again in the next batch, with
// their slots counted anew (the ledger stores none after a refused one).
func (w *incident) writeLedgerBatches(ctx workflow.Context) {
	lctx := workflow.WithLocalActivityOptions(ctx, activities.LedgerAppendLocalOptions())
	for w.ledgerPending(ctx) {
		batch := slices.Clone(w.ledgerQueue[:min(len(w.ledgerQueue), activities.MaxLedgerBatch)])
		for i := range batch {
			batch[i].Seq = w.ledgerHead + 1 + int64(i)
		}
		var res activities.LedgerAppendBatchResult
		w.ledgerInFlight = len(batch)
		err := workflow.ExecuteLocalActivity(lctx, activities.LedgerAppendBatch, activities.LedgerAppendBatchInput{Entries: batch}).Get(ctx, &res)
		w.ledgerInFlight = 0
		if err != nil {
			w.appended(ctx, batch[0], err)
			continue
		}
		stored := min(len(res.Stored), len(batch))
		for _, e := range batch[:stored] {
			w.appended(ctx, e, nil)
		}
		if f := res.Failed; f != nil && stored < len(batch) {
			if f.Type == activities.ErrTypeConflict && f.Stored != nil {
				w.slotTaken(ledgerRecordKey(f.Stored.Record))
				continue
			}
			w.appended(ctx, batch[stored], temporal.NewNonRetryableApplicationError(f.Message, f.Type, nil))
		}
		w.dropTaken()
	}
}

// ledgerPending waits until an entry is queued and reports true, or
// reports false when the writer should end: its context is cancelled, or,
// with [oneMarkerChange], the queue is empty (the writer is then
// marked ended, so record starts another).
func (w *incident) ledgerPending(ctx workflow.Context) bool {
	if w.ledgerOnDemand {
		if len(w.ledgerQueue) == 0 {
			w.ledgerWriting = false
			return false
		}
		return true
	}
	return workflow.Await(ctx, func() bool { return len(w.ledgerQueue) > 0 }) == nil
}

// slotTaken takes the refusal of the queue's head because its slot holds
// an entry already, whose record is stored: the entry of a workflow task
// attempt that was lost (a worker died after the append, before the task
// completed; the retried attempt may order its entries differently, as
// signals that arrived meanwhile are handled in it), or another writer's.
// It stays, and the head and the entries after it move up one slot; the
// run does not append that record again when it makes it.
func (w *incident) slotTaken(stored string) {
	w.ledgerHead++
	w.st.LedgerSeq++
	w.ledgerTaken = append(w.ledgerTaken, stored)
	w.dropTaken()
}

// appended takes the result of the append of the queue's head e, sent as
// e.Seq: stored (err nil), or failed for good (counted and recorded in the
// timeline; the next entry takes the slot). The head leaves the queue.
func (w *incident) appended(ctx workflow.Context, e activities.LedgerAppendInput, err error) {
	if err == nil {
		w.ledgerHead = e.Seq
	} else {
		w.st.LedgerFailures++
		w.logger.Error("ledger append failed", "seq", e.Seq, "kind", e.Kind, "error", err)
		w.timeline(TimelineEntry{At: workflow.Now(ctx).UTC(), What: fmt.Sprintf("ledger append %d (%s) failed", e.Seq, e.Kind), Reason: err.Error()})
	}
	w.ledgerQueue = w.ledgerQueue[1:]
}

// takenSlot returns the record stored in the slot an append was refused
// for (a conflict whose details carry the stored entry's record).
func takenSlot(err error) (string, bool) {
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeConflict || !ae.HasDetails() {
		return "", false
	}
	var stored activities.LedgerStoredEntry
	if ae.Details(&stored) != nil {
		return "", false
	}
	return ledgerRecordKey(stored.Record), true
}

// dropTaken removes from the queue the entries whose record is stored
// already in a slot taken from this run (see writeLedger): the entry is
// in the chain, and its slot was counted when it was found.
func (w *incident) dropTaken() {
	for i := 0; i < len(w.ledgerQueue) && len(w.ledgerTaken) > 0; i++ {
		if i < w.ledgerInFlight {
			continue
		}
		key := ledgerRecordKey(w.ledgerQueue[i])
		j := slices.Index(w.ledgerTaken, key)
		if j < 0 {
			continue
		}
		w.ledgerTaken = slices.Delete(w.ledgerTaken, j, j+1)
		w.ledgerQueue = slices.Delete(w.ledgerQueue, i, i+1)
		w.st.LedgerSeq--
		i--
	}
}

// ledgerRecordKey is what makes two ledger records the same event: the
// record without its slot and time, printed (fmt prints maps in key
// order, nil and empty alike; the pointed-to parts by value).
func ledgerRecordKey(r activities.LedgerAppendInput) string {
	var opening activities.LedgerOpening
	var related activities.LedgerRelated
	if r.Opening != nil {
		opening = *r.Opening
	}
	if r.Related != nil {
		related = *r.Related
	}
	r.Seq, r.At, r.Opening, r.Related = 0, time.Time{}, nil, nil
	return fmt.Sprintf("%+v|%+v|%+v", r, opening, related)
}

// settled reports whether no ledger entry and no notification is still on
// its way.
func (w *incident) settled() bool { return len(w.ledgerQueue) == 0 && w.notifying == 0 }

// disconnected returns a context that is not cancelled with ctx, for work
// that must finish whatever happens (ledger appends, compensations, waits
// for branches). Blocking calls must use a context of the calling
// coroutine, so it is derived where it is used.
func disconnected(ctx workflow.Context) workflow.Context {
	d, _ := workflow.NewDisconnectedContext(ctx)
	return d
}

// opening is what the incident_opened ledger entry records: the playbook,
// the asset and the steps the playbook plans.
func (w *incident) opening() *activities.LedgerOpening {
	o := &activities.LedgerOpening{Playbook: w.pb.Name, PlaybookVersion: w.pb.Version, Asset: w.st.Asset, Severity: w.st.Severity,
		Drill: w.drill(), DryRun: w.in.DryRun}
	for _, s := range w.st.Steps {
		o.Steps = append(o.Steps, activities.LedgerPlannedStep{ID: s.ID, Phase: s.Phase, Action: s.Action})
	}
	return o
}

// closedStatus is the ledger outcome class of an incident's final state.
func closedStatus(state string) activities.LedgerStatus {
	switch state {
	case StateAborted:
		return activities.LedgerDenied
	case StateEscalatedFailed:
		return activities.LedgerFailed
	}
	return activities.LedgerOK
}
