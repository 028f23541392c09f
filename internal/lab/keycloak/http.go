package keycloak

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"
)

// routes builds the top-level handler. Paths are routed on the decoded r.URL.Path by splitting
// segments, never through http.ServeMux patterns (whose redirects break POST/PUT clients).
func (s *Server) routes() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			s.log.Debug("keycloak simulator request", "method", req.Method, "path", req.URL.Path,
				"status", sw.status, "dur", time.Since(start))
		}()
		p := req.URL.Path
		if p == "/_lab" || strings.HasPrefix(p, "/_lab/") {
			s.serveLab(sw, req)
			return
		}
		if s.applyFaults(sw, req) {
			return
		}
		switch {
		case strings.HasPrefix(p, "/realms/"):
			s.serveRealms(sw, req, splitPath(strings.TrimPrefix(p, "/realms/")))
		case p == "/admin/realms" || strings.HasPrefix(p, "/admin/realms/"):
			s.serveAdmin(sw, req, strings.TrimPrefix(p, "/admin/realms"))
		default:
			writeJSON(sw, http.StatusNotFound, map[string]string{"error": "Unable to find matching target resource method"})
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// writeJSON writes v with Keycloak's JSON content type. Every JSON body goes through here.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"unknown_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeNoContent answers 204 with no body and no content type (void admin endpoints).
func writeNoContent(w http.ResponseWriter) {
	w.WriteHeader(http.StatusNoContent)
}

// oauthError is an OAuth2 error response body.
type oauthError struct {
	status      int
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func oauthErr(status int, code, desc string) *oauthError {
	return &oauthError{status: status, Error: code, Description: desc}
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, e.status, e)
}

// writeAdminError writes Keycloak's admin error shape {"error": msg}.
func writeAdminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeErrorMessage writes Keycloak's ErrorRepresentation {"errorMessage": msg}.
func writeErrorMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"errorMessage": msg})
}

// issuerBase is the scheme://host Keycloak uses for issuers: Options.FrontendURL, or the request's.
func (s *Server) issuerBase(req *http.Request) string {
	if s.opts.FrontendURL != "" {
		return strings.TrimRight(s.opts.FrontendURL, "/")
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + req.Host
}

func (s *Server) issuer(req *http.Request, realmName string) string {
	return s.issuerBase(req) + "/realms/" + realmName
}

func clientIP(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

func bearerToken(req *http.Request) string {
	h := req.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
