package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/watch"
)

// Defaults of a sweep.
const (
	// WatchInterval is how often the [WatchScheduleID] schedule sweeps.
	WatchInterval = 30 * time.Second
	// DefaultWatchOverlap is how far back each sweep looks before its
	// cursor: visibility is eventually consistent, so a run may show up a
	// little after runs that closed later. Runs seen in the overlap are
	// skipped by run id.
	DefaultWatchOverlap = 5 * time.Minute
	// DefaultWatchLimit bounds the runs one sweep reports; the rest wait
	// for the next sweep (the cursor only moves past reported runs).
	DefaultWatchLimit = 200
	// maxWatchRetry bounds the runs whose report failed and that the next
	// sweep tries again.
	maxWatchRetry = 500
)

// WatchInput configures a [Watch] sweep.
type WatchInput struct {
	// TaskQueue limits the sweep to incidents of one task queue ("": every
	// incident of the namespace).
	TaskQueue string `json:",omitempty"`
	// Since is the cursor of a sweep without a previous one (a schedule's
	// first run, a manual run): runs that closed before it are not looked
	// at. Zero: every run the server still has.
	Since time.Time `json:",omitzero"`
	// Overlap overrides [DefaultWatchOverlap]; Limit overrides
	// [DefaultWatchLimit].
	Overlap time.Duration `json:",omitempty"`
	Limit   int           `json:",omitempty"`
}

// WatchResult is the result of a sweep, and the state the next sweep of
// the schedule starts from (its last completion result).
type WatchResult struct {
	// Cursor is the close time of the last run reported.
	Cursor time.Time `json:",omitzero"`
	// Seen are the run ids reported that closed within the overlap before
	// Cursor: the next sweep lists them again and skips them.
	Seen []string `json:",omitempty"`
	// Retry are runs whose report failed; the next sweep tries them again.
	Retry []watch.StoppedRun `json:",omitempty"`
	// Reported are this sweep's reports.
	Reported []watch.ReportResult `json:",omitempty"`
}

// InheritedCompensations are the compensations a stopped run left pending,
// handed to its follow-up incident ([IncidentInput.Inherited]).
type InheritedCompensations struct {
	// WorkflowID and RunID name the stopped run.
	WorkflowID string
	RunID      string
	// IncidentID is the incident whose changes the compensations undo: the
	// stopped incident or, when a follow-up was stopped in turn, the
	// incident it followed. The compensations act as that incident.
	IncidentID string
	// How ([watch.StoppedTerminated] or [watch.StoppedReset]), By, Reason
	// and At say how it was stopped, by whom, why and when.
	How    string
	By     string
	Reason string `json:",omitempty"`
	At     time.Time
	// NewRunID is the run a reset started (it may hold some of these
	// compensations again).
	NewRunID string `json:",omitempty"`
	// Compensations are in the order the stopped run registered them.
	Compensations []PendingCompensation
}

// watchOptions bound the watch's activities: both are idempotent, so they
// retry; a report that keeps failing goes to [WatchResult.Retry].
func watchOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 20 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{activities.ErrTypeBadParams},
		},
	}
}

// Watch is one sweep of the watch on incidents stopped outside the
// platform, registered as [WatchWorkflow] and run by the schedule
// [WatchScheduleID]. It lists the incident runs that closed as terminated
// since the previous sweep (terminated by an operator, or by a reset), and
// reports each once: [watch.ReportActivity] writes who stopped it, when and
// why to the audit ledger from the run's own history, and opens a
// follow-up incident with the compensations the run left pending, each
// waiting for a responder's approval.
//
// The cursor is the previous sweep's result (the schedule hands it over as
// the last completion result), so a sweep carries no state of its own.
// Reports are idempotent (ledger rows and the follow-up's workflow id are
// derived from the run id), so a run seen again after a lost cursor is
// still reported once.
func Watch(ctx workflow.Context, in WatchInput) (WatchResult, error) {
	prev := WatchResult{Cursor: in.Since}
	if workflow.HasLastCompletionResult(ctx) {
		var last WatchResult
		if err := workflow.GetLastCompletionResult(ctx, &last); err == nil {
			prev = last
		}
	}
	overlap := in.Overlap
	if overlap <= 0 {
		overlap = DefaultWatchOverlap
	}
	limit := in.Limit
	if limit <= 0 {
		limit = DefaultWatchLimit
	}
	actx := workflow.WithActivityOptions(ctx, watchOptions())
	since := time.Time{}
	if !prev.Cursor.IsZero() {
		since = prev.Cursor.Add(-overlap)
	}
	var list watch.ListResult
	if err := workflow.ExecuteActivity(actx, watch.ListActivity, watch.ListInput{Since: since, TaskQueue: in.TaskQueue, Limit: limit}).Get(ctx, &list); err != nil {
		return WatchResult{}, fmt.Errorf("list stopped incidents: %w", err)
	}

	seen := map[string]bool{}
	for _, id := range prev.Seen {
		seen[id] = true
	}
	// Runs to report: the previous sweep's failures first, then the new ones.
	var todo []watch.StoppedRun
	for _, r := range prev.Retry {
		if !seen[r.RunID] {
			seen[r.RunID] = true
			todo = append(todo, r)
		}
	}
	for _, r := range list.Runs {
		if !seen[r.RunID] {
			seen[r.RunID] = true
			todo = append(todo, r)
		}
	}

	out := WatchResult{Cursor: prev.Cursor}
	for _, r := range list.Runs {
		if r.CloseTime.After(out.Cursor) {
			out.Cursor = r.CloseTime
		}
	}
	logger := workflow.GetLogger(ctx)
	for _, r := range todo {
		var rep watch.ReportResult
		if err := workflow.ExecuteActivity(actx, watch.ReportActivity, watch.ReportInput{Run: r}).Get(ctx, &rep); err != nil {
			logger.Error("report of a stopped incident failed; the next sweep tries again", "workflowID", r.WorkflowID, "runID", r.RunID, "error", err)
			if len(out.Retry) < maxWatchRetry {
				out.Retry = append(out.Retry, r)
			}
			continue
		}
		out.Reported = append(out.Reported, rep)
	}
	// Keep the ids the next sweep lists again (its overlap), except the
	// failed ones, which it retries. Runs older than the overlap are not
	// listed again and need not be kept.
	retry := map[string]bool{}
	for _, r := range out.Retry {
		retry[r.RunID] = true
	}
	for _, r := range list.Runs {
		if !retry[r.RunID] && !r.CloseTime.Before(out.Cursor.Add(-overlap)) {
			out.Seen = append(out.Seen, r.RunID)
		}
	}
	return out, nil
}
