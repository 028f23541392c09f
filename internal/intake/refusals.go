package intake

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/internal/ratelimit"
)

// Reasons of a [Refusal].
const (
	// RefusedBudget: an alert over a byte budget (413).
	RefusedBudget = "budget"
	// RefusedScope: an alert about an asset or account outside the
	// detector's scope (403).
	RefusedScope = "scope"
	// RefusedQuota: the detector holds its whole spool quota (503).
	RefusedQuota = "quota"
)

// Refusal is an authenticated request the intake refused because of what
// it carried; nothing of it was accepted. The API server records it in
// the access log (ledger).
type Refusal struct {
	Time       time.Time
	Detector   string
	KeyID      string
	RemoteAddr string
	// Reason is RefusedBudget, RefusedScope or RefusedQuota.
	Reason string
	// Status is the HTTP status answered.
	Status int
	// Detail is the error the detector received.
	Detail string
}

// Metrics are the intake's Prometheus collectors.
type Metrics struct {
	refusals    *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
}

// NewMetrics registers the intake's collectors on reg: refusals by
// detector and reason, dead letters added by detector, and the dead-letter
// queue's current size (dl may be nil).
func NewMetrics(reg prometheus.Registerer, dl *spool.DeadLetters) (*Metrics, error) {
	m := &Metrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iru_intake_refusals_total",
			Help: "Authenticated intake requests refused for what they carried, by detector and reason (budget, scope, quota)."}, []string{"detector", "reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iru_intake_dead_letters_total",
			Help: "Spooled alerts Temporal refused for good, moved to the dead-letter queue, by detector."}, []string{"detector"}),
	}
	cs := []prometheus.Collector{m.refusals, m.deadLetters}
	if dl != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iru_intake_dead_letters",
			Help: "Alerts in the dead-letter queue now (starter intake dead-letters list)."}, func() float64 { return float64(dl.Count()) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

// Refused counts a refusal (nil m: nothing).
func (m *Metrics) Refused(detector, reason string) {
	if m != nil {
		m.refusals.WithLabelValues(detector, reason).Inc()
	}
}

// DeadLettered counts a dead letter (nil m: nothing).
func (m *Metrics) DeadLettered(dl spool.DeadLetter) {
	if m != nil {
		m.deadLetters.WithLabelValues(dl.Owner).Inc()
	}
}

// refuse answers an authenticated request refused for what it carried,
// counts it and reports it.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, id auth.Identity, reason string, status int, body error) {
	h.opts.Metrics.Refused(id.Detector, reason)
	if h.opts.OnRefusal != nil {
		h.opts.OnRefusal(Refusal{Time: h.opts.Now().UTC(), Detector: id.Detector, KeyID: id.KeyID, RemoteAddr: r.RemoteAddr,
			Reason: reason, Status: status, Detail: body.Error()})
	}
	if status == http.StatusServiceUnavailable {
		h.unavailable.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfterSeconds(h.opts.RetryAfter)))
		writeJSON(w, status, map[string]string{"error": body.Error()})
		return
	}
	h.rejected.Add(1)
	writeJSON(w, status, body)
}

// scopeOf is the authenticated detector's scope (none when a reload
// removed it since it authenticated).
func (h *Handler) scopeOf(id auth.Identity) auth.Scope {
	det, _ := h.opts.Auth.Detector(id.Detector)
	return det.Scope
}

// Quota returns the spool quota function of a service: a detector's own
// spool_quota_bytes, or def.
func Quota(a *auth.Authenticator, def int64) func(owner string) int64 {
	return func(owner string) int64 {
		if d, ok := a.Detector(owner); ok && d.SpoolQuotaBytes > 0 {
			return d.SpoolQuotaBytes
		}
		return def
	}
}
