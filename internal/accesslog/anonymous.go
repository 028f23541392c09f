package accesslog

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// OtherSources is the source address of the aggregated record that
// collects the sources beyond Options.AnonymousSources in one minute.
const OtherSources = "other-sources"

// maxKinds bounds the distinct reasons and targets one aggregated record
// lists; the rest are counted under "other".
const maxKinds = 8

type aggKey struct {
	source string
	minute time.Time
}

type aggBucket struct {
	count       int64
	first, last time.Time
	statuses    map[int]int64
	reasons     map[string]int64
	targets     map[string]int64
}

// aggregator collects refused anonymous requests per source and minute.
type aggregator struct {
	mu      sync.Mutex
	max     int
	buckets map[aggKey]*aggBucket
	total   atomic.Int64
	counter *prometheus.CounterVec
}

func newAggregator(max int) *aggregator {
	return &aggregator{max: max, buckets: map[aggKey]*aggBucket{},
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iru_access_anonymous_refusals_total",
			Help: "Refused anonymous API requests (no or bad credentials, unknown detector, limited before authentication) by HTTP status; the ledger holds one aggregated record per source and minute.",
		}, []string{"status"})}
}

func (g *aggregator) add(r Record) {
	g.total.Add(1)
	g.counter.WithLabelValues(strconv.Itoa(r.Status)).Inc()
	t := r.Time.UTC()
	k := aggKey{source: cmp.Or(r.SourceIP, "unknown"), minute: t.Truncate(time.Minute)}
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.buckets[k]
	if b == nil {
		if len(g.buckets) >= g.max {
			k.source = OtherSources
			b = g.buckets[k]
		}
		if b == nil {
			b = &aggBucket{first: t, statuses: map[int]int64{}, reasons: map[string]int64{}, targets: map[string]int64{}}
			g.buckets[k] = b
		}
	}
	b.count++
	b.first, b.last = minTime(b.first, t), maxTime(b.last, t)
	b.statuses[r.Status]++
	bump(b.reasons, truncate(r.Detail, 100))
	bump(b.targets, truncate(strings.TrimSpace(r.Method+" "+r.Path), 200))
}

func bump(m map[string]int64, k string) {
	if k == "" {
		return
	}
	if _, ok := m[k]; !ok && len(m) >= maxKinds {
		k = "other"
	}
	m[k]++
}

// take removes and returns the records of the minutes before until (every
// minute when until is zero), oldest first.
func (g *aggregator) take(until time.Time) []Record {
	g.mu.Lock()
	var keys []aggKey
	for k := range g.buckets {
		if until.IsZero() || k.minute.Before(until) {
			keys = append(keys, k)
		}
	}
	taken := make(map[aggKey]*aggBucket, len(keys))
	for _, k := range keys {
		taken[k] = g.buckets[k]
		delete(g.buckets, k)
	}
	g.mu.Unlock()
	slices.SortFunc(keys, func(a, b aggKey) int {
		if c := a.minute.Compare(b.minute); c != 0 {
			return c
		}
		return strings.Compare(a.source, b.source)
	})
	out := make([]Record, 0, len(keys))
	for _, k := range keys {
		b := taken[k]
		out = append(out, Record{Time: k.minute, Action: ActionAnonymous, SourceIP: k.source, Count: b.count,
			Detail: b.detail(k.minute)})
	}
	return out
}

// detail renders a bucket: "minute=… first=… last=… status 401=998 429=2;
// reasons wrong api key=990 …; targets POST /v1/alerts/falco=1000".
func (b *aggBucket) detail(minute time.Time) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "minute=%s first=%s last=%s status", minute.Format("2006-01-02T15:04Z"),
		b.first.Format("15:04:05.000"), b.last.Format("15:04:05.000"))
	for _, s := range slices.Sorted(maps.Keys(b.statuses)) {
		fmt.Fprintf(&sb, " %d=%d", s, b.statuses[s])
	}
	for _, part := range []struct {
		name string
		m    map[string]int64
	}{{"reasons", b.reasons}, {"targets", b.targets}} {
		if len(part.m) == 0 {
			continue
		}
		sb.WriteString("; " + part.name)
		for _, k := range slices.Sorted(maps.Keys(part.m)) {
			fmt.Fprintf(&sb, " %s=%d", k, part.m[k])
		}
	}
	return sb.String()
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
