// Package schedules keeps the platform's Temporal Schedules as declared:
// one Ensure that creates a schedule or brings an existing one's spec,
// action and policies up to date (keeping its paused state).
package schedules

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Schedule is one schedule the platform keeps.
type Schedule struct {
	ID     string
	Spec   client.ScheduleSpec
	Action *client.ScheduleWorkflowAction
	Policy client.SchedulePolicies
	Note   string
	// TriggerImmediately starts one run when the schedule is created.
	TriggerImmediately bool
}

// Changes of [Ensure].
const (
	Created   = "created"
	Updated   = "updated"
	Unchanged = "unchanged"
)

// Ensure creates s, or updates an existing schedule's spec, action and
// policies (keeping its paused state), and reports which. A schedule that
// another process created between the two calls is left as it is.
func Ensure(ctx context.Context, sc client.ScheduleClient, s Schedule) (string, error) {
	h := sc.GetHandle(ctx, s.ID)
	_, err := h.Describe(ctx)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		_, err = sc.Create(ctx, client.ScheduleOptions{
			ID: s.ID, Spec: s.Spec, Action: s.Action, Overlap: s.Policy.Overlap, CatchupWindow: s.Policy.CatchupWindow,
			Note: s.Note, TriggerImmediately: s.TriggerImmediately,
		})
		if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			return Unchanged, nil
		}
		if err != nil {
			return "", fmt.Errorf("create schedule %s: %w", s.ID, err)
		}
		return Created, nil
	case err != nil:
		return "", fmt.Errorf("describe schedule %s: %w", s.ID, err)
	}
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		d := in.Description.Schedule
		spec, policy := s.Spec, s.Policy
		d.Spec, d.Action, d.Policy = &spec, s.Action, &policy
		return &client.ScheduleUpdate{Schedule: &d}, nil
	}})
	if err != nil {
		return "", fmt.Errorf("update schedule %s: %w", s.ID, err)
	}
	return Updated, nil
}
