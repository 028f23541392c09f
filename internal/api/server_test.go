package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/iru-responder/responder/internal/metrics"
)

type fakeTemporal struct{ err error }

func (f fakeTemporal) Ready(context.Context) error { return f.err }

func TestHealthAndReadiness(t *testing.T) {
	reg, err := metrics.New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		temporal   error
		internal   bool
		path       string
		wantStatus int
		wantBody   string
	}{
		{"healthz ignores temporal", errors.New("down"), false, "/healthz", 200, `"ok"`},
		{"ready", nil, false, "/readyz", 200, `"ready"`},
		{"not ready", errors.New("connection refused"), false, "/readyz", 503, `"unreachable"`},
		// The public listener does not serve the platform's metrics.
		{"no metrics on the public listener", nil, false, "/metrics", 404, ""},
		{"unknown route", nil, false, "/nope", 404, ""},
		{"metrics on the internal listener", nil, true, "/metrics", 200, "go_goroutines"},
		{"healthz on the internal listener", nil, true, "/healthz", 200, `"ok"`},
		{"readyz on the internal listener", errors.New("down"), true, "/readyz", 503, `"unreachable"`},
		{"nothing else on the internal listener", nil, true, "/api/v1/incidents", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Temporal: fakeTemporal{tt.temporal}, Metrics: reg}
			h := s.Handler()
			if tt.internal {
				h = s.InternalHandler()
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.wantBody)
			}
		})
	}
}
