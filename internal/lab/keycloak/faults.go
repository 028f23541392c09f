package keycloak

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Fault is one fault-injection rule, applied to matching requests under /realms and /admin.
// The first matching rule wins. JSON form (PUT /_lab/faults):
//
//	{"faults":[{"method":"POST","path":"/realms/iru/protocol/openid-connect/token",
//	            "latencyMs":200,"status":503,"errorRate":0.5,"times":3}]}
type Fault struct {
	// Method matches the HTTP method; empty matches any.
	Method string `json:"method,omitempty"`
	// Path matches r.URL.Path exactly, or as a prefix when it ends with '*'; empty matches any.
	Path string `json:"path,omitempty"`
	// LatencyMS delays the response by that many milliseconds.
	LatencyMS int64 `json:"latencyMs,omitempty"`
	// Status, when non-zero, answers with that status and {"error":"unknown_error"}.
	Status int `json:"status,omitempty"`
	// ErrorRate is the probability (0..1) that Status is returned; 0 with a Status means always.
	ErrorRate float64 `json:"errorRate,omitempty"`
	// Hang holds the request open until the client gives up or the server
	// closes, then drops the connection without an answer.
	Hang bool `json:"hang,omitempty"`
	// Times limits how many requests the rule affects; 0 means unlimited.
	Times int `json:"times,omitempty"`
}

type faultRule struct {
	Fault
	used int
}

type faultSet struct {
	mu    sync.Mutex
	rules []*faultRule
}

func newFaultSet() *faultSet { return &faultSet{} }

func (f Fault) validate() error {
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		return fmt.Errorf("fault %s %s: errorRate %v outside 0..1", f.Method, f.Path, f.ErrorRate)
	}
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		return fmt.Errorf("fault %s %s: status %d is not an error status", f.Method, f.Path, f.Status)
	}
	if f.LatencyMS < 0 || f.Times < 0 {
		return fmt.Errorf("fault %s %s: negative latencyMs or times", f.Method, f.Path)
	}
	return nil
}

// SetFaults replaces the fault-injection rules; nil or empty clears them.
func (s *Server) SetFaults(faults []Fault) error {
	rules := make([]*faultRule, 0, len(faults))
	for _, f := range faults {
		if err := f.validate(); err != nil {
			return fmt.Errorf("set faults: %w", err)
		}
		rules = append(rules, &faultRule{Fault: f})
	}
	s.faults.mu.Lock()
	s.faults.rules = rules
	s.faults.mu.Unlock()
	return nil
}

// Faults returns the current fault-injection rules.
func (s *Server) Faults() []Fault {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	out := make([]Fault, 0, len(s.faults.rules))
	for _, r := range s.faults.rules {
		out = append(out, r.Fault)
	}
	return out
}

// pick returns the first rule matching req, consuming one of its uses.
func (fs *faultSet) pick(req *http.Request) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, r := range fs.rules {
		if r.Method != "" && !strings.EqualFold(r.Method, req.Method) {
			continue
		}
		if r.Path != "" {
			if prefix, ok := strings.CutSuffix(r.Path, "*"); ok {
				if !strings.HasPrefix(req.URL.Path, prefix) {
					continue
				}
			} else if r.Path != req.URL.Path {
				continue
			}
		}
		if r.Times > 0 && r.used >= r.Times {
			continue
		}
		r.used++
		return r.Fault, true
	}
	return Fault{}, false
}

// applyFaults runs the matching fault, if any; it reports whether the response was written.
func (s *Server) applyFaults(w http.ResponseWriter, req *http.Request) bool {
	f, ok := s.faults.pick(req)
	if !ok {
		return false
	}
	if f.LatencyMS > 0 {
		t := time.NewTimer(time.Duration(f.LatencyMS) * time.Millisecond)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			abandon()
		case <-s.closed:
			t.Stop()
			abandon()
		}
	}
	if f.Hang {
		select {
		case <-req.Context().Done():
		case <-s.closed:
		}
		abandon()
	}
	if f.Status != 0 && (f.ErrorRate == 0 || rand.Float64() < f.ErrorRate) {
		writeAdminError(w, f.Status, "unknown_error")
		return true
	}
	return false
}

// abandon ends a request without answering it: the connection is closed and
// nothing is written. Returning from the handler instead would answer 200 with
// an empty body, which a client whose cancel races the response can still read
// as a success.
func abandon() { panic(http.ErrAbortHandler) }

// serveLab routes the lab control endpoints under /_lab.
func (s *Server) serveLab(w http.ResponseWriter, req *http.Request) {
	seg := splitPath(strings.TrimPrefix(req.URL.Path, "/_lab"))
	switch {
	case len(seg) == 1 && seg[0] == "health" && req.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]string{"status": "UP"})
	case len(seg) == 1 && seg[0] == "faults":
		switch req.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, map[string]any{"faults": s.Faults()})
		case http.MethodPut:
			var body struct {
				Faults []Fault `json:"faults"`
			}
			dec := json.NewDecoder(io.LimitReader(req.Body, 1<<20))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				writeErrorMessage(w, http.StatusBadRequest, "decode faults: "+err.Error())
				return
			}
			if err := s.SetFaults(body.Faults); err != nil {
				writeErrorMessage(w, http.StatusBadRequest, err.Error())
				return
			}
			writeNoContent(w)
		case http.MethodDelete:
			_ = s.SetFaults(nil)
			writeNoContent(w)
		default:
			writeAdminError(w, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
		}
	case len(seg) == 3 && seg[0] == "realms" && seg[2] == "rotate-key":
		if req.Method != http.MethodPost {
			writeAdminError(w, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
			return
		}
		kid, err := s.RotateSigningKey(seg[1])
		if errors.Is(err, ErrRealmNotFound) {
			writeAdminError(w, http.StatusNotFound, "Realm not found.")
			return
		}
		if err != nil {
			writeErrorMessage(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"kid": kid})
	default:
		writeAdminError(w, http.StatusNotFound, "HTTP 404 Not Found")
	}
}
