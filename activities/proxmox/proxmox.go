// Package proxmox implements the pve.* response actions of the activity
// catalog against the Proxmox VE API, through the go-proxmox client and, for
// what it lacks (typed firewall options with enable=0, snapshots with a
// description, filtered storage listings, API tokens), its generic calls.
//
// Every action is safe to retry after a crash at any point:
//
//   - pve.isolate writes a quarantine record (the exact prior firewall
//     options, rules, netN strings, tags and description, compressed) into
//     the container description in the same config update that makes its
//     first change, after storing the same prior state as evidence. A retry
//     finds the record and continues from it, so an already isolated state
//     is never recorded as "prior". Its firewall rule (type group, at
//     position 0, naming the quarantine security group of the allow list)
//     carries the comment iru:<incident>; records of releases that disabled
//     the container's own rules instead are still continued and lifted.
//   - pve.unisolate restores the recorded state and removes the record last,
//     so a retry after a partial restore finishes it; without a record there
//     is nothing of this incident to lift.
//   - pve.snapshot names the snapshot after the incident and marks its
//     description with iru:<incident>: a retry finds its own snapshot.
//   - pve.backup marks the archive notes with iru:<idempotency key>: a retry
//     finds its own archive. Tasks started by an earlier attempt that are
//     still running are waited for, not started again.
//   - pve.rotate_token names the new token after the idempotency key and
//     keeps the secret-sink reference in the token comment (see RotateToken).
//
// Asynchronous calls wait for their task, heartbeat on every poll, and only
// the exit status "OK" counts as success. Errors carry the catalog's stable
// types: final ones (NotFound, BadParams, Permission, Precondition,
// Conflict) are non-retryable application errors; 5xx, 429, locks, digest
// conflicts, timeouts and connection errors are retryable
// ([ErrTypeUnavailable], [ErrTypeTaskFailed], [ErrTypeVerify]).
//
// In a drill (ActionInput.Drill) only containers carrying the drill tag
// (IRU_PVE_DRILL_TAG) are acted on; anything else fails with Precondition.
package proxmox

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	goprox "github.com/luthermonson/go-proxmox"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/tlsutil"
)

// Retryable error types (the workflow retries them under the catalog's
// bounded retry policy).
const (
	// ErrTypeUnavailable: the API answered 5xx/429, timed out, or could not
	// be reached; or the container is locked by another task.
	ErrTypeUnavailable = "PVEUnavailable"
	// ErrTypeTaskFailed: a PVE task ended with an exit status other than OK.
	ErrTypeTaskFailed = "PVETaskFailed"
	// ErrTypeVerify: the state read back after a change is not the one
	// the action set (someone changed it concurrently, or the change was lost).
	ErrTypeVerify = "PVEVerifyFailed"
)

// Activities are the pve.* actions. Create them with [New]; they are safe
// for concurrent use.
type Activities struct {
	cfg      Config
	evidence activities.EvidenceStore
	secrets  activities.SecretSink
	hc       *http.Client
	allow    []netip.Prefix
	now      func() time.Time
	// recordKey authenticates quarantine records (see record.go).
	recordKey RecordKey
	// groups are the quarantine security groups seen complete (group.go).
	groups groupCache
	// legacyIsolation isolates fresh containers as releases before the
	// security group did (the benchmark's same-run baseline).
	legacyIsolation bool

	mu          sync.RWMutex
	tokenID     string
	tokenSecret string
	client      *goprox.Client
}

// Option adjusts [New].
type Option func(*options)

type options struct {
	wrap      func(http.RoundTripper) http.RoundTripper
	now       func() time.Time
	recordKey RecordKey
}

// WithTransport wraps the HTTP transport (for metrics or tests that count
// API calls). The wrapper sees every request, including failed ones.
func WithTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) { o.wrap = wrap }
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// New returns the activities for cfg. evidence receives prior states and
// collected evidence; secrets receives rotated API token secrets.
func New(cfg Config, evidence activities.EvidenceStore, secrets activities.SecretSink, opts ...Option) (*Activities, error) {
	if err := config.FillDefaults(&cfg); err != nil {
		return nil, fmt.Errorf("proxmox activities: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxmox activities: %w", err)
	}
	if evidence == nil || secrets == nil {
		return nil, errors.New("proxmox activities: evidence store and secret sink are required")
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.recordKey == nil {
		return nil, errors.New("proxmox activities: a key for the quarantine records is required (WithRecordKey)")
	}
	return newActivities(cfg, evidence, secrets, opts)
}

// NewInventory returns a read-only client for [Activities.Containers]: the
// API server's detector intake maps alerts to containers with it. Its
// actions must not be registered (they have no evidence store).
func NewInventory(cfg Config, opts ...Option) (*Activities, error) {
	if err := config.FillDefaults(&cfg); err != nil {
		return nil, fmt.Errorf("proxmox inventory: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxmox inventory: %w", err)
	}
	return newActivities(cfg, nil, nil, opts)
}

func newActivities(cfg Config, evidence activities.EvidenceStore, secrets activities.SecretSink, opts []Option) (*Activities, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	allow, err := activities.ParseCIDRList(strings.Join(cfg.AllowCIDRs, ","))
	if err != nil {
		return nil, fmt.Errorf("proxmox activities: IRU_PVE_ALLOW_CIDRS: %w", err)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // documented opt-in
	if cfg.CAFile != "" {
		pool, err := tlsutil.CertPool(cfg.CAFile, true)
		if err != nil {
			return nil, fmt.Errorf("proxmox activities: IRU_PVE_CA_FILE: %w", err)
		}
		tlsCfg.RootCAs = pool
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = tlsCfg
	base.MaxIdleConnsPerHost = 32
	var rt http.RoundTripper = base
	if o.wrap != nil {
		rt = o.wrap(rt)
	}
	a := &Activities{
		cfg: cfg, evidence: evidence, secrets: secrets, allow: allow, now: time.Now,
		hc:      &http.Client{Transport: errorTransport{next: rt}, Timeout: cfg.HTTPTimeout},
		tokenID: cfg.TokenID, tokenSecret: cfg.TokenSecret,
	}
	if o.now != nil {
		a.now = o.now
	}
	a.recordKey = o.recordKey
	a.client = a.newClient(cfg.TokenID, cfg.TokenSecret)
	return a, nil
}

// newClient returns a go-proxmox client authenticating with the API token.
func (a *Activities) newClient(tokenID, secret string) *goprox.Client {
	return goprox.NewClient(a.cfg.URL, goprox.WithAPIToken(tokenID, secret), goprox.WithHTTPClient(a.hc))
}

// current returns the client and the token id it uses.
func (a *Activities) current() (*goprox.Client, string) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.client, a.tokenID
}

// Register registers every pve.* activity under its catalog name. No retry
// policy is set here: the workflow uses the catalog's recommended options.
func (a *Activities) Register(r activities.Registry) { activities.RegisterAll(r, a.byName()) }

func (a *Activities) byName() map[string]activities.Func {
	return map[string]activities.Func{
		activities.PVEResolveAsset:    a.ResolveAsset,
		activities.PVEIsolate:         a.Isolate,
		activities.PVEUnisolate:       a.Unisolate,
		activities.PVESnapshot:        a.Snapshot,
		activities.PVECollectEvidence: a.CollectEvidence,
		activities.PVEStop:            a.Stop,
		activities.PVEShutdown:        a.Shutdown,
		activities.PVEStart:           a.Start,
		activities.PVEBackup:          a.Backup,
		activities.PVERestore:         a.Restore,
		activities.PVERotateToken:     a.RotateToken,
		activities.PVEFirewallEnable:  a.FirewallEnable,
		activities.PVEFirewallRestore: a.FirewallRestore,
	}
}

// ---- errors ----

// APIError is a non-2xx answer of the PVE API, with PVE's message (which
// go-proxmox would otherwise drop for 500s).
type APIError struct {
	Method string
	// Path is relative to /api2/json, without the query.
	Path   string
	Status int
	// Message is PVE's "message" (or the HTTP reason phrase).
	Message string
	// Params are PVE's per-parameter errors of a 400.
	Params map[string]string
}

// Error implements error.
func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.detail())
}

func (e *APIError) detail() string {
	d := e.Message
	if len(e.Params) > 0 {
		b, _ := json.Marshal(e.Params)
		d += " " + string(b)
	}
	return d
}

// errorTransport turns every answer of 400 or more into an *APIError that
// keeps PVE's message; go-proxmox passes transport errors through unchanged.
type errorTransport struct{ next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t errorTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if res.StatusCode < 400 {
		return res, nil
	}
	defer func() { _ = res.Body.Close() }()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var body struct {
		Message string         `json:"message"`
		Errors  map[string]any `json:"errors"`
	}
	_ = json.Unmarshal(raw, &body)
	msg := strings.TrimSpace(body.Message)
	if msg == "" {
		msg = strings.TrimSpace(strings.TrimPrefix(res.Status, strconv.Itoa(res.StatusCode)))
	}
	ae := &APIError{Method: r.Method, Path: strings.TrimPrefix(r.URL.Path, "/api2/json"), Status: res.StatusCode, Message: msg}
	if len(body.Errors) > 0 {
		ae.Params = map[string]string{}
		for k, v := range body.Errors {
			ae.Params[k] = strings.TrimSpace(fmt.Sprint(v))
		}
	}
	return nil, ae
}

func retryable(msg string, cause error) error {
	return temporal.NewApplicationErrorWithCause(msg, ErrTypeUnavailable, cause)
}

func final(typ, msg string) error { return activities.NewFinalError(typ, msg, nil) }

// isNotFoundMsg tells PVE's "missing" messages.
func isNotFoundMsg(m string) bool {
	m = strings.ToLower(m)
	return strings.Contains(m, "does not exist") || strings.Contains(m, "no such ") || strings.Contains(m, "unable to find")
}

// isLockedMsg tells PVE's lock and optimistic-locking messages.
func isLockedMsg(m string) bool {
	return strings.Contains(m, "CT is locked") || strings.Contains(m, "VM is locked") ||
		strings.Contains(m, "detected modified configuration") || strings.Contains(m, "can't lock file")
}

// classify turns an error of one API call into a catalog error. what names
// the action and the container; method and path name the call.
func classify(what, method, path string, err error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return err
	}
	var ae *APIError
	if errors.As(err, &ae) {
		msg := fmt.Sprintf("%s: %s", what, ae.Error())
		switch {
		case ae.Status == http.StatusUnauthorized:
			return final(activities.ErrTypePermission, msg+" (check IRU_PVE_TOKEN_ID/IRU_PVE_TOKEN_SECRET)")
		case ae.Status == http.StatusForbidden:
			return final(activities.ErrTypePermission, msg)
		case ae.Status == http.StatusBadRequest:
			if strings.Contains(ae.detail(), "no such task") {
				return retryable(msg, nil)
			}
			return final(activities.ErrTypeBadParams, msg)
		case ae.Status == http.StatusNotImplemented:
			return final(activities.ErrTypePrecondition, msg+" (not supported by this PVE version)")
		case ae.Status == http.StatusInternalServerError && isNotFoundMsg(ae.Message):
			return final(activities.ErrTypeNotFound, msg)
		case ae.Status == http.StatusInternalServerError && strings.Contains(ae.Message, "protection mode enabled"):
			return final(activities.ErrTypePrecondition, msg)
		case ae.Status == http.StatusInternalServerError && strings.Contains(ae.Message, "reserved name"):
			return final(activities.ErrTypeBadParams, msg)
		}
		return retryable(msg, nil)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is already in the message below
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %s %s: cancelled: %w", what, method, path, err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout(), goprox.IsTimeout(err):
		return retryable(fmt.Sprintf("%s: %s %s: timed out: %v", what, method, path, err), nil)
	}
	return retryable(fmt.Sprintf("%s: %s %s: %v", what, method, path, err), nil)
}

// isLocked reports whether err is a (retryable) lock or digest conflict.
func isLocked(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return isLockedMsg(ae.Message)
	}
	var te *taskError
	if errors.As(err, &te) {
		return isLockedMsg(te.exit) || strings.Contains(te.log, "CT is locked")
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return isLockedMsg(appErr.Error())
	}
	return false
}

// taskError is a task that ended with an exit status other than OK.
type taskError struct {
	upid, exit, log string
}

func (e *taskError) Error() string {
	s := fmt.Sprintf("task %s failed: %s", e.upid, e.exit)
	if e.log != "" {
		s += " (" + e.log + ")"
	}
	return s
}

// ---- calls ----

// ctRef is a resolved container.
type ctRef struct {
	Node   string
	VMID   int
	Name   string
	Tags   string
	Status string
}

// String names the container in messages: "CT 100 (api-gateway) on pve1".
func (c *ctRef) String() string {
	if c == nil {
		return "cluster"
	}
	if c.Name != "" {
		return fmt.Sprintf("CT %d (%s) on %s", c.VMID, c.Name, c.Node)
	}
	return fmt.Sprintf("CT %d on %s", c.VMID, c.Node)
}

func (c *ctRef) path(sub string) string {
	return fmt.Sprintf("/nodes/%s/lxc/%d%s", c.Node, c.VMID, sub)
}

// call is one action's view of the API: every call is classified and
// its message names the action and the container.
type call struct {
	a      *Activities
	c      *goprox.Client
	token  string
	action string
	ct     *ctRef
	// prog is what this attempt heartbeats (see progress).
	prog progress
	// deferred is set by [Activities.beginDeferred] until the first read
	// of the container's config confirms the container the intake
	// resolved; drill is the input's drill flag for that check.
	deferred, drill bool
}

// progress is the heartbeat detail of an attempt, so that the next attempt
// of the same activity knows what the earlier one saw and started.
type progress struct {
	// PriorStatus is the container status before a power action.
	PriorStatus string `json:",omitempty"`
	// UPID is the task the attempt was waiting for.
	UPID string `json:",omitempty"`
	// Isolation is the quarantine pve.restore re-applies after restoring.
	Isolation *isolationRef `json:",omitempty"`
}

// isolationRef is enough of a quarantine record to apply it again.
type isolationRef struct {
	Incident string
	Method   string
	Allow    []string `json:",omitempty"`
}

// beat heartbeats the attempt's progress.
func (x *call) beat(ctx context.Context) { heartbeat(ctx, x.prog) }

// earlier returns the progress heartbeated by an earlier attempt.
func earlier(ctx context.Context) progress {
	var p progress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &p)
	}
	return p
}

func (a *Activities) call(action string) *call {
	c, tok := a.current()
	return &call{a: a, c: c, token: tok, action: action}
}

func (x *call) what() string { return x.action + " " + x.ct.String() }

func (x *call) get(ctx context.Context, path string, v any) error {
	return classify(x.what(), http.MethodGet, path, x.c.Get(ctx, path, v))
}

func (x *call) put(ctx context.Context, path string, body, v any) error {
	return classify(x.what(), http.MethodPut, path, x.c.Put(ctx, path, body, v))
}

func (x *call) post(ctx context.Context, path string, body, v any) error {
	return classify(x.what(), http.MethodPost, path, x.c.Post(ctx, path, body, v))
}

func (x *call) del(ctx context.Context, path string, v any) error {
	return classify(x.what(), http.MethodDelete, path, x.c.Delete(ctx, path, v))
}

// heartbeat records a heartbeat of the activity.
func heartbeat(ctx context.Context, details ...any) { activity.RecordHeartbeat(ctx, details...) }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// startTask posts (or deletes) and returns the UPID of the task started.
func (x *call) startTask(ctx context.Context, method, path string, body any) (goprox.UPID, error) {
	var upid goprox.UPID
	var err error
	switch method {
	case http.MethodPost:
		err = x.post(ctx, path, body, &upid)
	case http.MethodDelete:
		err = x.del(ctx, path, &upid)
	default:
		return "", fmt.Errorf("%s: start task: unsupported method %s", x.what(), method)
	}
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(string(upid), "UPID:") || strings.Count(string(upid), ":") < 8 {
		return "", retryable(fmt.Sprintf("%s: %s %s: expected a task id, got %q (did the container move to another node?)", x.what(), method, path, string(upid)), nil)
	}
	return upid, nil
}

// waitTask polls a task until it stops, heartbeating on every poll, and
// fails unless the exit status is exactly "OK".
func (x *call) waitTask(ctx context.Context, upid goprox.UPID) error {
	t := goprox.NewTask(upid, x.c)
	statusPath := fmt.Sprintf("/nodes/%s/tasks/%s/status", t.Node, upid)
	for {
		if err := t.Ping(ctx); err != nil {
			return classify(x.what(), http.MethodGet, statusPath, err)
		}
		x.prog.UPID = string(upid)
		x.beat(ctx)
		if t.Status != "" && t.Status != goprox.TaskRunning {
			break
		}
		if err := sleep(ctx, x.a.cfg.TaskPoll); err != nil {
			return classify(x.what(), http.MethodGet, statusPath, err)
		}
	}
	if t.ExitStatus == "OK" {
		return nil
	}
	te := &taskError{upid: string(upid), exit: t.ExitStatus, log: x.taskLogTail(ctx, t)}
	msg := fmt.Sprintf("%s: %s", x.what(), te.Error())
	switch {
	case isNotFoundMsg(te.exit):
		return activities.NewFinalError(activities.ErrTypeNotFound, msg, te)
	case strings.Contains(te.exit, "protection mode enabled"):
		return activities.NewFinalError(activities.ErrTypePrecondition, msg, te)
	}
	return temporal.NewApplicationErrorWithCause(msg, ErrTypeTaskFailed, te)
}

// taskLogTail returns the last error lines of a task log (best effort).
func (x *call) taskLogTail(ctx context.Context, t *goprox.Task) string {
	var lines []struct {
		N int    `json:"n"`
		T string `json:"t"`
	}
	if err := x.c.Get(ctx, fmt.Sprintf("/nodes/%s/tasks/%s/log?start=0&limit=500", t.Node, t.UPID), &lines); err != nil {
		return ""
	}
	var errs []string
	for _, l := range lines {
		if strings.Contains(l.T, "ERROR") {
			errs = append(errs, l.T)
		}
	}
	if len(errs) > 3 {
		errs = errs[len(errs)-3:]
	}
	return strings.Join(errs, "; ")
}

// runTask starts a task and waits for it.
func (x *call) runTask(ctx context.Context, method, path string, body any) (goprox.UPID, error) {
	upid, err := x.startTask(ctx, method, path, body)
	if err != nil {
		return "", err
	}
	return upid, x.waitTask(ctx, upid)
}

// activeTask returns the UPID of a running task of type typ on the
// container ("" if none), so a retry waits for the task an earlier attempt
// started instead of starting another.
func (x *call) activeTask(ctx context.Context, typ string) (goprox.UPID, error) {
	var list []struct {
		UPID   string `json:"upid"`
		Type   string `json:"type"`
		Status string `json:"status"`
	}
	p := fmt.Sprintf("/nodes/%s/tasks?source=active&vmid=%d&typefilter=%s&limit=50", x.ct.Node, x.ct.VMID, url.QueryEscape(typ))
	if err := x.get(ctx, p, &list); err != nil {
		return "", err
	}
	for _, t := range list {
		if t.Type == typ && t.Status == goprox.TaskRunning {
			return goprox.UPID(t.UPID), nil
		}
	}
	return "", nil
}

// withLockWait runs fn again while it fails because the container is
// locked by another task (or its config changed under us), for up to
// IRU_PVE_LOCK_WAIT; fn must re-read what it depends on.
func (x *call) withLockWait(ctx context.Context, fn func() error) error {
	deadline := x.a.now().Add(x.a.cfg.LockWait)
	for {
		err := fn()
		if err == nil || !isLocked(err) || !x.a.now().Before(deadline) {
			return err
		}
		x.beat(ctx)
		if serr := sleep(ctx, x.a.cfg.TaskPoll); serr != nil {
			return err
		}
	}
}

// requirePrivs checks (for dry runs) that the token holds privs on path.
func (x *call) requirePrivs(ctx context.Context, path string, privs ...string) error {
	var perms map[string]map[string]int
	if err := x.get(ctx, "/access/permissions?path="+url.QueryEscape(path), &perms); err != nil {
		return err
	}
	var missing []string
	for _, p := range privs {
		if perms[path][p] == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return final(activities.ErrTypePermission, fmt.Sprintf("%s: token %s lacks %s on %s", x.what(), x.token, strings.Join(missing, ", "), path))
	}
	return nil
}

// begin resolves the step's container (parameter asset) and applies the drill rule.
func (a *Activities) begin(ctx context.Context, in activities.ActionInput, action, asset string) (*call, error) {
	x := a.call(action)
	if asset == "" {
		return nil, final(activities.ErrTypeBadParams, action+": no asset given (parameter asset)")
	}
	var ct *ctRef
	var err error
	if r := in.Resolved; r != nil && strings.EqualFold(r.Name, asset) {
		if err := checkRef(action, r); err != nil {
			return nil, err
		}
		ct, err = x.verify(ctx, r)
	} else {
		ct, err = x.resolve(ctx, asset)
	}
	if err != nil {
		return nil, err
	}
	x.ct = ct
	if in.Drill && !hasTag(ct.Tags, a.cfg.DrillTag) {
		return nil, final(activities.ErrTypePrecondition, fmt.Sprintf("%s %s: drill refused: the container does not carry the drill tag %q", action, ct, a.cfg.DrillTag))
	}
	return x, nil
}

// beginDeferred is [Activities.begin] for actions whose first reads
// include the container's config: when the intake resolved the asset, the
// check that the container still carries the asset's name, and the drill
// rule, wait for that read ([call.checkResolved], before any change)
// instead of costing a call of their own.
func (a *Activities) beginDeferred(ctx context.Context, in activities.ActionInput, action, asset string) (*call, error) {
	r := in.Resolved
	if asset == "" || r == nil || !strings.EqualFold(r.Name, asset) {
		return a.begin(ctx, in, action, asset)
	}
	if err := checkRef(action, r); err != nil {
		return nil, err
	}
	x := a.call(action)
	x.ct = &ctRef{Node: r.Node, VMID: r.VMID, Name: r.Name}
	x.deferred, x.drill = true, in.Drill
	return x, nil
}

// checkResolved completes [Activities.beginDeferred] from the container's
// config: the name the intake resolved and the drill rule, as
// [call.verify] and [Activities.begin] check them.
func (x *call) checkResolved(conf map[string]any) error {
	if !x.deferred {
		return nil
	}
	want := x.ct.Name
	x.ct.Name, x.ct.Tags = str(conf["hostname"]), str(conf["tags"])
	if !strings.EqualFold(x.ct.Name, want) {
		return final(activities.ErrTypePrecondition, fmt.Sprintf("%s: %s is no longer asset %q (the intake resolved it there)", x.action, x.ct, want))
	}
	if x.drill && !hasTag(x.ct.Tags, x.a.cfg.DrillTag) {
		return final(activities.ErrTypePrecondition, fmt.Sprintf("%s %s: drill refused: the container does not carry the drill tag %q", x.action, x.ct, x.a.cfg.DrillTag))
	}
	x.deferred = false
	return nil
}

// hasTag reports whether a PVE tag list ("a;b") holds tag.
func hasTag(tags, tag string) bool {
	for _, t := range splitTags(tags) {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

func splitTags(tags string) []string {
	return strings.FieldsFunc(tags, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
}

// str renders a decoded JSON scalar as PVE's string form.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		if x {
			return "1"
		}
		return "0"
	case json.Number:
		return x.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// putJSON stores v as JSON evidence and returns the reference.
func (a *Activities) putJSON(ctx context.Context, incident, name, source string, v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode evidence %s: %w", name, err)
	}
	ref, err := a.evidence.PutEvidence(ctx, activities.EvidenceItem{
		IncidentID: incident, Name: name, Class: activities.ClassOperational, MediaType: "application/json",
		CollectedBy: "system:worker", Source: source, Body: strings.NewReader(string(b)),
	})
	if err != nil {
		return "", retryable(fmt.Sprintf("store evidence %s: %v", name, err), nil)
	}
	return ref, nil
}
