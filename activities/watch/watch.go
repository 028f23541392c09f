// Package watch implements the activities of the watch on incidents stopped
// outside the platform (the watch workflow): an operator with admin
// rights on Temporal terminated or reset an incident run directly (Web UI,
// CLI, SDK), past the responder API and its approvals.
//
// [Activities.List] finds such runs through visibility. [Activities.Report]
// reads, from the run's own history, who stopped it (the identity the client
// declared to Temporal), why and when; writes that to the audit ledger (the
// day's security chain, and the incident's own chain after a termination);
// reads the compensations the run left pending (its status query, replayed
// on the closed run) and opens a follow-up incident that offers each of
// them to the responders behind an approval. What it needs of the incident
// workflow (its status, its input, starting a follow-up) comes through
// [Incidents]. Everything is keyed by the stopped run's
// id, so a run is reported once however often it is seen.
package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/ledger"
)

// ResetterIdentity is the identity Temporal's history service records on
// the termination of a run it resets. Temporal (1.29) does not record the
// identity of whoever asked for the reset.
const ResetterIdentity = "history-resetter"

// queryTimeout bounds the status query of a stopped run (a worker replays
// its whole history to answer).
const queryTimeout = 30 * time.Second

// Ledger actions of the watch's entries.
const (
	// ActionTerminated records a run terminated outside the platform.
	ActionTerminated = "incident_terminated"
	// ActionReset records a run reset outside the platform.
	ActionReset = "incident_reset"
)

// Temporal is the part of the Temporal client the watch uses; the worker's
// client implements it.
type Temporal interface {
	ListWorkflow(ctx context.Context, request *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	DescribeWorkflow(ctx context.Context, workflowID, runID string) (*client.WorkflowExecutionDescription, error)
	GetWorkflowHistory(ctx context.Context, workflowID, runID string, isLongPoll bool, filterType enumspb.HistoryEventFilterType) client.HistoryEventIterator
}

// Ledger is the part of the audit ledger the watch uses.
type Ledger interface {
	Append(ctx context.Context, r ledger.AppendRequest) (ledger.Entry, error)
	Head(ctx context.Context, chain string) (ledger.Entry, error)
	Entries(ctx context.Context, chain string, fn func(ledger.Entry) error) error
	Checkpoint(ctx context.Context, chain string, signer ledger.Signer) (ledger.Checkpoint, error)
}

// LedgerOf adapts the ledger to [Ledger].
func LedgerOf(l *ledger.Ledger) Ledger { return ledgerOf{l} }

type ledgerOf struct{ *ledger.Ledger }

func (l ledgerOf) Head(ctx context.Context, chain string) (ledger.Entry, error) {
	return l.Store().Head(ctx, chain)
}

func (l ledgerOf) Entries(ctx context.Context, chain string, fn func(ledger.Entry) error) error {
	return l.Store().Entries(ctx, chain, fn)
}

// Activities holds the watch's dependencies.
type Activities struct {
	Temporal Temporal
	// Incidents reads the stopped runs and opens their follow-ups.
	Incidents Incidents
	Ledger    Ledger
	// Signer, if set, signs the head of a terminated incident's chain
	// after the watch's entry (the run never closed it).
	Signer ledger.Signer
	Now    func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Register registers the activities under their names.
func (a *Activities) Register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}) {
	r.RegisterActivityWithOptions(a.List, activity.RegisterOptions{Name: ListActivity})
	r.RegisterActivityWithOptions(a.Report, activity.RegisterOptions{Name: ReportActivity})
}

// listQuery is the visibility query of runs of workflowType closed as
// terminated at or after since (a reset terminates the run it replaces, so
// resets are in it too).
func listQuery(workflowType string, since time.Time, taskQueue string) string {
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Terminated'", workflowType)
	if !since.IsZero() {
		q += fmt.Sprintf(" AND CloseTime >= '%s'", since.UTC().Format(time.RFC3339Nano))
	}
	if taskQueue != "" {
		q += fmt.Sprintf(" AND TaskQueue = '%s'", strings.ReplaceAll(taskQueue, "'", ""))
	}
	return q
}

// List implements [ListActivity]: the incident runs closed
// as terminated since in.Since, oldest first, at most in.Limit.
func (a *Activities) List(ctx context.Context, in ListInput) (ListResult, error) {
	if in.Limit <= 0 {
		return ListResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "watch.list: limit must be positive", nil)
	}
	q := listQuery(a.Incidents.WorkflowType(), in.Since, in.TaskQueue)
	var runs []StoppedRun
	var token []byte
	for {
		resp, err := a.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 500, NextPageToken: token})
		if err != nil {
			return ListResult{}, fmt.Errorf("watch.list: %s: %w", q, err)
		}
		for _, e := range resp.GetExecutions() {
			runs = append(runs, StoppedRun{
				WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
				TaskQueue: e.GetTaskQueue(), CloseTime: e.GetCloseTime().AsTime().UTC(),
			})
		}
		activity.RecordHeartbeat(ctx, len(runs))
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	sort.SliceStable(runs, func(i, j int) bool {
		if !runs[i].CloseTime.Equal(runs[j].CloseTime) {
			return runs[i].CloseTime.Before(runs[j].CloseTime)
		}
		return runs[i].RunID < runs[j].RunID
	})
	if len(runs) > in.Limit {
		runs = runs[:in.Limit]
	}
	return ListResult{Runs: runs}, nil
}

// stop is how a run was stopped, from its history.
type stop struct {
	how, by, reason, newRunID string
	at                        time.Time
}

// Report implements [ReportActivity] for one stopped run:
// the ledger entries and the follow-up incident, each at most once.
func (a *Activities) Report(ctx context.Context, in ReportInput) (ReportResult, error) {
	r := in.Run
	if r.WorkflowID == "" || r.RunID == "" {
		return ReportResult{}, activities.NewFinalError(activities.ErrTypeBadParams, "watch.report: workflow id and run id are required", nil)
	}
	s, err := a.stopOf(ctx, r)
	if err != nil {
		return ReportResult{}, err
	}
	out := ReportResult{WorkflowID: r.WorkflowID, RunID: r.RunID, How: s.how, By: s.by, Reason: s.reason, At: s.at, NewRunID: s.newRunID}

	st, pending, owner, problem, err := a.pending(ctx, r)
	if err != nil {
		return ReportResult{}, err
	}
	out.IncidentID, out.Compensations, out.Problem = st.IncidentID, len(pending), problem

	var held []string
	if s.newRunID != "" {
		held = a.heldBy(ctx, r.WorkflowID, s.newRunID)
	}
	if len(pending) > 0 {
		out.FollowUpWorkflowID, out.FollowUpIncidentID, err = a.followUp(ctx, r, s, st, owner, pending)
		if err != nil {
			return ReportResult{}, err
		}
	}

	detail := describe(out, pending, held)
	params := reportParams{Run: r, How: s.how, By: s.by, Reason: s.reason, At: s.at, NewRunID: s.newRunID,
		IncidentID: out.IncidentID, Pending: pending, HeldByNewRun: held, FollowUp: out.FollowUpWorkflowID, Problem: problem}
	req := ledger.AppendRequest{
		Time:           s.at,
		Actor:          actor(s.by),
		Action:         ActionTerminated,
		Target:         truncate(r.WorkflowID+"/"+r.RunID, ledger.MaxTargetLen),
		Params:         params,
		Outcome:        ledger.Outcome{Status: ledger.Status(s.how), Detail: truncate(detail, ledger.MaxDetailLen)},
		IdempotencyKey: "watch/" + r.RunID,
	}
	if s.how == StoppedReset {
		req.Action = ActionReset
	}
	chains := []string{accesslog.Chain(s.at)}
	// After a termination the incident's chain is closed for good: the
	// entry goes there too, and its head is signed. After a reset the
	// new run goes on appending to it with its own sequence numbers, so
	// the entry stays out of it.
	if s.how == StoppedTerminated && out.IncidentID != "" {
		chains = append(chains, out.IncidentID)
	}
	for _, c := range chains {
		req.Incident = c
		if _, err := a.appendOnce(ctx, req); err != nil {
			return ReportResult{}, fmt.Errorf("watch.report: ledger %s: %w", c, err)
		}
		out.Chains = append(out.Chains, c)
	}
	if s.how == StoppedTerminated && out.IncidentID != "" && a.Signer != nil {
		if _, err := a.Ledger.Checkpoint(ctx, out.IncidentID, a.Signer); err != nil {
			return ReportResult{}, fmt.Errorf("watch.report: checkpoint %s: %w", out.IncidentID, err)
		}
	}
	activity.GetLogger(ctx).Warn("incident stopped outside the platform", "workflowID", r.WorkflowID, "runID", r.RunID,
		"how", s.how, "by", s.by, "reason", s.reason, "at", s.at, "pending", len(pending), "followUp", out.FollowUpWorkflowID)
	return out, nil
}

// reportParams are the facts of a report, hashed into the ledger entry.
type reportParams struct {
	Run          StoppedRun
	How          string
	By           string
	Reason       string
	At           time.Time
	NewRunID     string
	IncidentID   string
	Pending      []Compensation
	HeldByNewRun []string
	FollowUp     string
	Problem      string
}

// stopOf reads how r was stopped from its close event.
func (a *Activities) stopOf(ctx context.Context, r StoppedRun) (stop, error) {
	it := a.Temporal.GetWorkflowHistory(ctx, r.WorkflowID, r.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	var closeEvent *historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return stop{}, fmt.Errorf("watch.report: close event of %s/%s: %w", r.WorkflowID, r.RunID, err)
		}
		closeEvent = e
	}
	attrs := closeEvent.GetWorkflowExecutionTerminatedEventAttributes()
	if attrs == nil {
		return stop{}, activities.NewFinalError(activities.ErrTypePrecondition,
			fmt.Sprintf("watch.report: %s/%s did not close by termination (%s)", r.WorkflowID, r.RunID, closeEvent.GetEventType()), nil)
	}
	s := stop{how: StoppedTerminated, by: attrs.GetIdentity(), reason: attrs.GetReason(), at: closeEvent.GetEventTime().AsTime().UTC()}
	if s.by == ResetterIdentity {
		s.how = StoppedReset
		d, err := a.Temporal.DescribeWorkflow(ctx, r.WorkflowID, r.RunID)
		if err != nil {
			return stop{}, fmt.Errorf("watch.report: describe %s/%s: %w", r.WorkflowID, r.RunID, err)
		}
		s.newRunID = d.RawResponse.GetWorkflowExtendedInfo().GetResetRunId()
	}
	return s, nil
}

// pending reads the stopped run's status and the compensations it left
// pending: the status query, answered by a worker replaying the closed
// run. A status that cannot be replayed (a workflow change since) is
// reported as a problem, with the incident named from the run's input.
// Other errors (no worker polls the run's task queue yet) are retried.
// owner is the incident whose changes the compensations undo: the stopped
// incident, or for a stopped follow-up the incident it follows.
func (a *Activities) pending(ctx context.Context, r StoppedRun) (st Status, pending []Compensation, owner, problem string, err error) {
	in, inErr := a.Incidents.Input(ctx, r.WorkflowID, r.RunID)
	if inErr != nil {
		inErr = fmt.Errorf("input: %w", inErr)
	}
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	st, err = a.Incidents.Status(qctx, r.WorkflowID, r.RunID)
	var qf *serviceerror.QueryFailed
	switch {
	case errors.As(err, &qf):
		if inErr != nil {
			return st, nil, "", "", fmt.Errorf("watch.report: status of %s/%s: %w; %w", r.WorkflowID, r.RunID, err, inErr)
		}
		st = Status{IncidentID: in.IncidentID, Asset: in.Asset, Severity: in.Severity, Drill: in.Drill}
		if in.Carried != nil {
			// A continued run carries its predecessor's state: the last
			// compensations known without replaying this run.
			st = *in.Carried
			return st, slices.Clone(st.Compensations), st.IncidentID,
				fmt.Sprintf("the status of the stopped run cannot be replayed (%v): pending compensations as of its start (continue-as-new)", err), nil
		}
		return st, nil, in.IncidentID, fmt.Sprintf("pending compensations unknown: the status of the stopped run cannot be replayed: %v", err), nil
	case err != nil:
		return st, nil, "", "", fmt.Errorf("watch.report: status of %s/%s: %w", r.WorkflowID, r.RunID, err)
	}
	owner = st.IncidentID
	pending = slices.Clone(st.Compensations)
	// A stopped follow-up leaves the inherited compensations nobody
	// decided on yet: they are pending again.
	if inErr == nil && in.Inherited != nil {
		owner = in.Inherited.IncidentID
		for _, s := range in.Inherited.Steps {
			if !slices.Contains(st.Settled, s.StepID) {
				pending = append(pending, s.Compensation)
			}
		}
	}
	return st, pending, owner, "", nil
}

// heldBy lists the step ids whose compensation the run a reset started
// holds now (best effort: none when they cannot be read).
func (a *Activities) heldBy(ctx context.Context, workflowID, runID string) []string {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := a.Incidents.Status(qctx, workflowID, runID)
	if err != nil {
		return nil
	}
	var ids []string
	for _, c := range st.Compensations {
		ids = append(ids, c.StepID)
	}
	return ids
}

// FollowUpIncidentID is the incident id of the follow-up of run runID of
// incident id.
func FollowUpIncidentID(id, runID string) string {
	return truncate(id+"-FU-"+runID, ledger.MaxIncidentLen)
}

// followUp opens the follow-up incident once: its workflow id derives from
// the stopped run's id and is never reused.
func (a *Activities) followUp(ctx context.Context, r StoppedRun, s stop, st Status, owner string, pending []Compensation) (string, string, error) {
	base := cmp.Or(st.IncidentID, r.WorkflowID)
	owner = cmp.Or(owner, base)
	id := FollowUpIncidentID(owner, r.RunID)
	severity := st.Severity
	if severity == "" {
		severity = "high"
	}
	summary := fmt.Sprintf("incident %s was %s outside the platform by %s at %s (%s); %d compensation(s) left pending",
		base, s.how, s.by, s.at.Format(time.RFC3339), orNone(s.reason), len(pending))
	labels := map[string]string{
		"stopped_incident": base, "stopped_workflow": r.WorkflowID, "stopped_run": r.RunID,
		"stopped_how": s.how, "stopped_by": s.by, "stopped_reason": s.reason, "stopped_at": s.at.Format(time.RFC3339Nano),
		"pending": fmt.Sprint(len(pending)),
	}
	if s.newRunID != "" {
		labels["reset_run"] = s.newRunID
	}
	wfID, err := a.Incidents.OpenFollowUp(ctx, FollowUp{
		Run: r, IncidentID: id, Stopped: base, Owner: owner,
		How: s.how, By: s.by, Reason: s.reason, At: s.at, NewRunID: s.newRunID,
		Asset: st.Asset, Severity: severity, Drill: st.Drill,
		Summary: summary, Labels: labels, ReceivedAt: a.now().UTC(), Pending: pending,
	})
	if err != nil {
		return "", "", fmt.Errorf("watch.report: open follow-up of %s: %w", r.RunID, err)
	}
	return wfID, id, nil
}

// appendOnce appends req to chain req.Incident at its head, unless the
// chain holds req's idempotency key already: other writers (API servers,
// another worker) race for the slots of the day's chain, and a retried
// report finds its own entry.
func (a *Activities) appendOnce(ctx context.Context, req ledger.AppendRequest) (ledger.Entry, error) {
	var lastErr error
	for attempt := range 50 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ledger.Entry{}, ctx.Err()
			case <-time.After(time.Duration(min(attempt, 20)) * 5 * time.Millisecond):
			}
		}
		head, err := a.Ledger.Head(ctx, req.Incident)
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			req.Seq = 1
		case err != nil:
			return ledger.Entry{}, err
		default:
			req.Seq = head.Seq + 1
		}
		e, err := a.Ledger.Append(ctx, req)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, ledger.ErrConflict) && !errors.Is(err, ledger.ErrGap) {
			return ledger.Entry{}, err
		}
		lastErr = err
		if e, ok, err := a.find(ctx, req.Incident, req.IdempotencyKey); err != nil {
			return ledger.Entry{}, err
		} else if ok {
			return e, nil
		}
	}
	return ledger.Entry{}, fmt.Errorf("no free slot after 50 attempts: %w", lastErr)
}

// errFound stops a scan.
var errFound = errors.New("found")

// find looks for the entry with idempotency key key in chain.
func (a *Activities) find(ctx context.Context, chain, key string) (ledger.Entry, bool, error) {
	var found ledger.Entry
	err := a.Ledger.Entries(ctx, chain, func(e ledger.Entry) error {
		if e.IdempotencyKey == key {
			found = e
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return found, true, nil
	case err == nil, errors.Is(err, ledger.ErrNotFound):
		return ledger.Entry{}, false, nil
	}
	return ledger.Entry{}, false, err
}

// actor is the ledger actor of a stop: the identity the Temporal client
// declared (Temporal does not verify it), or Temporal's own resetter.
func actor(identity string) string {
	if identity == "" {
		identity = "unknown"
	}
	if identity == ResetterIdentity {
		return "temporal:" + identity
	}
	return truncate("temporal-client:"+identity, ledger.MaxActorLen)
}

// describe is the entry's human-readable detail.
func describe(r ReportResult, pending []Compensation, held []string) string {
	var b strings.Builder
	switch r.How {
	case StoppedReset:
		fmt.Fprintf(&b, "incident %s reset outside the platform at %s (the requester's identity is not recorded by Temporal); reason: %s; new run %s",
			orNone(r.IncidentID), r.At.Format(time.RFC3339Nano), orNone(r.Reason), orNone(r.NewRunID))
	default:
		fmt.Fprintf(&b, "incident %s terminated outside the platform by %s (identity declared by the client) at %s; reason: %s",
			orNone(r.IncidentID), orNone(r.By), r.At.Format(time.RFC3339Nano), orNone(r.Reason))
	}
	if r.Problem != "" {
		b.WriteString("; " + r.Problem)
	}
	if len(pending) > 0 {
		steps := make([]string, 0, len(pending))
		for _, c := range pending {
			steps = append(steps, c.StepID+":"+c.Action)
		}
		fmt.Fprintf(&b, "; pending compensations %s offered in follow-up %s (%s)", strings.Join(steps, ","), r.FollowUpIncidentID, r.FollowUpWorkflowID)
	} else if r.Problem == "" {
		b.WriteString("; no pending compensations")
	}
	if len(held) > 0 {
		fmt.Fprintf(&b, "; the new run holds the compensations of %s again", strings.Join(held, ","))
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
