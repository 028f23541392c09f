// Package api is the HTTP API server of IRU Responder (`starter serve`):
// health and readiness, the detector intake (mounted from package intake)
// and the responder API ([Responder], under /api/v1) on the public
// listener; Prometheus metrics, health and readiness on a separate
// internal listener ([Server.InternalHandler]), so that the public port
// never exposes the platform's metrics.
//
// Every route but /healthz and /readyz needs credentials, is
// logged as one structured JSON line and is recorded in the audit ledger
// through the access log (package accesslog). [Server.Routes] is the one
// route table: the handler is built from it and a test walks it.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/metrics"
)

// TemporalHealth is the part of the Temporal client that readiness needs.
type TemporalHealth interface {
	Ready(ctx context.Context) error
}

// Server is the API server.
type Server struct {
	Log      *slog.Logger
	Temporal TemporalHealth
	Metrics  *metrics.Registry

	// Responder is the responder API, under /api/v1 (nil: not mounted).
	Responder *Responder
	// Console is the browser console (package console), mounted under
	// /console/ (nil: not mounted). It signs people in itself (session
	// cookie) and acts only through [Responder.Handler].
	Console http.Handler
	// Intake is the detector intake handler, mounted at IntakePattern
	// (intake.Pattern); nil: not mounted. It authenticates detectors
	// itself and names them with accesslog.SetActor.
	Intake        http.Handler
	IntakePattern string
	// Access records every intake and responder request in the audit
	// ledger (nil: not recorded).
	Access *accesslog.Logger
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed (see [ClientIP]).
	TrustedProxies []netip.Prefix

	mu            sync.Mutex // guards srv and internal
	srv, internal *http.Server
}

// Route is one route of the server.
type Route struct {
	// Pattern is the ServeMux pattern, e.g. "GET /api/v1/incidents/{id}".
	Pattern string
	// Public routes answer without credentials: health and readiness
	// only.
	Public  bool
	Handler http.Handler
}

// Routes returns every route the handler serves.
func (s *Server) Routes() []Route {
	routes := []Route{
		{Pattern: "GET /healthz", Public: true, Handler: http.HandlerFunc(s.healthz)},
		{Pattern: "GET /readyz", Public: true, Handler: http.HandlerFunc(s.readyz)},
	}
	if s.Intake != nil && s.IntakePattern != "" {
		routes = append(routes, Route{Pattern: s.IntakePattern, Handler: s.Intake})
	}
	if s.Responder != nil {
		for _, rt := range s.Responder.Routes() {
			routes = append(routes, Route{Pattern: rt.Method + " " + rt.Path, Handler: s.Responder.handler(rt)})
		}
	}
	if s.Console != nil {
		routes = append(routes, Route{Pattern: ConsolePattern, Handler: s.Console})
	}
	return routes
}

// ConsolePattern is the route of the browser console.
const ConsolePattern = "/console/"

// Handler serves the responder API's routes with their authentication,
// roles and limits, without the server's access log and request log: the
// browser console calls it in-process, inside a request the [Server]
// already observes, with the signed-in person's bearer token.
func (rs *Responder) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range rs.Routes() {
		mux.Handle(rt.Method+" "+rt.Path, rs.handler(rt))
	}
	return mux
}

// Handler returns the server's routes, each logged and (unless public)
// recorded in the access log.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.Routes() {
		mux.Handle(rt.Pattern, s.observe(rt))
	}
	return mux
}

// InternalHandler serves the internal listener: Prometheus /metrics, and
// /healthz and /readyz for orchestration that probes the internal network.
// It is not recorded in the access log (nothing on it acts or reads data).
func (s *Server) InternalHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics.Handler())
	}
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Temporal.Ready(ctx); err != nil {
		s.log().Warn("not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "temporal": "unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "temporal": "ok"})
}

// Serve serves the public routes on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	srv := httpServer(s.Handler())
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeInternal serves [Server.InternalHandler] on ln until Shutdown. Call
// it before Serve or concurrently, not after Shutdown.
func (s *Server) ServeInternal(ln net.Listener) error {
	srv := httpServer(s.InternalHandler())
	s.mu.Lock()
	s.internal = srv
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Shutdown stops both listeners gracefully within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers := []*http.Server{s.srv, s.internal}
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if srv != nil {
			errs = append(errs, srv.Shutdown(ctx))
		}
	}
	return errors.Join(errs...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
