// Package metrics exposes the process's Prometheus metrics: the Temporal
// SDK's own metrics (through its OpenTelemetry handler and the OpenTelemetry
// Prometheus exporter), the Go runtime, and the platform's own counters.
package metrics

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// Registry holds one process's metrics.
type Registry struct {
	// Prometheus is where the platform registers its own collectors.
	Prometheus *prometheus.Registry
	provider   *sdkmetric.MeterProvider
	temporal   client.MetricsHandler
}

// New creates a registry with the Go runtime and process collectors and a
// Temporal SDK metrics handler that reports into it.
func New() (*Registry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("metrics: prometheus exporter: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	h := temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter:   provider.Meter("temporal-sdk-go"),
		OnError: func(error) {}, // a metric that cannot be recorded must not crash the worker
	})
	return &Registry{Prometheus: reg, provider: provider, temporal: h}, nil
}

// TemporalHandler is the metrics handler to set on client.Options.
func (r *Registry) TemporalHandler() client.MetricsHandler { return r.temporal }

// Handler serves the metrics in the Prometheus text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.Prometheus, promhttp.HandlerOpts{Registry: r.Prometheus})
}
