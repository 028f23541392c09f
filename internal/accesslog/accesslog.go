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
// Records go to a bounded queue drained by one background appender, on one
// of three paths:
//
//   - Authenticated actions never drop: the handler reserves the record's
//     place in the queue (see [Authenticated]) before it acts, waiting up to
//     Options.Wait when the queue is full; if no place frees up, the request
//     fails (503) without acting, and is counted as
//     iru_access_log_records_total{result="refused"} (the record of that
//     503 then goes on the droppable path: nothing was done).
//   - Anonymous refusals (no or bad credentials, unknown detector, rate
//     limited before authentication) are counted in
//     iru_access_anonymous_refusals_total{status} and aggregated into ONE
//     ledger record per source address and minute (action api.anonymous,
//     with the count, statuses, reasons and targets), so a flood of bad
//     tokens cannot flood the ledger. Sources beyond Options.AnonymousSources
//     in one minute share one "other-sources" record. The aggregate waits
//     for room like an authenticated record (it is written by a background
//     flusher, no request waits for it).
//   - [Logger.Record] (start-up and housekeeping records) never blocks: when
//     the queue is more than three quarters full the record is dropped,
//     counted in iru_access_log_records_total{result="dropped"} and logged at
//     error level (at most once a second, with the running count). The last
//     quarter of the queue is kept for the two paths above.
package accesslog

import (
	"cmp"
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
	// ActionAnonymous aggregates the refused anonymous requests of one
	// source address in one minute (Record.Count of them).
	ActionAnonymous = "api.anonymous"
	// ActionIntakeRefused is an authenticated detector's request refused
	// for what it carried (byte budget, scope, spool quota).
	ActionIntakeRefused = "intake.refused"
	// ActionIntakeDeadLetter is an accepted alert Temporal refused for
	// good, set aside in the intake's dead-letter queue.
	ActionIntakeDeadLetter = "intake.dead_letter"
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
	QueueSize        int           `env:"IRU_ACCESS_LOG_QUEUE" envDefault:"10000" doc:"Records the access-log queue holds; the queue feeds one background appender to the audit ledger. Housekeeping records are dropped (and counted) when it is three quarters full; authenticated requests wait for room (IRU_ACCESS_LOG_WAIT)."`
	Wait             time.Duration `env:"IRU_ACCESS_LOG_WAIT" envDefault:"5s" doc:"How long an authenticated request waits for room in the access-log queue before it fails with 503 without acting (its record is never dropped)."`
	AnonymousSources int           `env:"IRU_ACCESS_LOG_ANONYMOUS_SOURCES" envDefault:"10000" doc:"Source addresses whose refused anonymous requests get their own aggregated ledger record per minute; beyond it they share one other-sources record."`
}

// Validate checks the configuration; errors name the variable.
func (c *Config) Validate() error {
	var p []error
	if c.QueueSize < 1 || c.QueueSize > 1_000_000 {
		p = append(p, fmt.Errorf("IRU_ACCESS_LOG_QUEUE=%d: want 1 to 1000000", c.QueueSize))
	}
	if c.Wait < 0 || c.Wait > 10*time.Minute {
		p = append(p, fmt.Errorf("IRU_ACCESS_LOG_WAIT=%s: want at most 10m (0: the default, 5s)", c.Wait))
	}
	if c.AnonymousSources < 0 || c.AnonymousSources > 1_000_000 {
		p = append(p, fmt.Errorf("IRU_ACCESS_LOG_ANONYMOUS_SOURCES=%d: want at most 1000000 (0: the default, 10000)", c.AnonymousSources))
	}
	return errors.Join(p...)
}

// Options returns the logger options of the configuration.
func (c *Config) Options() Options {
	return Options{QueueSize: c.QueueSize, Wait: c.Wait, AnonymousSources: c.AnonymousSources}
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
	// Count is how many requests an aggregated record (ActionAnonymous)
	// stands for.
	Count int64 `json:"count,omitempty"`
	// Keys are the keys an ActionKeyChange record changed, as key ids
	// (see [KeyID]); the 90-day rotation control reads them.
	Keys []string `json:"keys,omitempty"`
}

// Kinds of key ids ([KeyID]).
const (
	KeyKindIntake         = "intake"           // a detector's intake API keys: intake:<detector>
	KeyKindPVEToken       = "pve-token"        // a Proxmox VE API token: pve-token:<user@realm!token>
	KeyKindKCClientSecret = "kc-client-secret" // a Keycloak client secret: kc-client-secret:<realm>/<clientId>
	KeyKindKEK            = "kek"              // the HSM key-encryption key: kek:current
)

// KeyID names a key in key-change records: kind, a colon, the key's name.
func KeyID(kind, name string) string { return kind + ":" + name }

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
	// Wait bounds how long an authenticated record waits for room
	// (default 5 s).
	Wait time.Duration
	// AnonymousSources bounds the sources aggregated separately per minute
	// (default 10000).
	AnonymousSources int
	// FlushEvery is how often finished minutes of anonymous refusals are
	// written (default 5 s).
	FlushEvery time.Duration
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
	// Refused counts authenticated requests that failed because no room
	// freed up in time (nothing was dropped: the request did not act).
	Refused int64
	// Anonymous counts refused anonymous requests (aggregated).
	Anonymous int64
}

// Logger is the asynchronous access log. Create it with [New], call
// [Logger.Start], and [Logger.Close] when the server stopped.
type Logger struct {
	ledger Ledger
	opts   Options
	log    *slog.Logger
	queue  chan Record
	// room holds one token per free place in queue: a record is queued
	// only with a token, so a send on queue never blocks; the appender
	// returns the token when it takes the record.
	room chan struct{}
	// keep is how many places droppable records leave free.
	keep int
	anon *aggregator

	closeOnce sync.Once
	closing   chan struct{}
	done      chan struct{}
	started   atomic.Bool

	written, dropped, failed, refused atomic.Int64
	lastDropLog                       atomic.Int64 // unix nanos
	counter                           *prometheus.CounterVec
	queued                            prometheus.GaugeFunc
	flushDone                         chan struct{}

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
	if opts.Wait <= 0 {
		opts.Wait = 5 * time.Second
	}
	if opts.AnonymousSources <= 0 {
		opts.AnonymousSources = 10000
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 5 * time.Second
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
		queue: make(chan Record, opts.QueueSize), room: make(chan struct{}, opts.QueueSize), keep: opts.QueueSize / 4,
		closing: make(chan struct{}), done: make(chan struct{}), flushDone: make(chan struct{}),
		lastSeq: map[string]int64{},
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iru_access_log_records_total",
			Help: "Access-log records by result: written to the audit ledger, dropped (queue full, housekeeping records only), failed (append gave up) or refused (an authenticated request found no room in time and failed without acting).",
		}, []string{"result"}),
		anon: newAggregator(opts.AnonymousSources),
	}
	for range opts.QueueSize {
		a.room <- struct{}{}
	}
	a.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "iru_access_log_queue_length",
		Help: "Access-log records waiting for the appender.",
	}, func() float64 { return float64(len(a.queue)) })
	for _, r := range []string{"written", "dropped", "failed", "refused"} {
		a.counter.WithLabelValues(r) // export zeros
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{a.counter, a.queued, a.anon.counter} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("accesslog: register metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Record queues a housekeeping record r without blocking. It reports false
// when the queue is more than three quarters full or the logger is closed
// (the record is dropped and counted). Records of authenticated requests
// go through [Authenticated] or [Logger.RecordWait] instead, which never
// drop.
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
	if len(a.room) <= a.keep {
		a.drop(r, "queue full")
		return false
	}
	select {
	case <-a.room:
		a.queue <- r
		return true
	default:
		a.drop(r, "queue full")
		return false
	}
}

// ErrNoRoom is returned when a record that must not be dropped found no
// room in the queue in time; the caller fails its request without acting.
var ErrNoRoom = errors.New("accesslog: audit log cannot take the record in time")

// Reservation is room in the queue for records that must not drop.
type Reservation struct {
	a    *Logger
	mu   sync.Mutex
	left int
}

// Reserve waits (up to Options.Wait, or ctx) for room for n records. The
// error wraps [ErrNoRoom]; it is counted as refused.
func (a *Logger) Reserve(ctx context.Context, n int) (*Reservation, error) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.Wait)
	defer cancel()
	res := &Reservation{a: a}
	for res.left < n {
		select {
		case <-a.room:
			res.left++
		case <-a.closing:
			res.Release()
			a.refuse()
			return nil, fmt.Errorf("%w: closed", ErrNoRoom)
		case <-ctx.Done():
			res.Release()
			a.refuse()
			return nil, fmt.Errorf("%w: %w", ErrNoRoom, ctx.Err())
		}
	}
	return res, nil
}

func (a *Logger) refuse() {
	a.refused.Add(1)
	a.counter.WithLabelValues("refused").Inc()
}

// Commit queues records into the reserved room (never blocks, never
// drops) and gives back the room it did not use. Records beyond the
// reservation are queued with [Logger.RecordWait].
func (r *Reservation) Commit(records ...Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.put(records...)
	r.release()
}

// put queues records into the reserved room, keeping what is left.
func (r *Reservation) put(records ...Record) {
	for _, rec := range records {
		if rec.Time.IsZero() {
			rec.Time = r.a.opts.Now()
		}
		if r.left > 0 {
			r.left--
			r.a.queue <- rec
			continue
		}
		_ = r.a.RecordWait(context.Background(), rec)
	}
}

// Release gives back the reserved room unused.
func (r *Reservation) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release()
}

func (r *Reservation) release() {
	for ; r.left > 0; r.left-- {
		r.a.room <- struct{}{}
	}
}

// RecordWait queues r, waiting for room up to Options.Wait (or ctx); it
// never drops r silently: the error (wrapping [ErrNoRoom]) says it was not
// queued, and is counted as refused.
func (a *Logger) RecordWait(ctx context.Context, r Record) error {
	res, err := a.Reserve(ctx, 1)
	if err != nil {
		a.log.Error("audit access log: no room for a record that must not drop", "action", r.Action, "actor", r.Actor, "path", r.Path, "err", err)
		return err
	}
	res.Commit(r)
	return nil
}

// Anonymous counts a refused anonymous request and adds it to its source's
// aggregated record of the minute.
func (a *Logger) Anonymous(r Record) {
	if r.Time.IsZero() {
		r.Time = a.opts.Now()
	}
	a.anon.add(r)
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

// Free returns the free places in the queue.
func (a *Logger) Free() int { return len(a.room) }

// Stats returns the counts so far.
func (a *Logger) Stats() Stats {
	return Stats{Written: a.written.Load(), Dropped: a.dropped.Load(), Failed: a.failed.Load(), Refused: a.refused.Load(),
		Anonymous: a.anon.total.Load()}
}

// Start starts the background appender: it appends queued records until
// Close (which drains the queue) or ctx ends. Later calls do nothing.
func (a *Logger) Start(ctx context.Context) {
	if !a.started.CompareAndSwap(false, true) {
		return
	}
	go a.run(ctx)
	go a.flushLoop(ctx)
}

// flushLoop writes the aggregated anonymous records of finished minutes
// until Close.
func (a *Logger) flushLoop(ctx context.Context) {
	defer close(a.flushDone)
	t := time.NewTicker(a.opts.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.flushAnonymous(ctx, a.opts.Now().UTC().Truncate(time.Minute))
		case <-ctx.Done():
			return
		case <-a.closing:
			return
		}
	}
}

// flushAnonymous queues the aggregated records of minutes before until
// (all of them when until is zero), waiting for room.
func (a *Logger) flushAnonymous(ctx context.Context, until time.Time) {
	for _, r := range a.anon.take(until) {
		res, err := a.Reserve(ctx, 1)
		if err != nil {
			a.drop(r, "no room for an aggregated record")
			continue
		}
		res.Commit(r)
	}
}

func (a *Logger) run(ctx context.Context) {
	defer close(a.done)
	for {
		select {
		case r := <-a.queue:
			a.room <- struct{}{}
			a.write(ctx, r)
		case <-ctx.Done():
			return
		case <-a.closing:
			for {
				select {
				case r := <-a.queue:
					a.room <- struct{}{}
					a.write(ctx, r)
				default:
					return
				}
			}
		}
	}
}

// Close writes the pending aggregated records, stops accepting records and
// waits until the appender wrote the queued ones or ctx ends.
func (a *Logger) Close(ctx context.Context) error {
	if a.started.Load() {
		a.closeOnce.Do(func() {
			a.flushAnonymous(ctx, time.Time{})
			close(a.closing)
		})
	}
	a.closeOnce.Do(func() { close(a.closing) })
	if !a.started.Load() {
		return nil
	}
	select {
	case <-a.flushDone:
	case <-ctx.Done():
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
		actor = Anonymous + ":" + cmp.Or(r.SourceIP, "unknown")
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
	if r.Count != 0 {
		detail = append(detail, fmt.Sprintf("count=%d", r.Count))
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
	case r.Action == ActionAuthFailure || r.Action == ActionAuthThreshold || r.Action == ActionAnonymous:
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
