package forward

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iru-responder/responder/internal/intake/parse"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/workflows"
)

// Options tune the forwarder.
type Options struct {
	// TaskQueue is where incident workflows start (default
	// workflows.TaskQueue; tests use their own).
	TaskQueue string
	// Window is how many pending items one round looks at (default 2000).
	Window int
	// MaxAlertsPerSignal bounds one signal's alerts (default 100).
	MaxAlertsPerSignal int
	// Concurrency bounds the calls in flight (default 8).
	Concurrency int
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
}

// Forwarder drains a spool into incident workflows.
type Forwarder struct {
	sp   *spool.Spool
	sig  Signaler
	opts Options

	mu      sync.Mutex
	backoff map[string]*retry

	delivered, calls, failures atomic.Int64
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
	if opts.Window <= 0 {
		opts.Window = 2000
	}
	if opts.MaxAlertsPerSignal <= 0 {
		opts.MaxAlertsPerSignal = 100
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
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
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Forwarder{sp: sp, sig: sig, opts: opts, backoff: map[string]*retry{}}
}

// Stats returns the counters.
func (f *Forwarder) Stats() Stats {
	return Stats{Delivered: f.delivered.Load(), Calls: f.calls.Load(), Failures: f.failures.Load()}
}

// Run delivers until ctx ends; it returns ctx's error. Calls in flight
// when ctx ends finish (within CallTimeout) and are acknowledged first.
func (f *Forwarder) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		ready := f.sp.Ready() // before Pending: an append after it wakes us
		n, wake := f.round(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n > 0 {
			continue
		}
		if err := wait(ctx, ready, wake); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// wait blocks until ctx ends, ready is closed or wake (if set) passes.
func wait(ctx context.Context, ready <-chan struct{}, wake time.Time) error {
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
	case <-timer:
	}
	return nil
}

// batch is one call: the leading run of a key's pending items.
type batch struct {
	key      string
	resolved bool
	items    []spool.Item
	records  []Record
}

// round runs one delivery round; it returns how many items it attempted
// and, when it attempted none, when the earliest backoff ends (zero: none).
func (f *Forwarder) round(ctx context.Context) (int, time.Time) {
	now := time.Now()
	var wake time.Time
	perKey := map[string]int{}
	f.mu.Lock()
	skip := func(key string) bool {
		if r, ok := f.backoff[key]; ok && now.Before(r.until) {
			if wake.IsZero() || r.until.Before(wake) {
				wake = r.until
			}
			return true
		}
		if perKey[key] >= f.opts.MaxAlertsPerSignal {
			return true
		}
		perKey[key]++
		return false
	}
	items := f.sp.Pending(f.opts.Window, skip)
	f.mu.Unlock()
	if len(items) == 0 {
		return 0, wake
	}
	batches := f.group(items)

	sem := make(chan struct{}, f.opts.Concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var done []spool.ID
	for _, b := range batches {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := f.deliver(ctx, b)
			f.settle(b.key, err)
			if err != nil {
				f.opts.Log.Warn("alert delivery failed; will retry", "key", b.key, "alerts", len(b.items), "err", err)
				return
			}
			mu.Lock()
			for _, it := range b.items {
				done = append(done, it.ID)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(done) > 0 {
		if err := f.sp.Ack(done); err != nil {
			// Delivered but not recorded: they are delivered again
			// (incidents deduplicate by alert id).
			f.opts.Log.Error("acknowledge delivered alerts", "alerts", len(done), "err", err)
		} else {
			f.delivered.Add(int64(len(done)))
		}
	}
	return len(items), time.Time{}
}

// group splits items into per-key batches: for each key (in order of first
// appearance) the leading run of items of one kind (firing or resolved).
// Later items of a key wait for the next round, keeping per-key order.
func (f *Forwarder) group(items []spool.Item) []*batch {
	byKey := map[string]*batch{}
	closed := map[string]bool{}
	var out []*batch
	for _, it := range items {
		if closed[it.Key] {
			continue
		}
		rec, err := UnmarshalRecord(it.Data)
		if err != nil {
			// Never expected (the intake wrote it); hold the key back
			// rather than drop the alert.
			f.opts.Log.Error("undecodable spooled alert", "id", it.ID.String(), "err", err)
			closed[it.Key] = true
			if b := byKey[it.Key]; b == nil {
				f.settle(it.Key, err)
			}
			continue
		}
		b := byKey[it.Key]
		if b == nil {
			b = &batch{key: it.Key, resolved: rec.Resolved}
			byKey[it.Key] = b
			out = append(out, b)
		} else if b.resolved != rec.Resolved {
			closed[it.Key] = true
			continue
		}
		b.items = append(b.items, it)
		b.records = append(b.records, rec)
	}
	return out
}

func (f *Forwarder) deliver(ctx context.Context, b *batch) error {
	// A call in flight is not cancelled when Run's context ends: its
	// outcome must be known so the item is acknowledged or kept, never
	// delivered twice after a graceful stop.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.opts.CallTimeout)
	defer cancel()
	alerts := make([]workflows.Alert, len(b.records))
	for i, r := range b.records {
		alerts[i] = r.Alert
	}
	sig := workflows.AlertSignalInput{Alerts: alerts}
	id := workflows.IncidentWorkflowID(b.key)
	var err error
	if b.resolved {
		_, err = f.sig.Signal(ctx, id, sig)
	} else {
		err = f.sig.SignalWithStart(ctx, Start{
			WorkflowID: id,
			TaskQueue:  f.opts.TaskQueue,
			Signal:     sig,
			Input:      incidentInput(b.key, b.records, alerts),
		})
	}
	if err != nil {
		f.failures.Add(1)
		return err
	}
	f.calls.Add(1)
	return nil
}

// settle records the outcome of a call for key: success clears its
// backoff, failure doubles it.
func (f *Forwarder) settle(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.backoff, key)
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

// incidentInput builds the start input from a key's first alerts.
func incidentInput(key string, recs []Record, alerts []workflows.Alert) workflows.IncidentInput {
	first := recs[0]
	sev := ""
	for _, r := range recs {
		if parse.SeverityRank(r.Alert.Severity) > parse.SeverityRank(sev) {
			sev = r.Alert.Severity
		}
	}
	return workflows.IncidentInput{
		IncidentID: IncidentID(first.Alert),
		Key:        key,
		Alerts:     alerts,
		Asset:      first.Alert.Asset,
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
