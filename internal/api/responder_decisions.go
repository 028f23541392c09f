package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// firstRun describes the incident and returns the first run id of its
// current chain of runs (what a statement binds).
func (rs *Responder) firstRun(ctx context.Context, ref incidentRef) (string, error) {
	d, err := rs.temporal.DescribeWorkflowExecution(ctx, ref.WorkflowID, "")
	if err != nil {
		return "", err
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetType().GetName() != workflows.IncidentWorkflow {
		return "", errNotIncident
	}
	if r := info.GetFirstRunId(); r != "" {
		return r, nil
	}
	return info.GetExecution().GetRunId(), nil
}

// sign makes the decision statement of id's decision kind on ref (and
// step), signed with the API server's HSM decision key. On failure it has
// answered the request.
func (rs *Responder) sign(w http.ResponseWriter, r *http.Request, ref incidentRef, kind decision.Kind, step string, id auth.Identity, reason string) (decision.Signed, bool) {
	if rs.signer == nil {
		writeError(w, http.StatusServiceUnavailable, apiError{Error: "the API server has no decision key", Code: "no_decision_key"})
		return decision.Signed{}, false
	}
	run, err := rs.firstRun(r.Context(), ref)
	if err != nil {
		rs.fail(w, r, ref, err)
		return decision.Signed{}, false
	}
	now := rs.now().UTC()
	s, err := decision.Sign(r.Context(), rs.signer, decision.Statement{
		WorkflowID: ref.WorkflowID, RunID: run, StepID: step, Decision: kind,
		Subject: id.Actor(), Username: id.Username, Roles: id.Roles, SourceIP: id.SourceIP,
		SessionID: id.SessionID, TokenID: id.TokenID, AMR: id.AMR, ACR: id.ACR, Reason: reason,
		IssuedAt: now, ExpiresAt: now.Add(decision.DefaultTTL), Nonce: decision.NewNonce(),
	})
	if err != nil {
		rs.log.Error("sign decision statement", "err", err)
		writeError(w, http.StatusServiceUnavailable, apiError{Error: "the decision could not be signed", Code: "sign_failed"})
		return decision.Signed{}, false
	}
	return s, true
}

// secondFactorOK refuses (403) approving or denying a step that needs a
// second factor (risk: high, or an ir-admin step) with a token whose amr
// shows none: a denial halts the response as an abort does. The workflow
// checks the same on the signed statement.
func (rs *Responder) secondFactorOK(w http.ResponseWriter, r *http.Request, ref incidentRef, step string, id auth.Identity, approve bool) bool {
	if id.HasSecondFactor() {
		return true
	}
	view, err := rs.status(r.Context(), ref)
	if err != nil {
		rs.fail(w, r, ref, err)
		return false
	}
	verb := "denying"
	if approve {
		verb = "approving"
	}
	for _, s := range view.Status.Steps {
		if s.ID != step {
			continue
		}
		admin := s.Approval != nil && slices.Contains(s.Approval.Roles, auth.RoleAdmin)
		if s.Risk == playbooks.RiskHigh || admin {
			writeError(w, http.StatusForbidden, apiError{
				Error: fmt.Sprintf("%s %s needs a second factor: log in again with your one-time code (token amr %v)", verb, step, id.AMR),
				Code:  "mfa_required"})
			return false
		}
	}
	return true
}

// keyRefreshWait bounds the retry after an unknown-key refusal.
const keyRefreshWait = 3 * time.Second

// updateRefreshing runs the Update; if the workflow does not know the
// statement's key (its keys predate a rotation), it sends the refresh
// signal, which makes the workflow re-read the worker's keys, and retries
// once the workflow answers otherwise (bounded by keyRefreshWait).
func (rs *Responder) updateRefreshing(ctx context.Context, ref incidentRef, name string, in, out any) error {
	err := rs.update(ctx, ref, name, in, out)
	if !unknownKey(err) {
		return err
	}
	rs.log.Info("incident does not know the decision key: asking it to refresh", "workflow_id", ref.WorkflowID)
	if serr := rs.temporal.SignalWorkflow(ctx, ref.WorkflowID, "", workflows.DecisionKeysSignal, workflows.DecisionKeysInput{}); serr != nil {
		return err
	}
	deadline := rs.now().Add(keyRefreshWait)
	for {
		time.Sleep(200 * time.Millisecond)
		err = rs.update(ctx, ref, name, in, out)
		if !unknownKey(err) || rs.now().After(deadline) {
			return err
		}
	}
}

func unknownKey(err error) bool {
	return workflows.RejectionType(err) == workflows.RejectUnknownKey
}
