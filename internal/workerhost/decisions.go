package workerhost

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/workflows"
)

// ActionDecisionRefused is the access-log action of a decision message
// (approve, deny, escalate or acknowledge Update) the incident workflow's
// validator refused: the workflow cannot write then, so the worker records it.
const ActionDecisionRefused = "decision.refused"

// ActionPayloadRefused is the access-log action of an unencrypted payload
// the worker refused to decode (sent by a client without the payload key).
const ActionPayloadRefused = "payload.refused"

// plaintextRefused records a refused unencrypted payload once per process
// (a signal stays in history and is decoded again on every replay).
func (h *Host) plaintextRefused(r codec.Refusal) {
	h.refusedMu.Lock()
	if h.refusedSeen == nil || len(h.refusedSeen) > 10000 {
		h.refusedSeen = map[string]bool{}
	}
	seen := h.refusedSeen[r.SHA256]
	h.refusedSeen[r.SHA256] = true
	h.refusedMu.Unlock()
	if seen {
		return
	}
	_ = h.audit.Record(accesslog.Record{Action: ActionPayloadRefused, Actor: "", Path: "temporal",
		Detail: fmt.Sprintf("unencrypted payload refused (encoding %s, %d bytes, sha256 %s): a client without the payload key sent a message", r.Encoding, r.Size, r.SHA256)})
}

// DecisionKeys implements workflows.DecisionKeysActivity: the keys of the
// configured file (re-read on every call, so a rotation is an edit and a
// refresh signal) and, unless disabled, the worker's own HSM decision key.
func (h *Host) DecisionKeys(_ context.Context, _ workflows.DecisionKeysInput) (workflows.DecisionKeysResult, error) {
	ks, err := h.cfg.Decisions.load()
	if err != nil {
		return workflows.DecisionKeysResult{}, fmt.Errorf("IRU_DECISION_KEYS_FILE=%s: %w", h.cfg.Decisions.File, err)
	}
	if h.cfg.Decisions.TrustHSMKey {
		k := h.prot.Keys.DecisionKey(time.Time{})
		if _, ok := ks.Lookup(k.ID); !ok {
			ks.Keys = append(ks.Keys, k)
		}
	}
	return workflows.DecisionKeysResult{Keys: ks}, nil
}

// decisionAuditInbound records refused decision Updates (part of [Host.Audit]).
type decisionAuditInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	record func(accesslog.Record) bool
}

// decisionUpdates are the Updates that carry decision statements.
var decisionUpdates = []string{workflows.ApproveUpdate, workflows.DenyUpdate, workflows.EscalateUpdate, workflows.AcknowledgeUpdate}

func (i *decisionAuditInbound) ValidateUpdate(ctx workflow.Context, in *interceptor.UpdateInput) error {
	err := i.Next.ValidateUpdate(ctx, in)
	if err == nil || workflow.IsReplaying(ctx) || !slices.Contains(decisionUpdates, in.Name) {
		return err
	}
	claimed, step, keyID := claimedBy(in.Args)
	// Recording is a side effect outside workflow state (a queue of the
	// worker process); it changes nothing the workflow decides.
	_ = i.record(accesslog.Record{
		Action: ActionDecisionRefused, Actor: claimed.Subject, SourceIP: claimed.SourceIP,
		Method: "update:" + in.Name, Path: workflow.GetInfo(ctx).WorkflowExecution.ID,
		Detail: fmt.Sprintf("step=%s claimed=%s roles=%s key=%s: %v", step, claimed.Username, strings.Join(claimed.Roles, ","), keyID, err),
	})
	return err
}

// claimedBy is who a decision message says it is from, as written.
func claimedBy(args []any) (by workflows.Approver, step, keyID string) {
	if len(args) == 0 {
		return
	}
	var s decision.Signed
	switch in := args[0].(type) {
	case workflows.DecisionInput:
		by, step, s = in.Approver, in.StepID, in.Statement
	case *workflows.DecisionInput:
		by, step, s = in.Approver, in.StepID, in.Statement
	case workflows.EscalateInput:
		by, s = in.By, in.Statement
	case workflows.AcknowledgeInput:
		by, s = in.By, in.Statement
	}
	return by, step, s.KeyID
}
