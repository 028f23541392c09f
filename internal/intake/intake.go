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
// (parse.Budget; with size_bytes and limit_bytes); 429 with Retry-After
// over a source's or a detector's rate or concurrency limit; 503 with
// Retry-After when the spool (or the audit log) cannot take more or the
// detector holds its whole spool quota. A refused request is refused
// whole: nothing of it is spooled.
//
// Cheap refusals come first: the source's limits, then everything the
// headers show (the detector exists, its client certificate, the API key,
// or the signature's form and timestamp), then the detector's limits, all
// before a byte of the body is read; the body is then read up to the
// detector's budget. A refused request's body is never read, and its
// connection is closed.
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
	"net"
	"net/http"
	"path"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/intake/parse"
	"github.com/iru-responder/responder/internal/intake/route"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/internal/ratelimit"
	"github.com/iru-responder/responder/workflows"
)

// Pattern is the ServeMux pattern the handler expects (it reads the
// "detector" path value, or else the last path segment).
const Pattern = "POST /v1/alerts/{detector}"

// DefaultMaxBodyBytes is the default request body limit (1 MiB).
const DefaultMaxBodyBytes = 1 << 20

// LabelUnmapped marks an alert whose asset the inventory did not know.
const LabelUnmapped = "iru.unmapped"

// LabelRoutedPlaybook is, on an alert whose asset the inventory did not
// know, the playbook the routing rules chose for it; the alert opens a
// triage ([workflows.UnknownAssetPlaybook]) instead.
const LabelRoutedPlaybook = "iru.routed_playbook"

// RuleUnknownAsset is the rule name of the routing to the triage.
const RuleUnknownAsset = "unknown-asset"

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
	// Limits are the per-source and per-detector rate and concurrency
	// limits (zero: DefaultLimits).
	Limits LimitsConfig
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
	Requests, Accepted, Rejected, Unauthorized, Unavailable, Limited int64
	// BodyBytes counts the request body bytes the handler read.
	BodyBytes int64
}

// Handler is the intake HTTP handler.
type Handler struct {
	opts Options

	sources, detectors *ratelimit.Set

	requests, accepted, rejected, unauthorized, unavailable, limited, bodyBytes atomic.Int64
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
	if opts.Limits == (LimitsConfig{}) {
		opts.Limits = DefaultLimits()
	}
	if err := opts.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("intake: limits: %w", err)
	}
	h := &Handler{opts: opts, sources: ratelimit.NewSet(opts.Limits.MaxSources, opts.Limits.SourceIdle),
		detectors: ratelimit.NewSet(1024, opts.Limits.SourceIdle)}
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
		Unauthorized: h.unauthorized.Load(), Unavailable: h.unavailable.Load(), Limited: h.limited.Load(),
		BodyBytes: h.bodyBytes.Load()}
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
	now := h.opts.Now()
	lim := h.opts.Limits
	source := h.source(r)
	release, ref := h.sources.Acquire(source, rate.Limit(lim.SourceRate), lim.SourceBurst, lim.SourceConcurrency, now)
	if ref != nil {
		h.tooMany(w, r, "source "+ref.Why, ref.RetryAfter)
		return
	}
	defer release()
	pending, err := h.opts.Auth.Precheck(r, name)
	if err != nil {
		h.denyAuth(w, r, err)
		return
	}
	d := pending.Detector()
	rl, burst, conc := rate.Limit(lim.DetectorRate), lim.DetectorBurst, lim.DetectorConc
	if d.Limits.Rate > 0 {
		rl = rate.Limit(d.Limits.Rate)
	}
	if d.Limits.Burst > 0 {
		burst = d.Limits.Burst
	}
	if d.Limits.Concurrency > 0 {
		conc = d.Limits.Concurrency
	}
	releaseDetector, ref := h.detectors.Acquire(d.Name, rl, burst, conc, now)
	if ref != nil {
		h.tooMany(w, r, "detector "+ref.Why, ref.RetryAfter)
		return
	}
	defer releaseDetector()
	if !pending.NeedsBody && !h.reserveRecord(w, r, pending.Identity()) {
		return // an API key: the record's room is reserved before the body is read
	}
	budget := h.opts.MaxBodyBytes
	if d.Limits.MaxBodyBytes > 0 {
		budget = min(budget, d.Limits.MaxBodyBytes)
	}
	if r.ContentLength > budget {
		// Refused from the header alone (an authenticated detector or a
		// fresh signature): the body is not read.
		w.Header().Set("Connection", "close")
		h.fail(w, http.StatusRequestEntityTooLarge, &parse.Error{Msg: fmt.Sprintf("body larger than %d bytes", budget)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, &countingReader{ReadCloser: r.Body, n: &h.bodyBytes}, budget))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, http.StatusRequestEntityTooLarge, &parse.Error{Msg: fmt.Sprintf("body larger than %d bytes", budget)})
			return
		}
		h.fail(w, http.StatusBadRequest, &parse.Error{Msg: "could not read the body"})
		return
	}
	needed := pending.NeedsBody
	id, err := pending.Finish(body)
	if err != nil {
		h.denyAuth(w, r, err)
		return
	}
	if needed && !h.reserveRecord(w, r, id) {
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
	now = now.UTC()
	digest := rawDigest(body)
	items := make([]spool.Item, 0, len(alerts))
	ids := make([]string, 0, len(alerts))
	scope := h.scopeOf(id)
	for i := range alerts {
		d := decideWith(r.Context(), h.opts.Inventory, h.opts.Rules, &alerts[i], true, false)
		field := "alerts[" + strconv.Itoa(i) + "]"
		if err := scope.Check(id.Detector, d.Asset.Asset.Name, d.Labels); err != nil {
			h.refuse(w, r, id, RefusedScope, http.StatusForbidden, &parse.Error{Field: field, Msg: err.Error()})
			return
		}
		rec := d.Record(id.String(), now)
		rec.Alert.RawDigest = digest + "#" + strconv.Itoa(i)
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
		// The forwarder takes the record as it is (Decoded) instead of
		// decoding what was just encoded.
		items = append(items, spool.Item{Key: rec.Key, Data: data, Owner: id.Detector, Decoded: rec})
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
		w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfterSeconds(h.opts.RetryAfter)))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "intake temporarily cannot accept alerts; retry later"})
		return
	}
	h.accepted.Add(int64(len(items)))
	writeJSON(w, http.StatusAccepted, Response{Accepted: len(ids), IDs: ids})
}

// reserveRecord names the authenticated detector in the request's
// access-log record and reserves the record's room before anything is
// read or spooled, so an accepted alert's record is never dropped. When
// the audit log has no room in time it answers 503 and reports false.
func (h *Handler) reserveRecord(w http.ResponseWriter, r *http.Request, id auth.Identity) bool {
	if err := accesslog.Authenticated(r.Context(), "detector:"+id.String()); err != nil {
		h.unavailable.Add(1)
		h.opts.Log.Error("intake: request refused, the audit log has no room for its record", "detector", id.String(), "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfterSeconds(h.opts.RetryAfter)))
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "intake temporarily cannot accept alerts; retry later"})
		return false
	}
	accesslog.SetDetail(r.Context(), "auth="+string(id.Method))
	return true
}

// source is the client address of r: the one the API server resolved
// (trusted proxies considered), or the peer's.
func (h *Handler) source(r *http.Request) string {
	if ip := accesslog.SourceIP(r.Context()); ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// denyAuth answers 401 to a request whose credentials failed, without
// reading its body, and closes the connection (so the server does not
// read the rest of the body either).
func (h *Handler) denyAuth(w http.ResponseWriter, r *http.Request, err error) {
	h.unauthorized.Add(1)
	accesslog.SetDetail(r.Context(), auth.Reason(err))
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
}

// tooMany answers 429 with Retry-After, without reading the body.
func (h *Handler) tooMany(w http.ResponseWriter, r *http.Request, why string, after time.Duration) {
	h.limited.Add(1)
	accesslog.SetDetail(r.Context(), why)
	w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfterSeconds(after)))
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many requests; retry later"})
}

// countingReader counts the bytes read from a request body.
type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
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

// rawDigest names the raw request body by content: "sha256:<hex>" (the
// alert's index in the body is appended).
func rawDigest(body []byte) string {
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
// correlation key; an alert whose asset the inventory does not know opens
// a triage. The handler uses it; so does `starter rules test`.
func Decide(ctx context.Context, inv *inventory.Inventory, rules *route.Rules, a *parse.Alert) Decision {
	return decide(ctx, inv, rules, a, true)
}

// DecideRules is [Decide] for a check of the routing rules without an
// inventory (`starter rules test` with no Proxmox VE): the asset the
// detector named is routed as if an inventory knew it.
func DecideRules(ctx context.Context, inv *inventory.Inventory, rules *route.Rules, a *parse.Alert) Decision {
	return decide(ctx, inv, rules, a, false)
}

func decide(ctx context.Context, inv *inventory.Inventory, rules *route.Rules, a *parse.Alert, triage bool) Decision {
	return decideWith(ctx, inv, rules, a, triage, true)
}

// decideWith is decide; without explain the routing's reasons (Reason,
// Skipped) are left empty, which is all the handler needs.
func decideWith(ctx context.Context, inv *inventory.Inventory, rules *route.Rules, a *parse.Alert, triage, explain bool) Decision {
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
	var d route.Decision
	if explain {
		d = rules.Route(in)
	} else {
		d = rules.Choose(in)
	}
	if !m.Mapped && triage {
		// No action can be aimed at an asset no inventory knows: the alert
		// opens a triage, keyed by the name the detector gave, and keeps
		// the playbook its rule chose for the responder.
		labels[LabelRoutedPlaybook] = d.Playbook
		if explain {
			d.Reason = fmt.Sprintf("asset %q is in no inventory: triage (the rules chose %s: %s)", m.Asset.Name, d.Playbook, d.Reason)
		}
		d.Playbook, d.RuleName = workflows.UnknownAssetPlaybook, RuleUnknownAsset
		d.CorrelateBy = []string{route.PartPlaybook, route.PartAsset}
	}
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
		Resolved: d.Alert.Resolved,
		OpenedBy: openedBy,
		Alert: workflows.Alert{
			ID:          newID(),
			Fingerprint: d.Alert.Fingerprint,
			Source:      d.Alert.Source,
			Rule:        d.Alert.Rule,
			Severity:    d.Alert.Severity,
			Asset:       d.Asset.Asset.Name,
			AssetRef:    d.assetRef(),
			Summary:     d.Alert.Summary,
			Labels:      d.Labels,
			ObservedAt:  d.Alert.ObservedAt,
			ReceivedAt:  now,
			Resolved:    d.Alert.Resolved,
			ResolvedAt:  d.Alert.EndedAt,
		},
	}
}

// assetRef is where the inventory found the alert's asset; nil when the
// inventory did not know it (the alert's own names never locate a target).
func (d Decision) assetRef() *activities.AssetRef {
	a := d.Asset.Asset
	if !d.Asset.Mapped || a.Node == "" || a.VMID <= 0 {
		return nil
	}
	return &activities.AssetRef{Name: a.Name, Node: a.Node, VMID: a.VMID}
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
