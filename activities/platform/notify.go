package platform

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/notify"
)

// NotifySend implements [activities.NotifySend]. Delivery retries with
// backoff inside the notifier; a channel that stays down is reported in
// the result (output [activities.OutputUndelivered]), not as a failure,
// so a notification never blocks the response.
//
// Run as a local activity (an incident's first attempt, see
// localAttempt) it tries each channel once, within three quarters of its
// time: the workflow task waits for it, and the incident sends what it
// did not deliver again as an activity, with the retries.
func (a *Activities) NotifySend(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.NotifySendParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	n := a.Notifier
	if n != nil && p.Only != "" {
		n = n.Only(strings.Split(p.Only, ","))
	}
	if n != nil && localAttempt(ctx) {
		var cancel context.CancelFunc
		ctx, cancel = firstAttempt(ctx)
		defer cancel()
		one := *n
		one.MaxAttempts = 1
		n = &one
	}
	ev := notify.Event{
		Kind: p.Event, IncidentID: in.IncidentID, Asset: in.Asset, Severity: p.Severity,
		Summary: p.Message, At: a.now().UTC(), Details: map[string]string{"channel": p.Channel, "step": in.StepID},
	}
	if ev.Summary == "" {
		ev.Summary = fmt.Sprintf("%s: %s on %s", in.IncidentID, ev.Kind, in.Asset)
	}
	if a.IncidentLink != nil {
		ev.Link = a.IncidentLink(in.IncidentID)
	}
	id := in.IdempotencyKey
	if in.DryRun {
		return activities.ActionResult{Outputs: notifyOutputs(id, nil), Plan: []string{fmt.Sprintf("notify %s of %s", p.Channel, ev.Kind)}}, nil
	}
	if n == nil || len(n.Channels) == 0 {
		return activities.ActionResult{Outputs: notifyOutputs(id, nil), Summary: "no notification channel configured"}, nil
	}
	results, err := n.Send(ctx, ev)
	if errors.Is(err, notify.ErrNoChannel) {
		return activities.ActionResult{Outputs: notifyOutputs(id, nil), Summary: "no channel takes " + ev.Kind}, nil
	}
	var delivered, failed []string
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r.Channel)
		} else {
			delivered = append(delivered, r.Channel)
		}
	}
	sum := "delivered to " + strings.Join(delivered, ", ")
	if len(failed) > 0 {
		sum += "; NOT delivered to " + strings.Join(failed, ", ")
	}
	return activities.ActionResult{Outputs: notifyOutputs(id, failed), Summary: sum}, nil
}

// notifyOutputs are NotifySend's outputs: the notification's id and the
// channels it did not reach.
func notifyOutputs(id string, undelivered []string) map[string]string {
	return map[string]string{"notification_id": id, activities.OutputUndelivered: strings.Join(undelivered, ",")}
}

// localAttempt reports whether ctx is a local activity's.
func localAttempt(ctx context.Context) bool {
	return activity.IsActivity(ctx) && activity.GetInfo(ctx).IsLocalActivity
}

// firstAttempt bounds a local attempt to three quarters of the time it
// has, so it reports the channels it did not reach before the workflow
// gives up on it (and sends to every channel again).
func firstAttempt(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(dl)*3/4)
}
