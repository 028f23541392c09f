package platform

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/notify"
)

// NotifySend implements [activities.NotifySend]. Delivery retries with
// backoff inside the notifier; a channel that stays down is reported in
// the result, not as a failure, so a notification never blocks the
// response.
func (a *Activities) NotifySend(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.NotifySendParams](in)
	if err != nil {
		return activities.ActionResult{}, err
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
		return activities.ActionResult{Outputs: map[string]string{"notification_id": id}, Plan: []string{fmt.Sprintf("notify %s of %s", p.Channel, ev.Kind)}}, nil
	}
	if a.Notifier == nil || len(a.Notifier.Channels) == 0 {
		return activities.ActionResult{Outputs: map[string]string{"notification_id": id}, Summary: "no notification channel configured"}, nil
	}
	results, err := a.Notifier.Send(ctx, ev)
	if errors.Is(err, notify.ErrNoChannel) {
		return activities.ActionResult{Outputs: map[string]string{"notification_id": id}, Summary: "no channel takes " + ev.Kind}, nil
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
	return activities.ActionResult{Outputs: map[string]string{"notification_id": id}, Summary: sum}, nil
}
