package workflows

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/playbooks"
)

// Roles the workflow itself checks (as named in the Keycloak realm).
const (
	roleLead  = "ir-lead"
	roleAdmin = "ir-admin"
)

// abortRoles may abort an incident.
var abortRoles = []string{roleLead, roleAdmin}

// decisionKeysOptions bound the decision.keys local activity.
var decisionKeysOptions = workflow.LocalActivityOptions{
	StartToCloseTimeout: 10 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 2 * time.Second, MaximumAttempts: 3,
	},
}

// loadDecisionKeys reads the decision public keys the worker trusts. The
// keys come from the worker's configuration, never from a message. On
// failure the previous set stays (none at first: every decision is refused
// until a refresh succeeds) and the timeline says so.
func (w *incident) loadDecisionKeys(ctx workflow.Context) {
	w.takeDecisionKeys(ctx, w.startDecisionKeys(ctx))
}

// startDecisionKeys asks the worker for its decision keys (the local
// activity [DecisionKeysActivity]); takeDecisionKeys waits for them.
func (w *incident) startDecisionKeys(ctx workflow.Context) workflow.Future {
	return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, decisionKeysOptions), DecisionKeysActivity, DecisionKeysInput{})
}

// takeDecisionKeys waits for the decision keys startDecisionKeys asked for
// and keeps them; on a failure the incident refuses every decision.
func (w *incident) takeDecisionKeys(ctx workflow.Context, f workflow.Future) {
	var res DecisionKeysResult
	if err := f.Get(ctx, &res); err != nil {
		w.logger.Error("decision keys not loaded", "error", err)
		w.timeline(TimelineEntry{At: workflow.Now(ctx).UTC(), What: "decision keys could not be loaded: decisions are refused", Reason: err.Error()})
		return
	}
	w.decKeys = sharedKeys.get("", &res.Keys)
	ids := make([]string, 0, len(res.Keys.Keys))
	for _, k := range res.Keys.Keys {
		ids = append(ids, k.ID)
	}
	w.logger.Info("decision keys loaded", "keys", ids)
}

// verifyStatement checks a message's statement: a trusted key valid now,
// the signature, expiry, binding to this workflow, its first run, the step
// and the decision, a nonce not used before, that the identity the message
// names (if any) is the statement's, and that the drill identity decides
// only on a drill. It returns the statement and
// the identity it proves. It writes nothing (validators call it).
func (w *incident) verifyStatement(ctx workflow.Context, s decision.Signed, kind decision.Kind, step string, claimed Approver) (decision.Statement, Approver, error) {
	if w.decKeys == nil {
		return decision.Statement{}, Approver{}, reject(RejectStatement, "decision statement refused: the incident has no decision keys loaded")
	}
	// Verification is pure: ECDSA verification and JSON decoding of the
	// given bytes against the given time; workflowcheck cannot see that.
	st, err := w.decKeys.Verify(s, workflow.Now(ctx)) //workflowcheck:ignore
	if err != nil {
		typ := RejectStatement
		if errors.Is(err, decision.ErrUnknownKey) {
			typ = RejectUnknownKey
		}
		return decision.Statement{}, Approver{}, reject(typ, "decision statement refused: %v", err)
	}
	if err := st.Check(decision.Binding{WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, RunID: firstRunID(ctx), StepID: step, Decision: kind}); err != nil {
		return decision.Statement{}, Approver{}, reject(RejectStatement, "decision statement refused: %v", err)
	}
	if _, used := w.nonces[st.Nonce]; used {
		return decision.Statement{}, Approver{}, reject(RejectStatement, "decision statement refused: %v: nonce %s", decision.ErrReplayed, st.Nonce)
	}
	by := Approver{Subject: st.Subject, Username: st.Username, Roles: st.Roles, SourceIP: st.SourceIP}
	if by.Subject == DrillApproverSubject && !w.drill() {
		return decision.Statement{}, Approver{}, reject(RejectDrillOnly, "the drill identity decides only on drill incidents (%s)", w.st.IncidentID)
	}
	if claimed.Subject != "" && (claimed.Subject != by.Subject || claimed.Username != by.Username || !slices.Equal(claimed.Roles, by.Roles)) {
		return decision.Statement{}, Approver{}, reject(RejectStatement, "decision statement refused: the message names %s with roles %v, the signed statement %s with roles %v",
			cmp.Or(claimed.Username, claimed.Subject), claimed.Roles, cmp.Or(by.Username, by.Subject), by.Roles)
	}
	return st, by, nil
}

// useNonce records a statement's nonce once its decision is applied.
func (w *incident) useNonce(st decision.Statement) { w.nonces[st.Nonce] = st.ExpiresAt }

// liveNonces returns the nonces whose statements have not expired, for
// the next run.
func (w *incident) liveNonces(now time.Time) map[string]time.Time {
	out := map[string]time.Time{}
	for _, n := range workflow.DeterministicKeys(w.nonces) {
		if exp := w.nonces[n]; !now.After(exp) {
			out[n] = exp
		}
	}
	return out
}

// subjects are the accounts the incident is about: the alert's username
// label and the username parameter of any step (the account the playbook
// acts on).
func (w *incident) subjects() []string {
	var out []string
	add := func(u string) {
		if u = strings.TrimSpace(u); u != "" && !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, u) }) {
			out = append(out, u)
		}
	}
	add(w.st.Labels["username"])
	for _, s := range w.st.Steps {
		add(s.Params["username"])
	}
	return out
}

// isSubject reports whether by is an account the incident is about.
func (w *incident) isSubject(by Approver) bool {
	return slices.ContainsFunc(w.subjects(), func(u string) bool { return strings.EqualFold(u, by.Username) })
}

// secondFactorChange is the version marker of the rule that an abort and
// the denial of a risky step need a second factor, like its approval: a
// stolen password alone must not be able to undo containment.
const secondFactorChange = "abort-deny-second-factor"

// verbing names a decision in a refusal.
func verbing(approve bool) string {
	if approve {
		return "approving"
	}
	return "denying"
}

// needsSecondFactor reports whether approving step needs a second factor:
// the playbook marks it risk: high, or it is an ir-admin action.
func (w *incident) needsSecondFactor(stepID string) bool {
	s, _, ok := w.pb.Step(stepID)
	return ok && (s.Risk == playbooks.RiskHigh || (s.Approval != nil && slices.Contains(s.Approval.Roles, roleAdmin)))
}

// samePerson reports whether by is the person named by who (a subject or
// a username).
func samePerson(by Approver, who string) bool {
	return who != "" && (who == by.Subject || strings.EqualFold(who, by.Username))
}

// statementDetail is the ledger detail that keeps a statement verifiable
// (starter audit verify re-checks its signature).
func statementDetail(d map[string]string, s decision.Signed) map[string]string {
	if d == nil {
		d = map[string]string{}
	}
	if s.Empty() {
		return d
	}
	d["statement"] = base64.StdEncoding.EncodeToString(s.Payload)
	d["statement_key"] = s.KeyID
	d["statement_sig"] = base64.StdEncoding.EncodeToString(s.Sig)
	return d
}

// refused records a refused signal (approval or abort): the ledger and the
// timeline say who it claimed to be and why it was refused.
func (w *incident) refused(ctx workflow.Context, kind, stepID string, claimed Approver, s decision.Signed, err error) {
	who, what := cmp.Or(claimed.Username, claimed.Subject, "unknown"), "rejected "+kind
	if stepID != "" {
		what += " on " + stepID
	}
	w.record(ctx, activities.LedgerAppendInput{Kind: "decision_rejected", Actor: cmp.Or(claimed.Subject, "unknown"),
		SourceIP: claimed.SourceIP, StepID: stepID, Outcome: "rejected", Status: activities.LedgerDenied, Reason: rejectionText(err),
		Detail: statementDetail(map[string]string{"message": kind, "claimed_username": claimed.Username,
			"claimed_roles": strings.Join(claimed.Roles, ",")}, s)},
		TimelineEntry{Actor: who, What: what})
}

// escalateBy is a responder's escalation: as [incident.escalate], with the
// signed statement kept in the ledger entry.
func (w *incident) escalateBy(ctx workflow.Context, by Approver, reason string, s decision.Signed) (int, string) {
	w.st.EscalationLevel++
	level := w.st.EscalationLevel
	tiers := w.pb.Escalation
	if len(tiers) == 0 {
		tiers = playbooks.DefaultEscalation
	}
	tier := tiers[min(level, len(tiers)-1)]
	w.record(ctx, activities.LedgerAppendInput{Kind: "escalation", Actor: by.Subject, SourceIP: by.SourceIP,
		Outcome: tier, Reason: reason, Detail: statementDetail(map[string]string{"level": fmt.Sprint(level), "username": by.Username}, s)},
		TimelineEntry{Actor: cmp.Or(by.Username, by.Subject), What: fmt.Sprintf("escalated to %s (level %d)", tier, level)})
	w.notify(ctx, fmt.Sprintf("escalation-%d", level), "escalation", tier, reason)
	return level, tier
}

// acknowledgeBy is a responder's acknowledgement: the statement goes to
// the ledger, the first one sets the time to acknowledge.
func (w *incident) acknowledgeBy(ctx workflow.Context, by Approver, st decision.Statement, s decision.Signed) {
	w.record(ctx, activities.LedgerAppendInput{Kind: "acknowledgement", Actor: by.Subject, SourceIP: by.SourceIP, Reason: st.Reason,
		Detail: statementDetail(map[string]string{"username": by.Username}, s)}, TimelineEntry{Actor: cmp.Or(by.Username, by.Subject), What: "acknowledgement recorded"})
	w.acknowledge(ctx, by)
}

// firstRunID is the first run of this incident's chain of runs: what a
// statement binds (stable across continue-as-new, new for a new incident
// that reuses the workflow id).
func firstRunID(ctx workflow.Context) string {
	info := workflow.GetInfo(ctx)
	return cmp.Or(info.FirstRunID, info.WorkflowExecution.RunID)
}
