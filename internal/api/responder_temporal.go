package api

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/workflows"
)

// errNotIncident: the workflow id exists but is not an incident.
var errNotIncident = errors.New("not an incident workflow")

// IncidentSummary is one incident of GET /incidents, from Temporal
// visibility (search attributes) without querying the workflow.
type IncidentSummary struct {
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// Execution is Running, Completed, Failed, Terminated, …
	Execution string     `json:"execution"`
	Open      bool       `json:"open"`
	Severity  string     `json:"severity,omitempty"`
	Phase     string     `json:"phase,omitempty"`
	Playbook  string     `json:"playbook,omitempty"`
	Asset     string     `json:"asset,omitempty"`
	Drill     bool       `json:"drill"`
	StartedAt time.Time  `json:"started_at"`
	ClosedAt  *time.Time `json:"closed_at,omitempty"`
}

// IncidentList is the answer of GET /incidents.
type IncidentList struct {
	Incidents []IncidentSummary `json:"incidents"`
	// NextPageToken, when set, fetches the next page (?page_token=).
	NextPageToken string `json:"next_page_token,omitempty"`
	// Query is the visibility query that was run.
	Query string `json:"query"`
}

// filterValueRE bounds the values of list filters: they are quoted into a
// visibility query, so quotes and backslashes are refused.
var filterValueRE = regexp.MustCompile(`^[A-Za-z0-9._:/@+ -]{1,256}$`)

// listQuery builds the visibility query of the list filters.
func listQuery(q map[string][]string) (string, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	clauses := []string{fmt.Sprintf("WorkflowType = '%s'", workflows.IncidentWorkflow)}
	open := get("open")
	switch st := strings.ToLower(get("state")); st {
	case "":
	case "open", "running":
		open = "true"
	case "closed":
		open = "false"
	default:
		return "", fmt.Errorf("state %q: want open or closed", st)
	}
	switch open {
	case "":
	case "true", "1", "yes":
		clauses = append(clauses, "ExecutionStatus = 'Running'")
	case "false", "0", "no":
		clauses = append(clauses, "ExecutionStatus != 'Running'")
	default:
		return "", fmt.Errorf("open %q: want true or false", open)
	}
	for _, f := range []struct{ param, attr string }{
		{"severity", workflows.SeverityKey.GetName()},
		{"asset", workflows.AssetKey.GetName()},
		{"playbook", workflows.PlaybookKey.GetName()},
		{"phase", workflows.PhaseKey.GetName()},
	} {
		v := get(f.param)
		if v == "" {
			continue
		}
		if !filterValueRE.MatchString(v) {
			return "", fmt.Errorf("%s %q: letters, digits and . _ : / @ + - space only", f.param, v)
		}
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", f.attr, v))
	}
	if d := get("drill"); d != "" {
		b, err := strconv.ParseBool(d)
		if err != nil {
			return "", fmt.Errorf("drill %q: want true or false", d)
		}
		clauses = append(clauses, fmt.Sprintf("%s = %t", workflows.DrillKey.GetName(), b))
	}
	return strings.Join(clauses, " AND "), nil
}

// Page sizes of GET /incidents.
const (
	// DefaultListLimit is the page size without ?limit=.
	DefaultListLimit = 50
	// MaxListLimit is the largest ?limit=: a whole backlog in one answer.
	MaxListLimit = 10000
	// visibilityPageSize is the largest page asked of visibility in one
	// call: a whole answer, as the platform's servers allow
	// (frontend.visibilityMaxPageSize in deploy/temporal and
	// internal/devserver). Each visibility page is a query of its own, so
	// one call of 10,000 costs less than ten of 1,000. A server left at
	// its default cap (1,000) answers shorter pages with a token, and
	// [listIncidents] goes on from there.
	visibilityPageSize = MaxListLimit
)

// list searches incidents through Temporal visibility. A page larger than
// one visibility page is gathered from several (each continuing from the
// last one's token) and the answer's next_page_token continues after it.
func (rs *Responder) list(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	q := r.URL.Query()
	query, err := listQuery(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_filter"})
		return
	}
	limit := DefaultListLimit
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > MaxListLimit {
			writeError(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("limit %q: want 1 to %d", l, MaxListLimit), Code: "bad_filter"})
			return
		}
	}
	var token []byte
	if t := q.Get("page_token"); t != "" {
		if token, err = base64.RawURLEncoding.DecodeString(t); err != nil {
			writeError(w, http.StatusBadRequest, apiError{Error: "page_token: not a token from a previous answer", Code: "bad_filter"})
			return
		}
	}
	out, err := listIncidents(r.Context(), rs.temporal, query, limit, token)
	if err != nil {
		rs.fail(w, r, incidentRef{}, err)
		return
	}
	writeIncidentList(w, out)
}

// listIncidents reads up to limit incidents matching query from
// visibility, starting at token, in pages of at most visibilityPageSize
// (or the server's cap, if lower).
func listIncidents(ctx context.Context, c IncidentClient, query string, limit int, token []byte) (IncidentList, error) {
	out := IncidentList{Incidents: make([]IncidentSummary, 0, min(limit, visibilityPageSize)), Query: query}
	dc := converter.GetDefaultDataConverter()
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: query, PageSize: int32(min(limit-len(out.Incidents), visibilityPageSize)), NextPageToken: token,
		})
		if err != nil {
			return IncidentList{}, fmt.Errorf("list incidents: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			out.Incidents = append(out.Incidents, summarize(dc, e))
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 || len(out.Incidents) >= limit || len(resp.GetExecutions()) == 0 {
			break
		}
	}
	if len(token) > 0 {
		out.NextPageToken = base64.RawURLEncoding.EncodeToString(token)
	}
	return out, nil
}

// summarize is one incident's summary from its visibility record.
func summarize(dc converter.DataConverter, e *workflowpb.WorkflowExecutionInfo) IncidentSummary {
	wid := e.GetExecution().GetWorkflowId()
	s := IncidentSummary{
		ID: strings.TrimPrefix(wid, workflows.IncidentWorkflowID("")), WorkflowID: wid, RunID: e.GetExecution().GetRunId(),
		Execution: executionName(e.GetStatus()), Open: e.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING,
		StartedAt: e.GetStartTime().AsTime().UTC(),
	}
	if ct := e.GetCloseTime(); ct != nil && !s.Open {
		t := ct.AsTime().UTC()
		s.ClosedAt = &t
	}
	fields := e.GetSearchAttributes().GetIndexedFields()
	str := func(name string) string {
		var v string
		if p, ok := fields[name]; ok {
			_ = dc.FromPayload(p, &v)
		}
		return v
	}
	s.Severity, s.Phase = str(workflows.SeverityKey.GetName()), str(workflows.PhaseKey.GetName())
	s.Playbook, s.Asset = str(workflows.PlaybookKey.GetName()), str(workflows.AssetKey.GetName())
	if p, ok := fields[workflows.DrillKey.GetName()]; ok {
		_ = dc.FromPayload(p, &s.Drill)
	}
	return s
}

// writeIncidentList answers 200 with l, encoding one incident at a time
// through a buffered writer: a page of ten thousand is never held as one
// encoded byte slice.
func writeIncidentList(w http.ResponseWriter, l IncidentList) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	head, _ := json.Marshal(l.Query)
	_, _ = bw.WriteString(`{"query":`)
	_, _ = bw.Write(head)
	_, _ = bw.WriteString(`,"incidents":[`)
	for i := range l.Incidents {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		// Encode appends a newline, which JSON allows between values.
		if err := enc.Encode(&l.Incidents[i]); err != nil {
			return
		}
	}
	_ = bw.WriteByte(']')
	if l.NextPageToken != "" {
		tok, _ := json.Marshal(l.NextPageToken)
		_, _ = bw.WriteString(`,"next_page_token":`)
		_, _ = bw.Write(tok)
	}
	_, _ = bw.WriteString("}\n")
	_ = bw.Flush()
}

// update runs a workflow Update and waits for its result.
func (rs *Responder) update(ctx context.Context, ref incidentRef, name string, in, out any) error {
	h, err := rs.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		UpdateID: uuid.NewString(), WorkflowID: ref.WorkflowID, UpdateName: name, Args: []any{in},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return err
	}
	return h.Get(ctx, out)
}

// rejection is the answer to one kind of refusal of the incident workflow.
type rejection struct {
	status int
	code   string
}

// rejections maps the types of the incident workflow's refusals
// (workflows.Reject*) onto answers.
var rejections = map[string]rejection{
	workflows.RejectWrongRole:      {http.StatusForbidden, "wrong_role"},
	workflows.RejectStatement:      {http.StatusForbidden, "bad_statement"},
	workflows.RejectUnknownKey:     {http.StatusForbidden, "bad_statement"},
	workflows.RejectSubject:        {http.StatusForbidden, "subject"},
	workflows.RejectSecondFactor:   {http.StatusForbidden, "mfa_required"},
	workflows.RejectFourEyes:       {http.StatusForbidden, "four_eyes"},
	workflows.RejectNoIdentity:     {http.StatusForbidden, "no_identity"},
	workflows.RejectNotPending:     {http.StatusConflict, "not_pending"},
	workflows.RejectAlreadyDecided: {http.StatusConflict, "already_decided"},
	workflows.RejectClosed:         {http.StatusConflict, "closed"},
	workflows.RejectNotStarted:     {http.StatusConflict, "not_started"},
	workflows.RejectNotTriage:      {http.StatusConflict, "not_triage"},
}

// rejectionOf is the answer to a refusal of type typ; other application
// errors of the workflow are conflicts.
func rejectionOf(typ string) rejection {
	if rj, ok := rejections[typ]; ok {
		return rj
	}
	return rejection{http.StatusConflict, "rejected"}
}

// fail answers an error of Temporal or of the incident workflow.
func (rs *Responder) fail(w http.ResponseWriter, r *http.Request, ref incidentRef, err error) {
	var (
		nf  *serviceerror.NotFound
		app *temporal.ApplicationError
	)
	switch {
	case errors.Is(err, errNotIncident):
		writeError(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no incident %q", ref.Key), Code: "not_found"})
	case errors.As(err, &nf):
		if ref.WorkflowID != "" && rs.closed(r.Context(), ref) {
			writeError(w, http.StatusConflict, apiError{Error: fmt.Sprintf("incident %q is closed", ref.Key), Code: "closed"})
			return
		}
		writeError(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no incident %q", ref.Key), Code: "not_found"})
	case errors.As(err, &app):
		rj := rejectionOf(app.Type())
		writeError(w, rj.status, apiError{Error: app.Message(), Code: rj.code})
	case errors.Is(err, context.DeadlineExceeded) || r.Context().Err() != nil:
		writeError(w, http.StatusGatewayTimeout, apiError{Error: "the incident workflow did not answer in time (is a worker running?)", Code: "timeout"})
	default:
		var inv *serviceerror.InvalidArgument
		if errors.As(err, &inv) {
			writeError(w, http.StatusBadRequest, apiError{Error: inv.Error(), Code: "invalid"})
			return
		}
		rs.log.Error("temporal call failed", "workflow_id", ref.WorkflowID, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusBadGateway, apiError{Error: "Temporal call failed", Code: "temporal"})
	}
}

// closed reports whether the incident's latest run exists and is closed.
func (rs *Responder) closed(ctx context.Context, ref incidentRef) bool {
	d, err := rs.temporal.DescribeWorkflowExecution(ctx, ref.WorkflowID, ref.RunID)
	return err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// executionName is "Running", "Completed", … for a status.
func executionName(s enums.WorkflowExecutionStatus) string {
	return s.String()
}
