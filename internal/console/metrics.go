package console

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/workflows"
)

// TrendMetricsInterval is how often `starter serve` recomputes the trend
// metrics.
const TrendMetricsInterval = time.Minute

// IncidentReader is the part of the API server's Temporal client the
// trend metrics read incidents with.
type IncidentReader interface {
	ListWorkflow(ctx context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
}

// TrendMetrics are the trends page's figures as Prometheus metrics,
// computed by the same code (trendsOf) from the newest incidents, read
// every interval by the API server with its own Temporal client (not with
// a person's token: the metrics are on the internal listener).
type TrendMetrics struct {
	Client IncidentReader
	// Drills adds the drill objectives (nil: none).
	Drills DrillSource
	Log    *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	mu   sync.Mutex
	last trendsView
	at   time.Time
}

// trendDescs are the metrics' descriptions, by chart id.
var trendDescs = map[string]*prometheus.Desc{
	"detect-week":       prometheus.NewDesc("iru_trend_time_to_detect_minutes", "Mean time from a detector's observation to the incident, per ISO week of opening.", []string{"week"}, nil),
	"contain-week":      prometheus.NewDesc("iru_trend_time_to_contain_minutes", "Mean time to contain, per ISO week of opening.", []string{"week"}, nil),
	"recover-week":      prometheus.NewDesc("iru_trend_time_to_recover_minutes", "Mean time to recover, per ISO week of opening.", []string{"week"}, nil),
	"contain-playbook":  prometheus.NewDesc("iru_trend_playbook_time_to_contain_minutes", "Mean time to contain, per playbook.", []string{"playbook"}, nil),
	"recover-playbook":  prometheus.NewDesc("iru_trend_playbook_time_to_recover_minutes", "Mean time to recover, per playbook.", []string{"playbook"}, nil),
	"open-phase":        prometheus.NewDesc("iru_incidents_open", "Open incidents, per phase.", []string{"phase"}, nil),
	"approvals-waiting": prometheus.NewDesc("iru_approval_waiting_minutes", "Age of each approval waiting for people.", []string{"approval"}, nil),
	"drill-objectives":  prometheus.NewDesc("iru_drill_objectives_met_percent", "Share of a drill run's objectives met, per run (drill and day).", []string{"run"}, nil),
}

// updatedDesc is when the figures were last computed.
var updatedDesc = prometheus.NewDesc("iru_trend_updated_timestamp_seconds", "When the trend metrics were last computed (Unix time).", nil, nil)

// Describe implements prometheus.Collector.
func (m *TrendMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range trendDescs {
		ch <- d
	}
	ch <- updatedDesc
}

// Collect implements prometheus.Collector: the last computed figures.
func (m *TrendMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	tv, at := m.last, m.at
	m.mu.Unlock()
	if at.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(updatedDesc, prometheus.GaugeValue, float64(at.Unix()))
	for _, c := range tv.Charts {
		d := trendDescs[c.ID]
		if d == nil {
			continue
		}
		for _, b := range c.Bars {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, b.Value, b.Label)
		}
	}
}

// Refresh reads the newest incidents and drill runs and recomputes the
// figures.
func (m *TrendMetrics) Refresh(ctx context.Context) error {
	resp, err := m.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: maxTrendIncidents,
		Query: fmt.Sprintf("WorkflowType = '%s' ORDER BY StartTime DESC", workflows.IncidentWorkflow)})
	if err != nil {
		return fmt.Errorf("console: trend metrics: list incidents: %w", err)
	}
	var views []api.IncidentView
	for _, e := range resp.GetExecutions() {
		wf := e.GetExecution()
		v, err := m.Client.QueryWorkflow(ctx, wf.GetWorkflowId(), wf.GetRunId(), workflows.StatusQuery)
		if err != nil {
			continue // an incident that cannot answer now is left out of this round
		}
		var st workflows.IncidentStatus
		if err := v.Get(&st); err != nil {
			continue
		}
		views = append(views, api.IncidentView{ID: st.Key, Status: api.StatusViewOf(st)})
	}
	var dv []DrillView
	if m.Drills != nil {
		if dv, err = m.Drills.Drills(ctx); err != nil && m.Log != nil {
			m.Log.Warn("console: trend metrics: drills", "err", err)
		}
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	t := now()
	tv := trendsOf(views, dv, t)
	m.mu.Lock()
	m.last, m.at = tv, t
	m.mu.Unlock()
	return nil
}

// Run refreshes the figures every interval until ctx ends.
func (m *TrendMetrics) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, interval)
		if err := m.Refresh(rctx); err != nil && ctx.Err() == nil && m.Log != nil {
			m.Log.Warn("console: trend metrics", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
