package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/notify"
	"github.com/iru-responder/responder/internal/ratelimit"
	"github.com/iru-responder/responder/internal/report"
	"github.com/iru-responder/responder/workflows"
)

// APIPrefix is the path prefix of the responder API.
const APIPrefix = "/api/v1"

// IncidentClient is the part of the Temporal client the responder API
// uses; client.Client implements it.
type IncidentClient interface {
	ListWorkflow(ctx context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
	UpdateWorkflow(ctx context.Context, opts client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// EvidenceLocker is the part of the evidence locker the responder API uses
// (notes, reports, manifests); *evidence.Locker implements it.
type EvidenceLocker interface {
	Put(ctx context.Context, r evidence.PutRequest) (evidence.Ref, error)
	Get(ctx context.Context, ref evidence.Ref, who evidence.Reader) (io.ReadCloser, evidence.Meta, error)
	List(ctx context.Context, incident string) ([]evidence.Meta, error)
	Manifest(ctx context.Context, incident string) (evidence.Manifest, error)
}

// TokenVerifier verifies responder bearer tokens; *auth.Verifier
// implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (auth.Identity, error)
}

// SessionChecker checks that a token's Keycloak session is still live;
// *auth.Introspector implements it.
type SessionChecker interface {
	CheckSession(ctx context.Context, raw string) error
}

// Notifier sends notifications; *notify.Notifier implements it.
type Notifier interface {
	Send(ctx context.Context, ev notify.Event) ([]notify.Result, error)
}

// ResponderOptions are the responder API's configuration and collaborators.
type ResponderOptions struct {
	// Config holds the limits and the failed-authentication threshold.
	Config Config
	// Temporal reaches the incident workflows (required).
	Temporal IncidentClient
	// Verifier verifies tokens (nil: an OIDC verifier for Config.OIDC).
	Verifier TokenVerifier
	// Sessions checks, before every mutating request, that the token's
	// session is live (nil: Keycloak token introspection for Config.OIDC).
	Sessions SessionChecker
	// Signer signs each decision as a statement the workflow verifies (the
	// HSM's decision key; nil: decisions answer 503).
	Signer decision.Signer
	// Evidence is the evidence locker (nil: notes, report and evidence
	// answer 503).
	Evidence EvidenceLocker
	// Notifier receives the failed-authentication alert (nil: logged only).
	Notifier Notifier
	// Access records authentication attempts in the audit ledger (nil: not
	// recorded). Requests are recorded by the [Server].
	Access *accesslog.Logger
	// Log receives errors (nil: discarded).
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// SharedFailures, if set, returns the failed-authentication counter
	// shared by every API server (package sharedstate), given the
	// in-process watch configured from Config (its threshold, window and
	// notification; the shared counter falls back to it when its store is
	// unreachable). Nil: failures are counted in this process only.
	SharedFailures func(local *auth.FailureWatch) auth.FailureCounter
}

// Responder is the responder API: incidents, approvals, aborts, notes and
// reports for people with a Keycloak token. Mount it through [Server].
//
// Incidents are addressed by their correlation key: the incident workflow's
// id is workflows.IncidentWorkflowID(key) ("incident:<key>"), so the key is
// what Temporal addresses and what `starter incidents` lists in its ID
// column; a path id that already starts with "incident:" is accepted as
// well. The human-facing INC-… id (IncidentStatus.IncidentID) names the
// incident's ledger chain, evidence and report and is shown by GET
// /incidents/{id}. While an incident is open no other incident can use its
// key; a later incident with the same key reuses the workflow id with a new
// run, and the read routes take ?run=<run id> to reach an earlier one.
type Responder struct {
	cfg      Config
	temporal IncidentClient
	verifier TokenVerifier
	live     SessionChecker
	signer   decision.Signer
	evidence EvidenceLocker
	notifier Notifier
	access   *accesslog.Logger
	log      *slog.Logger
	now      func() time.Time
	watch    auth.FailureCounter
	sources  *ratelimit.Set

	mu       sync.Mutex
	sessions map[string]string // actor|session -> UTC day of the recorded auth.success
}

// NewResponder returns the responder API of opts.
func NewResponder(opts ResponderOptions) (*Responder, error) {
	if err := opts.Config.validateResponder(); err != nil {
		return nil, fmt.Errorf("api: responder config: %w", err)
	}
	if opts.Temporal == nil {
		return nil, errors.New("api: responder: no Temporal client")
	}
	rs := &Responder{
		cfg: opts.Config, temporal: opts.Temporal, verifier: opts.Verifier, live: opts.Sessions, signer: opts.Signer, evidence: opts.Evidence,
		notifier: opts.Notifier, access: opts.Access, log: opts.Log, now: opts.Now, sessions: map[string]string{},
	}
	if rs.verifier == nil {
		rs.verifier = auth.NewVerifier(opts.Config.OIDC, nil)
	}
	if rs.live == nil {
		rs.live = auth.NewIntrospector(opts.Config.OIDC, nil)
	}
	if rs.log == nil {
		rs.log = slog.New(slog.DiscardHandler)
	}
	if rs.now == nil {
		rs.now = time.Now
	}
	rs.cfg.SourceRate = cmp.Or(rs.cfg.SourceRate, defaultSourceRate)
	rs.cfg.SourceBurst = cmp.Or(rs.cfg.SourceBurst, defaultSourceBurst)
	rs.cfg.SourceConcurrency = cmp.Or(rs.cfg.SourceConcurrency, defaultSourceConcurrency)
	rs.sources = ratelimit.NewSet(maxSources, 10*time.Minute)
	local := &auth.FailureWatch{Threshold: opts.Config.AuthFailThreshold, Window: opts.Config.AuthFailWindow,
		OnExceeded: rs.thresholdCrossed, Now: rs.now}
	rs.watch = local
	if opts.SharedFailures != nil {
		rs.watch = opts.SharedFailures(local)
	}
	return rs, nil
}

// readRoles may read incidents and add notes.
var readRoles = []string{auth.RoleResponder, auth.RoleLead, auth.RoleAdmin}

// abortRoles may abort an incident.
var abortRoles = []string{auth.RoleLead, auth.RoleAdmin}

// ResponderRoute is one route of the responder API.
type ResponderRoute struct {
	Method string
	// Path is the ServeMux path pattern, under [APIPrefix].
	Path string
	// Roles: the caller needs one of them; empty means any verified
	// identity (the incident workflow's validator then decides).
	Roles   []string
	Summary string
	handle  func(http.ResponseWriter, *http.Request, auth.Identity)
}

// Routes returns the responder API's routes. Every one needs a verified
// bearer token.
func (rs *Responder) Routes() []ResponderRoute {
	inc := APIPrefix + "/incidents/{id}"
	return []ResponderRoute{
		{"GET", APIPrefix + "/incidents", readRoles, "list and search incidents (state, open, severity, asset, playbook, phase, drill, limit, page_token)", rs.list},
		{"GET", inc, readRoles, "an incident's status (the workflow's status query)", rs.show},
		{"POST", inc + "/steps/{step}/approve", nil, "approve a pending step (the validator checks role, quorum and four-eyes)", rs.decision(workflows.ApproveUpdate)},
		{"POST", inc + "/steps/{step}/deny", nil, "deny a pending step", rs.decision(workflows.DenyUpdate)},
		{"POST", inc + "/abort", abortRoles, "abort the incident: compensations run", rs.abort},
		{"POST", inc + "/reroute", abortRoles, "re-route an unknown-asset triage to the asset picked (body: asset, reason): its playbook opens with the triage's alerts, the triage closes", rs.reroute},
		{"POST", inc + "/escalate", readRoles, "escalate to the next tier", callerUpdate(rs, workflows.EscalateUpdate, func(by workflows.Approver, reason string, s decision.Signed) workflows.EscalateInput {
			return workflows.EscalateInput{By: by, Reason: reason, Statement: s}
		}, func(key string, r workflows.EscalateResult) EscalateAnswer {
			return EscalateAnswer{ID: key, Result: EscalationView{Level: r.Level, Tier: r.Tier}}
		})},
		{"POST", inc + "/acknowledge", readRoles, "acknowledge the incident", callerUpdate(rs, workflows.AcknowledgeUpdate, func(by workflows.Approver, reason string, s decision.Signed) workflows.AcknowledgeInput {
			return workflows.AcknowledgeInput{By: by, Reason: reason, Statement: s}
		}, func(key string, r workflows.AcknowledgeResult) AcknowledgeAnswer {
			return AcknowledgeAnswer{ID: key, Result: AcknowledgementView{AcknowledgedAt: r.AcknowledgedAt}}
		})},
		{"POST", inc + "/notes", readRoles, "add a note (stored in the evidence locker)", rs.note},
		{"GET", inc + "/report", readRoles, "the post-incident report (Markdown or JSON)", rs.report},
		{"GET", inc + "/evidence", readRoles, "the evidence manifest with its custody log", rs.manifest},
		{"GET", inc + "/evidence/{sha256}", readRoles, "one evidence object, verified; the read is recorded in the chain of custody", rs.evidenceObject},
	}
}

// handler wraps a route: limits, authentication, roles, and for mutating
// routes a live Keycloak session.
func (rs *Responder) handler(rt ResponderRoute) http.Handler {
	h := rt.handle
	if rt.Method != http.MethodGet {
		h = rs.liveSession(h)
	}
	return rs.limit(rs.authenticate(requireRoles(rt.Roles, h)))
}

// liveSession refuses a token whose Keycloak session was logged out or
// revoked (403), whatever the token's own expiry says.
func (rs *Responder) liveSession(next func(http.ResponseWriter, *http.Request, auth.Identity)) func(http.ResponseWriter, *http.Request, auth.Identity) {
	return func(w http.ResponseWriter, r *http.Request, id auth.Identity) {
		err := rs.live.CheckSession(r.Context(), auth.BearerToken(r))
		switch {
		case err == nil:
			next(w, r, id)
		case errors.Is(err, auth.ErrSessionInactive):
			rs.log.Warn("refused a token of an ended session", "actor", id.Actor(), "sid", id.SessionID, "path", r.URL.Path)
			writeError(w, http.StatusForbidden, apiError{Error: "the token's Keycloak session has ended (logged out or revoked): log in again", Code: "session_revoked"})
		default:
			rs.log.Error("cannot check the token's session", "err", err)
			writeError(w, http.StatusServiceUnavailable, apiError{Error: "the session check is unavailable", Code: "session_check_unavailable"})
		}
	}
}

// incidentRef is an incident as the URL names it.
type incidentRef struct {
	Key        string
	WorkflowID string
	RunID      string
}

// parseRef reads {id} (and ?run=) of r.
func parseRef(r *http.Request) (incidentRef, error) {
	id := r.PathValue("id")
	key := strings.TrimPrefix(id, workflows.IncidentWorkflowID(""))
	if key == "" || len(key) > 512 || !utf8.ValidString(key) || strings.ContainsFunc(key, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return incidentRef{}, fmt.Errorf("incident id %q: want the incident's key (1 to 512 printable characters)", id)
	}
	return incidentRef{Key: key, WorkflowID: workflows.IncidentWorkflowID(key), RunID: r.URL.Query().Get("run")}, nil
}

// approver is the verified identity as the workflow records it.
func approver(id auth.Identity) workflows.Approver {
	return workflows.Approver{Subject: id.Actor(), Username: id.Username, Roles: id.Roles, SourceIP: id.SourceIP}
}

// reasonBody is the body of decisions, aborts, escalations and acks.
type reasonBody struct {
	Reason string `json:"reason"`
}

// maxReason bounds a reason (it goes to the ledger's outcome detail).
const maxReason = 1024

func readReason(w http.ResponseWriter, r *http.Request, required bool) (string, bool) {
	var b reasonBody
	if !readBody(w, r, &b) {
		return "", false
	}
	b.Reason = strings.TrimSpace(b.Reason)
	switch {
	case required && b.Reason == "":
		writeError(w, http.StatusBadRequest, apiError{Error: "a reason is required", Code: "reason_required"})
		return "", false
	case len(b.Reason) > maxReason || !utf8.ValidString(b.Reason):
		writeError(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("reason: at most %d bytes of UTF-8", maxReason), Code: "bad_reason"})
		return "", false
	}
	return b.Reason, true
}

func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := decodeBody(r, v); err != nil {
		var bb *errBadBody
		if errors.As(err, &bb) {
			writeError(w, bb.status, apiError{Error: bb.msg, Code: "bad_body"})
		} else {
			writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_body"})
		}
		return false
	}
	return true
}

// show answers the incident's status.
func (rs *Responder) show(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	ref, err := parseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_id"})
		return
	}
	view, err := rs.status(r.Context(), ref)
	if err != nil {
		rs.fail(w, r, ref, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

// status describes and queries the incident.
func (rs *Responder) status(ctx context.Context, ref incidentRef) (IncidentView, error) {
	d, err := rs.temporal.DescribeWorkflowExecution(ctx, ref.WorkflowID, ref.RunID)
	if err != nil {
		return IncidentView{}, err
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetType().GetName() != workflows.IncidentWorkflow {
		return IncidentView{}, errNotIncident
	}
	runID := info.GetExecution().GetRunId()
	v, err := rs.temporal.QueryWorkflow(ctx, ref.WorkflowID, runID, workflows.StatusQuery, workflows.StatusQueryInput{})
	if err != nil {
		return IncidentView{}, err
	}
	var st workflows.IncidentStatus
	if err := v.Get(&st); err != nil {
		return IncidentView{}, fmt.Errorf("decode status of %s: %w", ref.WorkflowID, err)
	}
	return IncidentView{ID: ref.Key, WorkflowID: ref.WorkflowID, RunID: runID, Execution: executionName(info.GetStatus()), Status: statusView(st)}, nil
}

// decision approves or denies a step through the workflow Update.
func (rs *Responder) decision(update string) func(http.ResponseWriter, *http.Request, auth.Identity) {
	return func(w http.ResponseWriter, r *http.Request, id auth.Identity) {
		ref, err := parseRef(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_id"})
			return
		}
		step := r.PathValue("step")
		reason, ok := readReason(w, r, update == workflows.DenyUpdate)
		if !ok {
			return
		}
		if !rs.secondFactorOK(w, r, ref, step, id, update == workflows.ApproveUpdate) {
			return
		}
		stmt, ok := rs.sign(w, r, ref, decision.Kind(update), step, id, reason)
		if !ok {
			return
		}
		var res workflows.DecisionResult
		in := workflows.DecisionInput{StepID: step, Approver: approver(id), Reason: reason, Statement: stmt}
		if err := rs.updateRefreshing(r.Context(), ref, update, in, &res); err != nil {
			rs.fail(w, r, ref, err)
			return
		}
		writeJSON(w, http.StatusOK, DecisionAnswer{ID: ref.Key, Decision: update, Result: DecisionResultView{
			StepID: res.StepID, Status: res.Status, Approvals: res.Approvals, Quorum: res.Quorum}})
	}
}

// callerUpdate sends Update name whose input is made from the verified
// caller and the request's reason (escalate, acknowledge), and answers
// with the view answer makes of its result.
func callerUpdate[In, Out, A any](rs *Responder, name string, input func(by workflows.Approver, reason string, s decision.Signed) In,
	answer func(key string, res Out) A) func(http.ResponseWriter, *http.Request, auth.Identity) {
	return func(w http.ResponseWriter, r *http.Request, id auth.Identity) {
		ref, err := parseRef(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_id"})
			return
		}
		reason, ok := readReason(w, r, false)
		if !ok {
			return
		}
		stmt, ok := rs.sign(w, r, ref, decision.Kind(name), "", id, reason)
		if !ok {
			return
		}
		var res Out
		if err := rs.updateRefreshing(r.Context(), ref, name, input(approver(id), reason, stmt), &res); err != nil {
			rs.fail(w, r, ref, err)
			return
		}
		writeJSON(w, http.StatusOK, answer(ref.Key, res))
	}
}

// abort sends the abort signal; the workflow runs the compensations.
func (rs *Responder) abort(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ref, err := parseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_id"})
		return
	}
	reason, ok := readReason(w, r, true)
	if !ok {
		return
	}
	if !id.HasSecondFactor() {
		writeError(w, http.StatusForbidden, apiError{
			Error: fmt.Sprintf("aborting undoes containment and needs a second factor: log in again with your one-time code (token amr %v)", id.AMR),
			Code:  "mfa_required"})
		return
	}
	stmt, ok := rs.sign(w, r, ref, decision.Abort, "", id, reason)
	if !ok {
		return
	}
	if err := rs.temporal.SignalWorkflow(r.Context(), ref.WorkflowID, "", workflows.AbortSignal,
		workflows.AbortInput{By: approver(id), Reason: reason, Statement: stmt}); err != nil {
		rs.fail(w, r, ref, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": ref.Key, "status": "abort requested"})
}

// rerouteBody is the body of POST /reroute.
type rerouteBody struct {
	Asset  string `json:"asset"`
	Reason string `json:"reason"`
}

// reroute sends the reroute update: the workflow resolves the asset, opens
// the incident of its playbook and closes the triage.
func (rs *Responder) reroute(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ref, err := parseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_id"})
		return
	}
	var b rerouteBody
	if !readBody(w, r, &b) {
		return
	}
	b.Asset, b.Reason = strings.TrimSpace(b.Asset), strings.TrimSpace(b.Reason)
	switch {
	case b.Asset == "" || len(b.Asset) > 253:
		writeError(w, http.StatusBadRequest, apiError{Error: "asset is required (at most 253 bytes)", Code: "bad_body"})
		return
	case b.Reason == "" || len(b.Reason) > maxReason:
		writeError(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("reason is required (at most %d bytes)", maxReason), Code: "bad_body"})
		return
	}
	stmt, ok := rs.sign(w, r, ref, decision.Reroute, b.Asset, id, b.Reason)
	if !ok {
		return
	}
	var res workflows.RerouteResult
	in := workflows.RerouteInput{By: approver(id), Asset: b.Asset, Reason: b.Reason, Statement: stmt}
	if err := rs.updateRefreshing(r.Context(), ref, workflows.RerouteUpdate, in, &res); err != nil {
		rs.fail(w, r, ref, err)
		return
	}
	writeJSON(w, http.StatusOK, RerouteAnswer{ID: ref.Key, Result: RerouteView{
		ID: strings.TrimPrefix(res.WorkflowID, workflows.IncidentWorkflowID("")), WorkflowID: res.WorkflowID, Playbook: res.Playbook, Asset: res.Asset}})
}

// noteBody is the body of POST /notes.
type noteBody struct {
	Text string `json:"text"`
}

// note stores a note in the incident's evidence, collected by the caller.
func (rs *Responder) note(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ref, err := parseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_id"})
		return
	}
	var b noteBody
	if !readBody(w, r, &b) {
		return
	}
	if strings.TrimSpace(b.Text) == "" || !utf8.ValidString(b.Text) {
		writeError(w, http.StatusBadRequest, apiError{Error: "text: a non-empty UTF-8 note is required", Code: "bad_note"})
		return
	}
	incidentID, ok := rs.evidenceIncident(w, r, ref)
	if !ok {
		return
	}
	now := rs.now().UTC()
	name := "notes/" + now.Format("20060102T150405.000000000Z") + ".md"
	body := b.Text
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	eref, err := rs.evidence.Put(r.Context(), evidence.PutRequest{
		Incident: incidentID, Name: name, Class: evidence.ClassOperational, MediaType: "text/markdown",
		CollectedBy: id.Actor(), Source: "iru-api:notes from " + id.SourceIP, Body: strings.NewReader(body),
	})
	if err != nil {
		rs.log.Error("store note", "incident", incidentID, "err", err)
		writeError(w, http.StatusInternalServerError, apiError{Error: "the note could not be stored", Code: "evidence_failed"})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": ref.Key, "incident_id": incidentID, "name": name, "ref": string(eref)})
}

// maxReport bounds a report read into memory (it is verified to the end
// before the first byte is sent).
const maxReport = 32 << 20

// report answers the newest post-incident report, Markdown unless
// ?format=json or Accept asks for JSON.
func (rs *Responder) report(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ref, err := parseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_id"})
		return
	}
	name, media := report.MarkdownName, "text/markdown; charset=utf-8"
	switch f := r.URL.Query().Get("format"); {
	case f == "json" || (f == "" && strings.Contains(r.Header.Get("Accept"), "application/json")):
		name, media = report.JSONName, "application/json"
	case f == "" || f == "markdown" || f == "md":
	default:
		writeError(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("format %q: want markdown or json", f), Code: "bad_format"})
		return
	}
	incidentID, ok := rs.evidenceIncident(w, r, ref)
	if !ok {
		return
	}
	found, ok := rs.lastEvidence(w, r, incidentID, func(m evidence.Meta) bool { return m.Name == name })
	if !ok {
		return
	}
	if found == nil {
		writeError(w, http.StatusNotFound, apiError{Error: "no report yet: it is written in the post-incident phase", Code: "no_report"})
		return
	}
	rc, _, err := rs.evidence.Get(r.Context(), found.Ref, evidence.Reader{Identity: id.Actor(), Reason: "report read through the responder API from " + id.SourceIP})
	if err == nil {
		var b []byte
		b, err = io.ReadAll(io.LimitReader(rc, maxReport+1))
		_ = rc.Close()
		if err == nil && len(b) > maxReport {
			err = fmt.Errorf("report %s is larger than %d bytes", found.Ref, maxReport)
		}
		if err == nil {
			w.Header().Set("Content-Type", media)
			w.Header().Set("X-Evidence-Ref", string(found.Ref))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(b)
			return
		}
	}
	rs.log.Error("read report", "ref", found.Ref, "err", err)
	writeError(w, http.StatusInternalServerError, apiError{Error: "the report could not be read or does not verify", Code: "evidence_failed"})
}

// evidenceIncident checks that the evidence locker is configured and looks
// up the incident id (the name of its evidence) of ref; on failure it has
// answered the request.
func (rs *Responder) evidenceIncident(w http.ResponseWriter, r *http.Request, ref incidentRef) (string, bool) {
	if rs.evidence == nil {
		writeError(w, http.StatusServiceUnavailable, apiError{Error: "the evidence locker is not configured", Code: "no_evidence"})
		return "", false
	}
	view, err := rs.status(r.Context(), ref)
	if err != nil {
		rs.fail(w, r, ref, err)
		return "", false
	}
	return view.Status.IncidentID, true
}

// manifest answers the incident's evidence manifest and custody log.
func (rs *Responder) manifest(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	ref, err := parseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_id"})
		return
	}
	incidentID, ok := rs.evidenceIncident(w, r, ref)
	if !ok {
		return
	}
	m, err := rs.evidence.Manifest(r.Context(), incidentID)
	if err != nil {
		rs.log.Error("evidence manifest", "incident", incidentID, "err", err)
		writeError(w, http.StatusInternalServerError, apiError{Error: "the evidence manifest could not be read or does not verify", Code: "evidence_failed"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": ref.Key, "incident_id": incidentID, "manifest": m})
}

func notifyEvent(now time.Time, ip string, failures int, window time.Duration, summary string) notify.Event {
	return notify.Event{Kind: notify.FailedAuthThreshold, Summary: summary, At: now.UTC(), Severity: "high",
		Details: map[string]string{"source_ip": ip, "failures": fmt.Sprint(failures), "window": window.String(), "surface": "responder-api"}}
}
