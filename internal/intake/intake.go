// Package intake is the detector intake of the API server: an
// [http.Handler] that authenticates a detector's POST, parses its payload
// exactly (package parse), maps each alert to a canonical asset (package
// inventory), routes it to a playbook and computes its correlation key
// (package route), records it durably in the spool (package spool) and
// answers 202 only then. A [forward.Forwarder] delivers the spool to
// Temporal. [Service] wires all of it from a [Config].
//
// Endpoint: POST {prefix}/{detector}, where detector is a configured
// detector name; its format (alertmanager, falco, wazuh, generic) picks the
// parser. Answers: 202 {"accepted":N,"ids":[...]}; 400 with
// {"error":"...","field":"alerts[3].startsAt"} for bad input; 401
// {"error":"unauthorized"}; 403 for an alert outside the detector's scope;
// 405; 413 for a body over the limit or an alert over its byte budget
// (parse.Budget; with size_bytes and limit_bytes); 503 with Retry-After
// when the spool cannot take more or the detector holds its whole spool
// quota. A refused request is refused whole: nothing of it is spooled.
package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/intake/parse"
	"github.com/iru-responder/responder/internal/intake/route"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/workflows"
)

// Pattern is the ServeMux pattern the handler expects (it reads the
// "detector" path value, or else the last path segment).
const Pattern = "POST /v1/alerts/{detector}"

// DefaultMaxBodyBytes is the default request body limit (1 MiB).
const DefaultMaxBodyBytes = 1 << 20

// LabelUnmapped marks an alert whose asset the inventory did not know.
const LabelUnmapped = "iru.unmapped"

// maxKey bounds a correlation key (it becomes a workflow id).
const maxKey = 512

// Options are the handler's collaborators and limits.
type Options struct {
	Auth      *auth.Authenticator
	Inventory *inventory.Inventory
	Rules     *route.Rules
	Spool     *spool.Spool
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// RetryAfter is the Retry-After of a 503 (default 5 s).
	RetryAfter time.Duration
	// Log receives internal failures (nil: discarded).
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Budget bounds every alert in bytes (zero fields: defaults).
	Budget parse.Budget
	// Metrics count refusals (nil: none).
	Metrics *Metrics
	// OnRefusal, if set, hears of every request refused for what it
	// carried (budget, scope, quota); it must be quick.
	OnRefusal func(Refusal)
}

// Stats counts requests and alerts since the handler was created.
type Stats struct {
	Requests, Accepted, Rejected, Unauthorized, Unavailable int64
}

// Handler is the intake HTTP handler.
type Handler struct {
	opts Options

	requests, accepted, rejected, unauthorized, unavailable atomic.Int64
}

// NewHandler checks opts and returns the handler.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Auth == nil || opts.Inventory == nil || opts.Rules == nil || opts.Spool == nil {
		return nil, errors.New("intake: Auth, Inventory, Rules and Spool are required")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts}
	for _, name := range opts.Auth.Detectors() {
		d, _ := opts.Auth.Detector(name)
		if _, err := parse.ForFormat(d.Format); err != nil {
			return nil, fmt.Errorf("intake: detector %q: %w", name, err)
		}
	}
	return h, nil
}

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	return Stats{Requests: h.requests.Load(), Accepted: h.accepted.Load(), Rejected: h.rejected.Load(),
		Unauthorized: h.unauthorized.Load(), Unavailable: h.unavailable.Load()}
}

// Response is the body of a 202.
type Response struct {
	Accepted int      `json:"accepted"`
	IDs      []string `json:"ids"`
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, http.StatusMethodNotAllowed, &parse.Error{Msg: "method not allowed"})
		return
	}
	name := r.PathValue("detector")
	if name == "" {
		name = path.Base(r.URL.Path)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, http.StatusRequestEntityTooLarge, &parse.Error{Msg: fmt.Sprintf("body larger than %d bytes", h.opts.MaxBodyBytes)})
			return
		}
		h.fail(w, http.StatusBadRequest, &parse.Error{Msg: "could not read the body"})
		return
	}
	id, err := h.opts.Auth.Authenticate(r, name, body)
	if err != nil {
		h.unauthorized.Add(1)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	// The parser follows the authenticated detector's format, so detectors
	// added to the detectors file are served without a restart.
	parser, err := parse.ForFormat(id.Format)
	if err != nil {
		h.fail(w, http.StatusBadRequest, &parse.Error{Msg: err.Error()})
		return
	}
	alerts, err := parse.Checked(parser, h.opts.Budget)(body)
	if err != nil {
		var be *parse.BudgetError
		if errors.As(err, &be) {
			h.refuse(w, r, id, RefusedBudget, http.StatusRequestEntityTooLarge, be)
			return
		}
		var pe *parse.Error
		if !errors.As(err, &pe) {
			pe = &parse.Error{Msg: err.Error()}
		}
		h.fail(w, http.StatusBadRequest, pe)
		return
	}
	now := h.opts.Now().UTC()
	rawRef := rawRef(body)
	items := make([]spool.Item, 0, len(alerts))
	ids := make([]string, 0, len(alerts))
	scope := h.scopeOf(id)
	for i := range alerts {
		d := Decide(r.Context(), h.opts.Inventory, h.opts.Rules, &alerts[i])
		field := "alerts[" + strconv.Itoa(i) + "]"
		if err := scope.Check(id.Detector, d.Asset.Asset.Name, d.Labels); err != nil {
			h.refuse(w, r, id, RefusedScope, http.StatusForbidden, &parse.Error{Field: field, Msg: err.Error()})
			return
		}
		rec := d.Record(id.String(), now)
		rec.Alert.RawRef = rawRef + "#" + strconv.Itoa(i)
		data, err := rec.Marshal()
		if err != nil {
			h.opts.Log.Error("intake: encode alert", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
			return
		}
		if err := h.opts.Budget.CheckRecord(len(data), field); err != nil {
			h.refuse(w, r, id, RefusedBudget, http.StatusRequestEntityTooLarge, err)
			return
		}
		items = append(items, spool.Item{Key: rec.Key, Data: data, Owner: id.Detector})
		ids = append(ids, rec.Alert.ID)
	}
	if _, err := h.opts.Spool.Append(r.Context(), items); err != nil {
		if errors.Is(err, spool.ErrQuota) {
			h.refuse(w, r, id, RefusedQuota, http.StatusServiceUnavailable,
				fmt.Errorf("detector %q has its whole spool quota waiting for delivery; retry later", id.Detector))
			return
		}
		h.unavailable.Add(1)
		if !errors.Is(err, spool.ErrFull) {
			h.opts.Log.Error("intake: spool append", "err", err)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(h.opts.RetryAfter.Round(time.Second)/time.Second)))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "intake temporarily cannot accept alerts; retry later"})
		return
	}
	h.accepted.Add(int64(len(items)))
	writeJSON(w, http.StatusAccepted, Response{Accepted: len(ids), IDs: ids})
}

func (h *Handler) fail(w http.ResponseWriter, status int, e *parse.Error) {
	h.rejected.Add(1)
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// rawRef names the raw payload by content: "sha256:<hex>" (the alert's
// index in the payload is appended).
func rawRef(body []byte) string {
	s := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Decision is what the intake decided about one parsed alert.
type Decision struct {
	Alert  parse.Alert
	Asset  inventory.Match
	Route  route.Decision
	Key    string
	Labels map[string]string
}

// WorkflowID is the incident workflow id of the decision's key.
func (d Decision) WorkflowID() string { return workflows.IncidentWorkflowID(d.Key) }

// Decide maps a parsed alert to its asset, routes it and computes its
// correlation key. The handler uses it; so does `starter rules test`.
func Decide(ctx context.Context, inv *inventory.Inventory, rules *route.Rules, a *parse.Alert) Decision {
	m := inv.Resolve(ctx, a.AssetHints)
	labels := a.Labels
	if !m.Mapped {
		labels = make(map[string]string, len(a.Labels)+1)
		for k, v := range a.Labels {
			labels[k] = v
		}
		labels[LabelUnmapped] = "true"
	}
	in := route.Input{Source: a.Source, Rule: a.Rule, Severity: a.Severity, Labels: labels, Asset: m.Asset.Name, AssetTags: m.Asset.Tags}
	d := rules.Route(in)
	return Decision{Alert: *a, Asset: m, Route: d, Key: boundKey(d.Key(in)), Labels: labels}
}

// boundKey keeps a key short enough for a workflow id: a long key keeps
// its start and gets a hash of the whole.
func boundKey(k string) string {
	if len(k) <= maxKey {
		return k
	}
	s := sha256.Sum256([]byte(k))
	cut := maxKey - 34
	for cut > 0 && k[cut]&0xC0 == 0x80 {
		cut--
	}
	return k[:cut] + ":#" + hex.EncodeToString(s[:16])
}

// Record builds the spool record of the decision, received now from the
// authenticated detector openedBy.
func (d Decision) Record(openedBy string, now time.Time) forward.Record {
	return forward.Record{
		Key:      d.Key,
		Playbook: d.Route.Playbook,
		RuleName: d.Route.RuleName,
		Mapped:   d.Asset.Mapped,
		Node:     d.Asset.Asset.Node,
		VMID:     d.Asset.Asset.VMID,
		Resolved: d.Alert.Resolved,
		OpenedBy: openedBy,
		Alert: workflows.Alert{
			ID:          newID(),
			Fingerprint: d.Alert.Fingerprint,
			Source:      d.Alert.Source,
			Rule:        d.Alert.Rule,
			Severity:    d.Alert.Severity,
			Asset:       d.Asset.Asset.Name,
			Summary:     d.Alert.Summary,
			Labels:      d.Labels,
			ObservedAt:  d.Alert.ObservedAt,
			ReceivedAt:  now,
		},
	}
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
