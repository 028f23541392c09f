package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/ratelimit"
)

// ClientIP resolves the client address of a request: the peer address,
// unless the peer is a trusted proxy, in which case X-Forwarded-For is read
// from the right, skipping trusted proxies; the first untrusted address is
// the client. Without trusted proxies X-Forwarded-For is ignored, so a
// client cannot choose the address the ledger records.
type ClientIP struct {
	Trusted []netip.Prefix
}

// Resolve returns the client address of r.
func (c ClientIP) Resolve(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !c.trusted(peer) {
		return peer.String()
	}
	client := peer
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: believe nothing left of it
		}
		client = a.Unmap()
		if !c.trusted(client) {
			break
		}
	}
	return client.String()
}

func (c ClientIP) trusted(a netip.Addr) bool {
	for _, p := range c.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

type ipKey struct{}

// clientIPFrom returns the client address observe stored in the request
// context, or the peer address.
func clientIPFrom(r *http.Request) string {
	if ip, ok := r.Context().Value(ipKey{}).(string); ok {
		return ip
	}
	return ClientIP{}.Resolve(r)
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe wraps a route: request id, client address, one structured JSON
// log line per request, and (unless public) the request's access-log
// record: with the identity the handler verified, in the room the handler
// reserved for it (never dropped); without one, counted and aggregated per
// source and minute (see package accesslog).
func (s *Server) observe(route Route) http.Handler {
	resolver := ClientIP{Trusted: s.TrustedProxies}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rid := uuid.NewString()
		ip := resolver.Resolve(r)
		var ctx context.Context
		var slot *accesslog.Slot
		if route.Public {
			ctx, slot = accesslog.WithSlot(context.WithValue(r.Context(), ipKey{}, ip))
		} else {
			ctx, slot = s.Access.WithSlot(context.WithValue(r.Context(), ipKey{}, ip), ip)
		}
		w.Header().Set("X-Request-ID", rid)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log().Error("handler panicked", "route", route.Pattern, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeJSON(sw, http.StatusInternalServerError, apiError{Error: "internal error"})
				}
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			dur := time.Since(start)
			level := slog.LevelInfo
			if route.Public {
				level = slog.LevelDebug
			}
			s.log().Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path, "route", route.Pattern,
				"status", status, "bytes", sw.bytes, "duration_ms", float64(dur.Microseconds())/1000, "ip", ip,
				"actor", cmp.Or(slot.Actor(), accesslog.Anonymous), "request_id", rid, "user_agent", r.UserAgent())
			slot.Finish(accesslog.Record{Time: start, Action: accesslog.ActionRequest, SourceIP: ip,
				Method: r.Method, Path: r.URL.Path, Status: status, RequestID: rid, UserAgent: r.UserAgent(), Duration: dur})
		}()
		route.Handler.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
	// Code is a stable, machine-readable reason (wrong_role, four_eyes, …).
	Code string `json:"code,omitempty"`
	// Need lists the roles of which the caller needs one (403 forbidden).
	Need []string `json:"need,omitempty"`
}

func writeError(w http.ResponseWriter, status int, e apiError) { writeJSON(w, status, e) }

// unauthenticated answers 401 with the RFC 6750 challenge.
func unauthenticated(w http.ResponseWriter, tokenPresented bool) {
	challenge := `Bearer realm="iru"`
	if tokenPresented {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, apiError{Error: "unauthenticated"})
}

// authenticate verifies the bearer token; on success the identity (with
// the client address) is in the request context and named in the access
// log, whose room for the request's record is reserved before the route
// acts (no room in time: 503, nothing done). Failures answer 401, are
// aggregated in the access log with their reason and counted per client
// address; crossing the threshold notifies. A request without any token
// answers 401 too but is not counted as a failed authentication.
func (rs *Responder) authenticate(next func(http.ResponseWriter, *http.Request, auth.Identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ip := clientIPFrom(r)
		raw := auth.BearerToken(r)
		if raw == "" {
			unauthenticated(w, r.Header.Get("Authorization") != "")
			return
		}
		id, err := rs.verifier.Verify(r.Context(), raw)
		if err != nil {
			if !errors.Is(err, auth.ErrUnauthenticated) {
				// The identity provider cannot be reached: not the caller's fault.
				rs.log.Error("cannot verify tokens", "err", err)
				writeError(w, http.StatusServiceUnavailable, apiError{Error: "identity provider unavailable", Code: "idp_unavailable"})
				return
			}
			rs.authFailed(r, ip, err)
			unauthenticated(w, true)
			return
		}
		id.SourceIP = ip
		if err := accesslog.Authenticated(r.Context(), id.Actor(), rs.authSucceeded(r, ip, id)...); err != nil {
			rs.log.Error("request refused: the audit log has no room for its record", "actor", id.Actor(), "err", err)
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, apiError{Error: "audit log unavailable; retry later", Code: "audit_unavailable"})
			return
		}
		next(w, r.WithContext(auth.WithIdentity(r.Context(), id)), id)
	}
}

func (rs *Responder) authFailed(r *http.Request, ip string, err error) {
	reason := strings.TrimPrefix(err.Error(), auth.ErrUnauthenticated.Error()+": ")
	if len(reason) > 200 {
		reason = reason[:200]
	}
	rs.log.Warn("authentication failed", "ip", ip, "path", r.URL.Path, "reason", reason)
	accesslog.SetDetail(r.Context(), "auth failure: "+reason) // aggregated with the request's record
	rs.watch.Failure(ip)
}

// authSucceeded returns the auth.success record of the identity's first
// request of its session and day (nil otherwise).
func (rs *Responder) authSucceeded(r *http.Request, ip string, id auth.Identity) []accesslog.Record {
	if rs.access == nil {
		return nil
	}
	day := rs.now().UTC().Format(time.DateOnly)
	key := id.Actor() + "|" + cmp.Or(id.SessionID, ip)
	rs.mu.Lock()
	if len(rs.sessions) > 10000 {
		clear(rs.sessions)
	}
	first := rs.sessions[key] != day
	rs.sessions[key] = day
	rs.mu.Unlock()
	if !first {
		return nil
	}
	return []accesslog.Record{{Action: accesslog.ActionAuthSuccess, Actor: id.Actor(), SourceIP: ip, Method: r.Method,
		Path: r.URL.Path, UserAgent: r.UserAgent(), Detail: "session " + id.SessionID + " client " + id.ClientID}}
}

// thresholdCrossed runs when failures from one client address reach the
// threshold: it logs, records and notifies (in the background: the
// response never waits for the notification).
func (rs *Responder) thresholdCrossed(ip string, failures int) {
	summary := fmt.Sprintf("%d failed responder API authentications from %s within %s", failures, ip, rs.cfg.AuthFailWindow)
	rs.log.Error("failed authentication threshold crossed", "ip", ip, "failures", failures, "window", rs.cfg.AuthFailWindow.String())
	if rs.access != nil {
		rs.access.Record(accesslog.Record{Action: accesslog.ActionAuthThreshold, SourceIP: ip, Detail: summary})
	}
	if rs.notifier == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ev := notifyEvent(rs.now(), ip, failures, rs.cfg.AuthFailWindow, summary)
		if _, err := rs.notifier.Send(ctx, ev); err != nil {
			rs.log.Error("failed-auth notification not delivered", "ip", ip, "err", err)
		}
	}()
}

// requireRoles answers 403 unless the identity holds one of roles (nil:
// any verified identity).
func requireRoles(roles []string, next func(http.ResponseWriter, *http.Request, auth.Identity)) func(http.ResponseWriter, *http.Request, auth.Identity) {
	if len(roles) == 0 {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request, id auth.Identity) {
		if !id.HasAnyRole(roles...) {
			writeError(w, http.StatusForbidden, apiError{Error: "forbidden", Need: roles})
			return
		}
		next(w, r, id)
	}
}

// limit bounds the requests of one client address (rate and in flight,
// before anything is authenticated or read), the request body and the
// time a request may take.
func (rs *Responder) limit(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ip := clientIPFrom(r)
		release, ref := rs.sources.Acquire(ip, rate.Limit(rs.cfg.SourceRate), rs.cfg.SourceBurst, rs.cfg.SourceConcurrency, rs.now())
		if ref != nil {
			w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfterSeconds(ref.RetryAfter)))
			writeError(w, http.StatusTooManyRequests, apiError{Error: "too many requests from " + ip + ": " + ref.Why, Code: "rate_limited"})
			return
		}
		defer release()
		ctx, cancel := context.WithTimeout(r.Context(), rs.cfg.RequestTimeout)
		defer cancel()
		r.Body = http.MaxBytesReader(w, r.Body, rs.cfg.MaxBodyBytes)
		next(w, r.WithContext(ctx))
	}
}

// errBadBody is returned by decodeBody; the message is the answer.
type errBadBody struct {
	status int
	msg    string
}

func (e *errBadBody) Error() string { return e.msg }

// decodeBody reads one JSON object into v. An empty body leaves v alone.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return &errBadBody{http.StatusBadRequest, "body: want one JSON object"}
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return &errBadBody{http.StatusBadRequest, "body: want one JSON object"}
		}
		return nil
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &tooBig):
		return &errBadBody{http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit)}
	}
	return &errBadBody{http.StatusBadRequest, "body: " + err.Error()}
}
