package workerhost

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	pveact "github.com/iru-responder/responder/activities/proxmox"
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
	return &auditInterceptor{record: h.audit.Record, realm: h.cfg.Keycloak.Realm}
}

type auditInterceptor struct {
	interceptor.InterceptorBase
	record func(accesslog.Record) bool
	// realm is the Keycloak realm of kc.* actions that name none.
	realm string
}

func (a *auditInterceptor) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	i := &decisionAuditInbound{record: a.record}
	i.Next = next
	return i
}

func (a *auditInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &keyChangeAudit{record: a.record, realm: a.realm}
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
	realm  string
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
	r, _ := res.(activities.ActionResult)
	k.record(accesslog.Record{Action: accesslog.ActionKeyChange, Actor: "system:worker",
		Path: name, Detail: fmt.Sprintf("incident %s step %s: %s", ai.IncidentID, ai.StepID, r.Summary),
		Keys: changedKeys(name, ai, r, k.realm)})
	return res, err
}

// changedKeys names the keys a successful key change changed, as
// accesslog key ids: what the 90-day rotation control looks for.
func changedKeys(action string, in activities.ActionInput, res activities.ActionResult, realm string) []string {
	switch action {
	case activities.KeysRotateKEK:
		return []string{accesslog.KeyID(accesslog.KeyKindKEK, "current")}
	case activities.KeysRotateIntakeKeys:
		var out []string
		for item := range strings.SplitSeq(res.Outputs["rotated"], ",") {
			if det, _, ok := strings.Cut(item, ":"); ok && det != "" {
				out = append(out, accesslog.KeyID(accesslog.KeyKindIntake, det))
			}
		}
		return out
	case activities.PVERotateToken:
		if p, err := activities.DecodeParams[activities.PVERotateTokenParams](in); err == nil && p.TokenID != "" {
			return []string{accesslog.KeyID(accesslog.KeyKindPVEToken, pveact.BaseTokenID(p.TokenID))}
		}
	case activities.KCRotateClientSecret:
		if p, err := activities.DecodeParams[activities.KCRotateClientSecretParams](in); err == nil && p.ClientID != "" {
			if p.Realm != "" {
				realm = p.Realm
			}
			return []string{accesslog.KeyID(accesslog.KeyKindKCClientSecret, realm+"/"+p.ClientID)}
		}
	}
	return nil
}
