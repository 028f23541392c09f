// Package accesslog writes every API request (detector intake and responder
// API) and every authentication attempt to the audit ledger, with the
// authenticated identity (or anonymous) and the outcome.
//
// Entries go to one hash-chained ledger chain per UTC day, named
// "access:<YYYY-MM-DD>". Unlike incident chains, whose sequence numbers come
// from the incident workflow, several API servers append to the same access
// chain concurrently: the appender takes the chain's head sequence plus one
// and, when another server took that slot first (ledger.ErrConflict) or the
// head moved (ledger.ErrGap), re-reads the head and tries again.
//
// Recording never adds latency to a request beyond a channel send: records
// go to a bounded queue drained by one background appender. When the queue
// is full the record is dropped, counted in the Prometheus counter
// iru_access_log_records_total{result="dropped"} and logged at error level
// (at most once a second, with the running count).
package accesslog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iru-responder/responder/internal/ledger"
)

// Actions of access-log entries (ledger.Entry.Action).
const (
	// ActionRequest is one HTTP request and its response status.
	ActionRequest = "api.request"
	// ActionAuthSuccess is a successful authentication (a responder's
	// session, recorded once per session and day by the API; every
	// successful detector authentication).
	ActionAuthSuccess = "auth.success"
	// ActionAuthFailure is a failed authentication, with the reason.
	ActionAuthFailure = "auth.failure"
	// ActionAuthThreshold records that failed authentications from one
	// source crossed the alert threshold.
	ActionAuthThreshold = "auth.threshold"
	// ActionKeyChange is a key or secret the platform rotated (KEK,
	// Proxmox token, Keycloak client secret, intake API keys); Detail says
	// which, never the secret.
	ActionKeyChange = "key.change"
	// ActionConfigLoad is a process starting with a configuration; Detail
	// holds a digest of its (redacted) variables, so a change shows.
	ActionConfigLoad = "config.load"
)

// ChainPrefix starts the name of every access chain; the rest is the UTC
// day (2006-01-02).
const ChainPrefix = "access:"

// Anonymous is the actor of requests without a verified identity; the
// ledger entry's actor is "anonymous:<source ip>".
const Anonymous = "anonymous"

// Chain returns the access chain of the day of t (UTC).
func Chain(t time.Time) string { return ChainPrefix + t.UTC().Format(time.DateOnly) }

// Config is the access log's configuration.
type Config struct {
	QueueSize int `env:"IRU_ACCESS_LOG_QUEUE" envDefault:"10000" doc:"Records the access-log queue holds before it drops (and counts) new ones; the queue feeds one background appender to the audit ledger."`
}

// Validate checks the configuration; errors name the variable.
func (c *Config) Validate() error {
	if c.QueueSize < 1 || c.QueueSize > 1_000_000 {
		return fmt.Errorf("IRU_ACCESS_LOG_QUEUE=%d: want 1 to 1000000", c.QueueSize)
	}
	return nil
}

// Record is one access-log record.
type Record struct {
	// Time is when the request arrived (zero: when recorded).
	Time time.Time `json:"time"`
	// Action is one of the Action constants.
	Action string `json:"action"`
	// Actor is the verified identity, "issuer:subject" (keycloak:iru/alice,
	// detector:falco/key-1); "" means anonymous.
	Actor string `json:"actor,omitempty"`
	// SourceIP is the client address as the API server resolved it.
	SourceIP  string `json:"source_ip,omitempty"`
	Method    string `json:"method,omitempty"`
	Path      string `json:"path,omitempty"`
	Status    int    `json:"status,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	// Duration is how long the request took to answer.
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Detail is a short reason (an authentication failure's cause); never
	// a secret.
	Detail string `json:"detail,omitempty"`
}

// Ledger is the part of the audit ledger the appender uses.
type Ledger interface {
	Append(ctx context.Context, r ledger.AppendRequest) (ledger.Entry, error)
	Head(ctx context.Context, chain string) (ledger.Entry, error)
}

// LedgerOf adapts a ledger to [Ledger].
func LedgerOf(l *ledger.Ledger) Ledger { return ledgerChain{l} }

type ledgerChain struct{ l *ledger.Ledger }

func (c ledgerChain) Append(ctx context.Context, r ledger.AppendRequest) (ledger.Entry, error) {
	return c.l.Append(ctx, r)
}

func (c ledgerChain) Head(ctx context.Context, chain string) (ledger.Entry, error) {
	return c.l.Store().Head(ctx, chain)
}

// Options configure a [Logger].
type Options struct {
	// QueueSize bounds the queue (default 10000).
	QueueSize int
	// Log receives drops and append failures (nil: discarded).
	Log *slog.Logger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// MaxAttempts bounds the appends of one record racing other servers
	// (default 50).
	MaxAttempts int
	// AppendTimeout bounds one append (default 10 s).
	AppendTimeout time.Duration
}

// Stats count records since the logger was created.
type Stats struct {
	Written, Dropped, Failed int64
}

// Logger is the asynchronous access log. Create it with [New], call
// [Logger.Start], and [Logger.Close] when the server stopped.
type Logger struct {
	ledger Ledger
	opts   Options
	log    *slog.Logger
	queue  chan Record

	closeOnce sync.Once
	closing   chan struct{}
	done      chan struct{}
	started   atomic.Bool

	written, dropped, failed atomic.Int64
	lastDropLog              atomic.Int64 // unix nanos
	counter                  *prometheus.CounterVec
	queued                   prometheus.GaugeFunc

	// lastSeq caches the last sequence number written per chain, so the
	// common case needs no head read.
	lastSeq map[string]int64
}

// New returns a logger appending to l.
func New(l Ledger, opts Options) (*Logger, error) {
	if l == nil {
		return nil, errors.New("accesslog: no ledger")
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 10000
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 50
	}
	if opts.AppendTimeout <= 0 {
		opts.AppendTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Logger{
		ledger: l, opts: opts, log: log.With("component", "accesslog"),
		queue: make(chan Record, opts.QueueSize), closing: make(chan struct{}), done: make(chan struct{}),
		lastSeq: map[string]int64{},
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iru_access_log_records_total",
			Help: "Access-log records by result: written to the audit ledger, dropped (queue full) or failed (append gave up).",
		}, []string{"result"}),
	}
	a.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "iru_access_log_queue_length",
		Help: "Access-log records waiting for the appender.",
	}, func() float64 { return float64(len(a.queue)) })
	for _, r := range []string{"written", "dropped", "failed"} {
		a.counter.WithLabelValues(r) // export zeros
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{a.counter, a.queued} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("accesslog: register metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Record queues r without blocking. It reports false when the queue is
// full or the logger is closed (the record is dropped and counted).
func (a *Logger) Record(r Record) bool {
	if r.Time.IsZero() {
		r.Time = a.opts.Now()
	}
	select {
	case <-a.closing:
		a.drop(r, "closed")
		return false
	default:
	}
	select {
	case a.queue <- r:
		return true
	default:
		a.drop(r, "queue full")
		return false
	}
}

func (a *Logger) drop(r Record, why string) {
	n := a.dropped.Add(1)
	a.counter.WithLabelValues("dropped").Inc()
	now := time.Now().UnixNano()
	last := a.lastDropLog.Load()
	if now-last >= int64(time.Second) && a.lastDropLog.CompareAndSwap(last, now) {
		a.log.Error("AUDIT ACCESS LOG DROPPING RECORDS: the appender cannot keep up with requests; entries are missing from the ledger",
			"why", why, "dropped_total", n, "queue", cap(a.queue), "action", r.Action, "actor", r.Actor, "path", r.Path)
	}
}

// Stats returns the counts so far.
func (a *Logger) Stats() Stats {
	return Stats{Written: a.written.Load(), Dropped: a.dropped.Load(), Failed: a.failed.Load()}
}

// Start starts the background appender: it appends queued records until
// Close (which drains the queue) or ctx ends. Later calls do nothing.
func (a *Logger) Start(ctx context.Context) {
	if !a.started.CompareAndSwap(false, true) {
		return
	}
	go a.run(ctx)
}

func (a *Logger) run(ctx context.Context) {
	defer close(a.done)
	for {
		select {
		case r := <-a.queue:
			a.write(ctx, r)
		case <-ctx.Done():
			return
		case <-a.closing:
			for {
				select {
				case r := <-a.queue:
					a.write(ctx, r)
				default:
					return
				}
			}
		}
	}
}

// Close stops accepting records and waits until the appender wrote the queued ones
// or ctx ends.
func (a *Logger) Close(ctx context.Context) error {
	a.closeOnce.Do(func() { close(a.closing) })
	if !a.started.Load() {
		return nil
	}
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("accesslog: close: %d records not written: %w", len(a.queue), ctx.Err())
	}
}

// write appends r, racing other servers for the chain's next slot.
func (a *Logger) write(ctx context.Context, r Record) {
	req := a.request(r)
	var err error
	for attempt := 1; attempt <= a.opts.MaxAttempts; attempt++ {
		if ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		req.Seq, err = a.nextSeq(ctx, req.Incident)
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, a.opts.AppendTimeout)
			_, err = a.ledger.Append(actx, req)
			cancel()
		}
		if err == nil {
			a.lastSeq[req.Incident] = req.Seq
			a.written.Add(1)
			a.counter.WithLabelValues("written").Inc()
			return
		}
		delete(a.lastSeq, req.Incident)
		if errors.Is(err, ledger.ErrInvalid) {
			break
		}
		// Another server took the slot (ErrConflict) or the head moved
		// (ErrGap), or the store hiccupped: back off a little, re-read.
		if attempt > 1 {
			d := time.Duration(rand.Int64N(int64(min(attempt, 20))*int64(time.Millisecond)) + 1)
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
	}
	a.failed.Add(1)
	a.counter.WithLabelValues("failed").Inc()
	a.log.Error("audit access log: append failed; entry missing from the ledger", "chain", req.Incident,
		"action", r.Action, "actor", req.Actor, "target", req.Target, "err", err)
}

func (a *Logger) nextSeq(ctx context.Context, chain string) (int64, error) {
	if s, ok := a.lastSeq[chain]; ok {
		return s + 1, nil
	}
	for c := range a.lastSeq { // one chain a day: forget old days
		delete(a.lastSeq, c)
	}
	hctx, cancel := context.WithTimeout(ctx, a.opts.AppendTimeout)
	defer cancel()
	h, err := a.ledger.Head(hctx, chain)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return 1, nil
	case err != nil:
		return 0, fmt.Errorf("accesslog: head of %s: %w", chain, err)
	}
	return h.Seq + 1, nil
}

// request turns r into the ledger append (without Seq).
func (a *Logger) request(r Record) ledger.AppendRequest {
	actor := r.Actor
	if actor == "" {
		actor = Anonymous + ":" + cmpOr(r.SourceIP, "unknown")
	}
	target := strings.TrimSpace(r.Method + " " + r.Path)
	detail := []string{}
	if r.Status != 0 {
		detail = append(detail, fmt.Sprintf("status=%d", r.Status))
	}
	if r.SourceIP != "" {
		detail = append(detail, "ip="+r.SourceIP)
	}
	if r.Duration > 0 {
		detail = append(detail, "duration="+r.Duration.Round(time.Microsecond).String())
	}
	if r.RequestID != "" {
		detail = append(detail, "request_id="+r.RequestID)
	}
	if r.Detail != "" {
		detail = append(detail, "detail="+r.Detail)
	}
	return ledger.AppendRequest{
		Incident:       Chain(r.Time),
		Time:           r.Time,
		Actor:          truncate(actor, ledger.MaxActorLen),
		Action:         r.Action,
		Target:         truncate(target, ledger.MaxTargetLen),
		Params:         r,
		Outcome:        ledger.Outcome{Status: status(r), Detail: truncate(strings.Join(detail, " "), ledger.MaxDetailLen)},
		IdempotencyKey: "access/" + uuid.NewString(),
	}
}

// status maps a record onto the ledger's outcome statuses.
func status(r Record) ledger.Status {
	switch {
	case r.Action == ActionAuthFailure || r.Action == ActionAuthThreshold:
		return ledger.StatusDenied
	case r.Action == ActionAuthSuccess:
		return ledger.StatusOK
	case r.Status == 0 || r.Status >= 500:
		return ledger.StatusFailed
	case r.Status == 401 || r.Status == 403:
		return ledger.StatusDenied
	case r.Status >= 400:
		return "rejected"
	}
	return ledger.StatusOK
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
