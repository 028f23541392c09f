package api

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/workflows"
)

// failAnswer runs [Responder.fail] on err and returns the status and body.
func failAnswer(t *testing.T, err error) (int, apiError) {
	t.Helper()
	rs := &Responder{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	rec := httptest.NewRecorder()
	rs.fail(rec, httptest.NewRequest(http.MethodPost, "/incidents/x/approve", nil), incidentRef{Key: "x", WorkflowID: "incident:x"}, err)
	var e apiError
	if jerr := json.Unmarshal(rec.Body.Bytes(), &e); jerr != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), jerr)
	}
	return rec.Code, e
}

// TestRejectionTypeChoosesAnswer: the HTTP status and code of a refusal of
// the incident workflow come from the type of its ApplicationError.
func TestRejectionTypeChoosesAnswer(t *testing.T) {
	for _, c := range []struct {
		typ    string
		status int
		code   string
	}{
		{workflows.RejectWrongRole, http.StatusForbidden, "wrong_role"},
		{workflows.RejectStatement, http.StatusForbidden, "bad_statement"},
		{workflows.RejectUnknownKey, http.StatusForbidden, "bad_statement"},
		{workflows.RejectSubject, http.StatusForbidden, "subject"},
		{workflows.RejectSecondFactor, http.StatusForbidden, "mfa_required"},
		{workflows.RejectFourEyes, http.StatusForbidden, "four_eyes"},
		{workflows.RejectNoIdentity, http.StatusForbidden, "no_identity"},
		{workflows.RejectNotPending, http.StatusConflict, "not_pending"},
		{workflows.RejectAlreadyDecided, http.StatusConflict, "already_decided"},
		{workflows.RejectClosed, http.StatusConflict, "closed"},
		{workflows.RejectNotStarted, http.StatusConflict, "not_started"},
		{"SomethingElse", http.StatusConflict, "rejected"},
	} {
		t.Run(c.typ, func(t *testing.T) {
			msg := "refused for a reason of type " + c.typ
			status, e := failAnswer(t, temporal.NewNonRetryableApplicationError(msg, c.typ, nil))
			if status != c.status || e.Code != c.code || e.Error != msg {
				t.Errorf("answer = %d %+v, want %d %s with the message", status, e, c.status, c.code)
			}
		})
	}
}

// TestRejectionMessageDoesNotChooseAnswer: the same type with any message
// (another wording, another type's wording, none) gets the same answer, and
// another type with the same message gets that type's answer.
func TestRejectionMessageDoesNotChooseAnswer(t *testing.T) {
	for _, msg := range []string{
		"approver lacks a required role: stop needs one of [ir-lead]",
		"the approver has none of the roles",
		"step is not waiting for approval",
		"",
	} {
		if status, e := failAnswer(t, temporal.NewNonRetryableApplicationError(msg, workflows.RejectWrongRole, nil)); status != http.StatusForbidden || e.Code != "wrong_role" {
			t.Errorf("WrongRole with message %q: %d %s", msg, status, e.Code)
		}
		wrapped := fmt.Errorf("update: %w", temporal.NewNonRetryableApplicationError(msg, workflows.RejectNotPending, nil))
		if status, e := failAnswer(t, wrapped); status != http.StatusConflict || e.Code != "not_pending" {
			t.Errorf("NotPending with message %q: %d %s", msg, status, e.Code)
		}
	}
}
