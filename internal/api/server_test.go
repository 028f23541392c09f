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
		path       string
		wantStatus int
		wantBody   string
	}{
		{"healthz ignores temporal", errors.New("down"), "/healthz", 200, `"ok"`},
		{"ready", nil, "/readyz", 200, `"ready"`},
		{"not ready", errors.New("connection refused"), "/readyz", 503, `"unreachable"`},
		{"metrics", nil, "/metrics", 200, "go_goroutines"},
		{"unknown route", nil, "/nope", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Temporal: fakeTemporal{tt.temporal}, Metrics: reg}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.wantBody)
			}
		})
	}
}
