package workerhost

import (
	"context"
	"fmt"
	"slices"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/accesslog"
)

// Audit returns the worker's audit interceptor. It records in the ledger's
// daily security chain:
//   - refused decision Updates (see [decisionAuditInbound]), whoever sent
//     them (the API server or anyone else holding Temporal credentials);
//   - every change of keys and secrets (see [keyChangeAudit]), whoever
//     started it (an incident, the 90-day schedule, an operator).
//
// Use it as a worker interceptor, or as a client interceptor of the client
// the worker is built on.
func (h *Host) Audit() interceptor.Interceptor {
	return &auditInterceptor{record: h.audit.Record}
}

type auditInterceptor struct {
	interceptor.InterceptorBase
	record func(accesslog.Record) bool
}

func (a *auditInterceptor) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	i := &decisionAuditInbound{record: a.record}
	i.Next = next
	return i
}

func (a *auditInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &keyChangeAudit{record: a.record}
	i.Next = next
	return i
}

// keyChanges are the actions that change keys and secrets.
var keyChanges = []string{activities.KeysRotateKEK, activities.KeysRotateIntakeKeys, activities.PVERotateToken, activities.KCRotateClientSecret}

// keyChangeAudit records each key or secret change that succeeded. Dry
// runs and failures change nothing and are not recorded here (incidents
// record their steps in their own chain).
type keyChangeAudit struct {
	interceptor.ActivityInboundInterceptorBase
	record func(accesslog.Record) bool
}

func (k *keyChangeAudit) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := k.Next.ExecuteActivity(ctx, in)
	name := activity.GetInfo(ctx).ActivityType.Name
	if err != nil || !slices.Contains(keyChanges, name) || len(in.Args) == 0 {
		return res, err
	}
	ai, ok := in.Args[0].(activities.ActionInput)
	if !ok || ai.DryRun {
		return res, err
	}
	summary := ""
	if r, ok := res.(activities.ActionResult); ok {
		summary = r.Summary
	}
	k.record(accesslog.Record{Action: accesslog.ActionKeyChange, Actor: "system:worker",
		Path: name, Detail: fmt.Sprintf("incident %s step %s: %s", ai.IncidentID, ai.StepID, summary)})
	return res, err
}
