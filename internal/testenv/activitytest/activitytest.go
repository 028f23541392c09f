// Package activitytest runs activities in Temporal's test activity
// environment (no server): the activity gets a real activity context
// (info, heartbeats, heartbeat details of a previous attempt), and its
// errors come back converted as a workflow receives them.
package activitytest

import (
	"log/slog"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// New returns a test activity environment that logs to h (nowhere when h
// is nil). Register the activities on it, then call [Run].
func New(h slog.Handler) *testsuite.TestActivityEnvironment {
	if h == nil {
		h = slog.DiscardHandler
	}
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(h)))
	return s.NewTestActivityEnvironment()
}

// Run executes activity (a registered name or function) with in on env and
// decodes its result.
func Run[Out any](env *testsuite.TestActivityEnvironment, activity any, in any) (Out, error) {
	var out Out
	v, err := env.ExecuteActivity(activity, in)
	if err != nil {
		return out, err
	}
	if err := v.Get(&out); err != nil {
		return out, err
	}
	return out, nil
}
