package forward

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/internal/severity"
	"github.com/iru-responder/responder/workflows"
)

// Options tune the forwarder.
type Options struct {
	// TaskQueue is where incident workflows start (default
	// workflows.TaskQueue; tests use their own).
	TaskQueue string
	// MaxAlertsPerSignal bounds one signal's alerts (default 100).
	MaxAlertsPerSignal int
	// MaxCallBytes bounds the encoded alerts one call carries (default
	// DefaultMaxCallBytes); a SignalWithStart carries them once, in the
	// signal. A single alert over it is still sent alone (the intake's byte
	// budget keeps alerts far smaller).
	MaxCallBytes int
	// DeadLetters receives items Temporal refuses for good; nil keeps them
	// in the spool, retried with backoff (only their key waits).
	DeadLetters *spool.DeadLetters
	// OnDeadLetter, if set, is called after an item was dead-lettered
	// (metrics, notification); it must not block for long.
	OnDeadLetter func(spool.DeadLetter)
	// Concurrency bounds the calls in flight (default 8). Calls do not
	// run in lock-step rounds: as soon as a call ends its slot takes the
	// next key, keys whose incident this forwarder has not yet started
	// first (a new incident's first alert does not queue behind the
	// storm of a running one).
	Concurrency int
	// BusyWait is how long, while alerts keep arriving (the spool took
	// an append within QuietAfter), the alerts of a key whose incident
	// runs gather before a call, unless a full signal's worth
	// (MaxAlertsPerSignal) is pending (default DefaultBusyWait;
	// negative: no wait). A new incident's first alerts never wait. In
	// a storm each running incident then gets a few large signals
	// instead of one whenever a call slot frees: every signal costs the
	// server a history write and a workflow task, and the processors
	// they take are the ones the intake needs to accept the storm.
	BusyWait time.Duration
	// QuietAfter is how long after the last append the intake counts as
	// quiet, and every pending alert goes at once (default 20 ms).
	QuietAfter time.Duration
	// CallTimeout bounds one call (default 10 s).
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the per-key retry delay (defaults
	// 200 ms and 30 s); it doubles with each failure, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// Log receives delivery failures (nil: discarded).
	Log *slog.Logger
}

// Stats counts the forwarder's work since it was created.
type Stats struct {
	// Delivered is the number of alerts delivered (acknowledged).
	Delivered int64
	// Calls is the number of successful signal calls.
	Calls int64
	// Failures is the number of failed calls.
	Failures int64
	// DeadLettered is the number of items moved to the dead-letter queue.
	DeadLettered int64
}

// Forwarder drains a spool into incident workflows.
type Forwarder struct {
	sp   *spool.Spool
	sig  Signaler
	opts Options

	mu      sync.Mutex
	backoff map[string]*retry
	// single counts, per key, the next items to send one per call: a
	// batch refused for good is split so the item at fault is found.
	single map[string]int
	// busy holds the keys with a call in flight or its acknowledgement
	// pending: a key has one call at a time, which keeps its order.
	busy map[string]bool
	// calls is how many calls are in flight (at most Concurrency).
	inflight int
	// known holds keys this forwarder delivered firing alerts to (their
	// incident runs); other keys go first. Bounded by maxKnown.
	known map[string]bool
	// kick wakes Run when a call ended or its items were acknowledged.
	kick chan struct{}

	// ackMu guards acks and acking: delivered batches wait there for one
	// Ack (one fsync) shared by every batch that ended meanwhile.
	ackMu  sync.Mutex
	acks   []*batch
	acking bool

	delivered, calls, failures, deadLettered atomic.Int64
}

type retry struct {
	until time.Time
	delay time.Duration
}

// New returns a forwarder from sp to sig.
func New(sp *spool.Spool, sig Signaler, opts Options) *Forwarder {
	if opts.TaskQueue == "" {
		opts.TaskQueue = workflows.TaskQueue
	}
	if opts.MaxAlertsPerSignal <= 0 {
		opts.MaxAlertsPerSignal = 100
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.BusyWait == 0 {
		opts.BusyWait = DefaultBusyWait
	}
	if opts.QuietAfter <= 0 {
		opts.QuietAfter = 20 * time.Millisecond
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxCallBytes <= 0 {
		opts.MaxCallBytes = DefaultMaxCallBytes
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Forwarder{sp: sp, sig: sig, opts: opts, backoff: map[string]*retry{}, single: map[string]int{},
		busy: map[string]bool{}, known: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// Stats returns the counters.
func (f *Forwarder) Stats() Stats {
	return Stats{Delivered: f.delivered.Load(), Calls: f.calls.Load(), Failures: f.failures.Load(), DeadLettered: f.deadLettered.Load()}
}

// Run delivers until ctx ends; it returns ctx's error. Calls in flight
// when ctx ends finish (within CallTimeout) and are acknowledged first.
func (f *Forwarder) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		ready := f.sp.Ready() // before Pending: an append after it wakes us
		n, wake := f.dispatch(ctx, &wg)
		if n > 0 {
			continue
		}
		if err := wait(ctx, ready, f.kick, wake); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// wait blocks until ctx ends, ready is closed, kick fires or wake (if set)
// passes.
func wait(ctx context.Context, ready <-chan struct{}, kick <-chan struct{}, wake time.Time) error {
	var timer <-chan time.Time
	if !wake.IsZero() {
		t := time.NewTimer(time.Until(wake))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-ready:
	case <-kick:
	case <-timer:
	}
	return nil
}

// notify wakes Run (without blocking: one pending wake is enough).
func (f *Forwarder) notify() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// maxKnown bounds Forwarder.known; past it the set starts afresh (keys
// then lose their place behind new ones until delivered again).
const maxKnown = 100000

// batch is one call: the leading run of a key's pending items.
type batch struct {
	key      string
	resolved bool
	items    []spool.Item
	records  []Record
	bytes    int
}

// dispatch starts calls for as many keys as there are free call slots:
// the leading pending items of keys not busy and not backing off, keys
// whose incident this forwarder has not started first, then in order of
// their oldest pending item. It returns how many items it sent and, when
// it sent none, when the earliest backoff ends (zero: none).
func (f *Forwarder) dispatch(ctx context.Context, wg *sync.WaitGroup) (int, time.Time) {
	now := time.Now()
	var wake time.Time
	f.mu.Lock()
	free := f.opts.Concurrency - f.inflight
	if free <= 0 {
		f.mu.Unlock()
		return 0, time.Time{}
	}
	// Up to free new keys and free known keys are picked, in the order
	// of their oldest pending item; the new ones go first. While alerts
	// keep arriving, a known key's alerts gather (Options.BusyWait).
	last := f.sp.LastAppend()
	arriving := f.opts.BusyWait > 0 && now.Sub(last) < f.opts.QuietAfter
	earliest := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	var fresh, old []string
	deferred := false
	f.sp.Keys(func(k spool.KeyInfo) bool {
		key := k.Key
		if r, ok := f.backoff[key]; ok && now.Before(r.until) {
			earliest(r.until)
			return true
		}
		switch {
		case f.busy[key]:
		case !f.known[key]:
			fresh = append(fresh, key)
		case len(old) >= free:
		case arriving && k.Pending < f.opts.MaxAlertsPerSignal && now.Sub(k.Oldest) < f.opts.BusyWait:
			earliest(k.Oldest.Add(f.opts.BusyWait))
			deferred = true
		default:
			old = append(old, key)
		}
		return len(fresh) < free
	})
	if deferred {
		earliest(last.Add(f.opts.QuietAfter)) // the arrivals may stop before any wait ends
	}
	keys := append(fresh, old...)[:min(free, len(fresh)+len(old))]
	for _, k := range keys {
		f.busy[k] = true
	}
	f.mu.Unlock()
	if len(keys) == 0 {
		return 0, wake
	}
	items := f.sp.Leading(keys, f.opts.MaxAlertsPerSignal)
	chosen := make(map[string]bool, len(keys))
	for _, k := range keys {
		chosen[k] = true
	}
	batches := f.group(items, chosen)
	f.mu.Lock()
	for _, k := range keys {
		if !slices.ContainsFunc(batches, func(b *batch) bool { return b.key == k }) {
			delete(f.busy, k) // its leading item could not be decoded
		}
	}
	f.inflight += len(batches)
	f.mu.Unlock()
	sent := 0
	for _, b := range batches {
		sent += len(b.items)
		wg.Go(func() { f.run(ctx, b) })
	}
	if len(batches) < len(keys) {
		f.notify()
	}
	return sent, time.Time{}
}

// run makes one batch's call and settles it: delivered items wait for
// the shared acknowledgement (the key stays busy until then, so its next
// items are never read again before they are acknowledged); a failed
// batch's key backs off or, refused for good, is split or dead-lettered.
func (f *Forwarder) run(ctx context.Context, b *batch) {
	err := f.deliver(ctx, b)
	f.mu.Lock()
	f.inflight--
	f.mu.Unlock()
	f.notify()
	if err == nil {
		f.settle(b.key, nil)
		f.acknowledge(b)
		return
	}
	if IsPermanent(err) && f.opts.DeadLetters != nil {
		f.refused(b, err)
	} else {
		f.settle(b.key, err)
		f.opts.Log.Warn("alert delivery failed; will retry", "key", b.key, "alerts", len(b.items), "err", err)
	}
	f.mu.Lock()
	delete(f.busy, b.key)
	f.mu.Unlock()
	f.notify()
}

// acknowledge records b's items as delivered in the spool. Batches that
// end while an Ack runs are acknowledged together by the next one (one
// fsync for all of them), by whichever of their goroutines finds no Ack
// running; their keys are free again once it returns.
func (f *Forwarder) acknowledge(b *batch) {
	f.ackMu.Lock()
	f.acks = append(f.acks, b)
	if f.acking {
		f.ackMu.Unlock()
		return
	}
	f.acking = true
	for len(f.acks) > 0 {
		group := f.acks
		f.acks = nil
		f.ackMu.Unlock()
		var ids []spool.ID
		for _, g := range group {
			for _, it := range g.items {
				ids = append(ids, it.ID)
			}
		}
		if err := f.sp.Ack(ids); err != nil {
			// Delivered but not recorded: they are delivered again
			// (incidents deduplicate by alert id).
			f.opts.Log.Error("acknowledge delivered alerts", "alerts", len(ids), "err", err)
		} else {
			f.delivered.Add(int64(len(ids)))
		}
		f.mu.Lock()
		for _, g := range group {
			delete(f.busy, g.key)
			if !g.resolved {
				if len(f.known) >= maxKnown {
					clear(f.known)
				}
				f.known[g.key] = true
			}
		}
		f.mu.Unlock()
		f.notify()
		f.ackMu.Lock()
	}
	f.acking = false
	f.ackMu.Unlock()
}

// group splits items into per-key batches: for each key (in order of first
// appearance) the leading run of items of one kind (firing or resolved).
// Later items of a key wait for its next call, keeping per-key order.
//
// A batch is also closed by bytes (Options.MaxCallBytes) and, for a key whose batch Temporal refused for good, after one
// item (see refused). An item that cannot be decoded is dead-lettered
// when it leads its key (never expected: the intake wrote it).
//
// Only the keys in chosen are batched (the other items are not decoded).
func (f *Forwarder) group(items []spool.Item, chosen map[string]bool) []*batch {
	byKey := map[string]*batch{}
	closed := map[string]bool{}
	f.mu.Lock()
	single := maps.Clone(f.single)
	f.mu.Unlock()
	var out []*batch
	for _, it := range items {
		if closed[it.Key] || !chosen[it.Key] {
			continue
		}
		rec, err := itemRecord(it)
		if err != nil {
			f.opts.Log.Error("undecodable spooled alert", "id", it.ID.String(), "err", err)
			closed[it.Key] = true
			if b := byKey[it.Key]; b == nil {
				if f.opts.DeadLetters != nil {
					f.deadLetter([]spool.Item{it}, fmt.Errorf("%w: %w", errUndecodable, err))
				} else {
					f.settle(it.Key, err)
				}
			}
			continue
		}
		size := len(it.Data)
		b := byKey[it.Key]
		if b == nil {
			b = &batch{key: it.Key, resolved: rec.Resolved}
			byKey[it.Key] = b
			out = append(out, b)
		} else if b.resolved != rec.Resolved || single[it.Key] > 0 || b.bytes+size > f.opts.MaxCallBytes {
			closed[it.Key] = true
			continue
		}
		b.items = append(b.items, it)
		b.records = append(b.records, rec)
		b.bytes += size
	}
	return out
}

// DefaultBusyWait is the default Options.BusyWait: longer than a
// 10,000-alert storm takes to accept on a slow 2-core machine (3–4 s), so
// each running incident gets one signal while it lasts and one when it
// ends (BenchmarkAlertStorm on the cluster, on such a machine: with 2 s,
// 3.1–3.8 signals per incident and 12–26 % more processor time per
// alert). A follow-up alert of a running incident is late by at most this
// during a storm; an incident's first alert never waits.
const DefaultBusyWait = 5 * time.Second

// DefaultMaxCallBytes is the default Options.MaxCallBytes: a call, with
// the start's input and the largest signal, stays well under 256 KB.
const DefaultMaxCallBytes = 200 << 10

// errUndecodable marks a spooled record that cannot be decoded.
var errUndecodable = errors.New("spooled record cannot be decoded")

// IsPermanent reports whether Temporal (or the forwarder) refused a call
// for good: retrying the same payload can only fail the same way. Invalid
// arguments (the server's blob size limit among them), a request over the
// gRPC message limit, a non-retryable application error and an
// undecodable record are permanent; unavailability, timeouts, throttling
// and everything else are retried.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var ia *serviceerror.InvalidArgument
	var app *temporal.ApplicationError
	switch {
	case errors.Is(err, errUndecodable), errors.As(err, &ia):
		return true
	case errors.As(err, &app) && app.NonRetryable():
		return true
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.InvalidArgument:
			return true
		case codes.ResourceExhausted:
			return strings.Contains(st.Message(), "larger than max")
		}
	}
	var re *serviceerror.ResourceExhausted
	return errors.As(err, &re) && strings.Contains(re.Error(), "larger than max")
}

// refused handles a batch Temporal refused for good: a lone item goes to
// the dead-letter queue (and the key's next items flow); a larger batch is
// split, its items sent one per call, so only the item at fault is
// dead-lettered.
func (f *Forwarder) refused(b *batch, err error) {
	f.failures.Add(1)
	if len(b.items) > 1 {
		f.mu.Lock()
		f.single[b.key] = len(b.items)
		delete(f.backoff, b.key)
		f.mu.Unlock()
		f.opts.Log.Warn("batch refused for good; sending its alerts one by one", "key", b.key, "alerts", len(b.items), "err", err)
		return
	}
	f.deadLetter(b.items, err)
}

// deadLetter moves items to the dead-letter queue and acknowledges them in
// the spool; when the queue cannot take them the key backs off and they
// stay in the spool.
func (f *Forwarder) deadLetter(items []spool.Item, cause error) {
	for _, it := range items {
		dl := spool.DeadLetter{ID: it.ID.String(), Key: it.Key, Owner: it.Owner, Reason: cause.Error(), At: time.Now().UTC(), Data: it.Data}
		if err := f.opts.DeadLetters.Add(dl); err != nil {
			f.opts.Log.Error("dead-letter queue refused an item; it stays in the spool", "id", dl.ID, "key", it.Key, "err", err)
			f.settle(it.Key, err)
			return
		}
		if err := f.sp.Ack([]spool.ID{it.ID}); err != nil {
			// Kept in both: the next round refuses it again and the
			// dead letter is replaced (same id).
			f.opts.Log.Error("acknowledge dead-lettered item", "id", dl.ID, "err", err)
			f.settle(it.Key, err)
			return
		}
		f.deadLettered.Add(1)
		f.mu.Lock()
		if f.single[it.Key] > 0 {
			f.single[it.Key]--
		}
		delete(f.backoff, it.Key)
		f.mu.Unlock()
		f.opts.Log.Error("alert refused by Temporal for good; moved to the dead-letter queue", "id", dl.ID, "key", it.Key, "detector", it.Owner, "reason", dl.Reason)
		if f.opts.OnDeadLetter != nil {
			dl.Data = nil
			f.opts.OnDeadLetter(dl)
		}
	}
}

func (f *Forwarder) deliver(ctx context.Context, b *batch) error {
	// A call in flight is not cancelled when Run's context ends: its
	// outcome must be known so the item is acknowledged or kept, never
	// delivered twice after a graceful stop.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.opts.CallTimeout)
	defer cancel()
	f.mu.Lock()
	running := f.known[b.key]
	f.mu.Unlock()
	if err := deliver(ctx, f.sig, f.opts.TaskQueue, b.records, running); err != nil {
		f.failures.Add(1)
		return err
	}
	f.calls.Add(1)
	return nil
}

// Deliver sends records of one key and one kind (all firing or all
// resolved) in one call: a SignalWithStart of the key's incident for
// firing alerts (the alerts travel in the signal only; the start input
// names the incident), a Signal of the running incident for resolved ones (none
// running: nothing to do). The forwarder uses it; so does the replay of a
// dead letter.
func Deliver(ctx context.Context, sig Signaler, taskQueue string, recs []Record) error {
	return deliver(ctx, sig, taskQueue, recs, false)
}

// deliver is [Deliver]; with running (the forwarder delivered firing
// alerts of the key before, so its incident most likely runs) firing
// alerts go first in a plain Signal, which spares the start input and the
// search attributes their encoding and the server its checks of them
// (BenchmarkSignalCall in package intake), and only when no incident runs
// under the id in a SignalWithStart.
func deliver(ctx context.Context, sig Signaler, taskQueue string, recs []Record, running bool) error {
	if len(recs) == 0 {
		return nil
	}
	in := SignalInput(recs)
	id := workflows.IncidentWorkflowID(recs[0].Key)
	if recs[0].Resolved {
		_, err := sig.Signal(ctx, id, in)
		return err
	}
	if running {
		found, err := sig.Signal(ctx, id, in)
		if err != nil || found {
			return err
		}
	}
	if taskQueue == "" {
		taskQueue = workflows.TaskQueue
	}
	return sig.SignalWithStart(ctx, Start{WorkflowID: id, TaskQueue: taskQueue, Signal: in, Input: incidentInput(recs[0].Key, recs)})
}

// SignalInput is the alert signal of one call delivering recs: their
// alerts, in order.
func SignalInput(recs []Record) workflows.AlertSignalInput {
	alerts := make([]workflows.Alert, len(recs))
	for i, r := range recs {
		alerts[i] = r.Alert
	}
	return workflows.AlertSignalInput{Alerts: alerts}
}

// settle records the outcome of a call for key: success clears its
// backoff, failure doubles it.
func (f *Forwarder) settle(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.backoff, key)
		if f.single[key]--; f.single[key] <= 0 {
			delete(f.single, key)
		}
		return
	}
	r := f.backoff[key]
	if r == nil {
		r = &retry{delay: f.opts.MinBackoff}
		f.backoff[key] = r
	} else {
		r.delay = min(2*r.delay, f.opts.MaxBackoff)
	}
	jitter := time.Duration(rand.Int64N(int64(r.delay)/4 + 1))
	r.until = time.Now().Add(r.delay + jitter)
}

// incidentInput builds the start input from a key's first alerts: the
// incident's id, asset, severity and playbook. The alerts themselves go in
// the start's signal, which a new incident takes before its first step.
func incidentInput(key string, recs []Record) workflows.IncidentInput {
	first := recs[0]
	sev := ""
	for _, r := range recs {
		if severity.Rank(r.Alert.Severity) > severity.Rank(sev) {
			sev = r.Alert.Severity
		}
	}
	return workflows.IncidentInput{
		IncidentID: IncidentID(first.Alert),
		Key:        key,
		Asset:      first.Alert.Asset,
		AssetRef:   first.Alert.AssetRef,
		Severity:   sev,
		Playbook:   first.Playbook,
		OpenedBy:   first.OpenedBy,
	}
}

// IncidentID derives the human-facing incident id from the alert that
// opened it: "INC-" + receive date + "-" + 8 hex digits of its id's hash.
func IncidentID(a workflows.Alert) string {
	h := sha256.Sum256([]byte(a.ID))
	return fmt.Sprintf("INC-%s-%s", a.ReceivedAt.UTC().Format("20060102"), hex.EncodeToString(h[:4]))
}
