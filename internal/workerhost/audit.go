package workerhost

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/accesslog"
)

// auditKeyChanges re-registers the actions that change keys and secrets so
// that each change also lands in the audit ledger's daily chain, whoever
// started it (an incident, the 90-day schedule, an operator). Dry runs and
// failures change nothing and are not recorded here (incidents record
// their steps in their own chain).
func (h *Host) auditKeyChanges(r Registry) {
	for name, fn := range map[string]activities.Func{
		activities.KeysRotateKEK:        h.keyops.RotateKEK,
		activities.KeysRotateIntakeKeys: h.intakeKeys.RotateIntakeKeys,
		activities.PVERotateToken:       h.pve.RotateToken,
		activities.KCRotateClientSecret: h.keycloak.RotateClientSecret,
	} {
		r.RegisterActivityWithOptions(h.audited(name, fn), activity.RegisterOptions{Name: name, DisableAlreadyRegisteredCheck: true})
	}
}

func (h *Host) audited(name string, fn activities.Func) activities.Func {
	return func(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
		res, err := fn(ctx, in)
		if err == nil && !in.DryRun {
			h.audit.Record(accesslog.Record{Action: accesslog.ActionKeyChange, Actor: "system:worker",
				Path: name, Detail: fmt.Sprintf("incident %s step %s: %s", in.IncidentID, in.StepID, res.Summary)})
		}
		return res, err
	}
}
