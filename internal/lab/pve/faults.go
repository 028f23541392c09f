package pve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
)

// Fault injects misbehaviour into matching API requests.
//
// A request matches when Method is empty, "*" or equal to the request method,
// and Path equals the schema template of the route ("/nodes/{node}/lxc/{vmid}/snapshot")
// or matches the concrete API path (relative to /api2/json) as a path.Match
// glob ("/nodes/*/lxc/100/*"); an empty Path matches everything.
type Fault struct {
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Latency delays the request before it is handled.
	Latency time.Duration `json:"-"`
	// ErrorRate is the probability (0..1) that the request fails with ErrorStatus.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// ErrorStatus is the injected HTTP status (500, 502, 503, ...; default 503).
	ErrorStatus int `json:"error_status,omitempty"`
	// TaskFailure makes tasks started by matching requests fail with this exit status.
	TaskFailure string `json:"task_failure,omitempty"`
	// Hang holds the request until the client gives up (or the server closes),
	// then drops the connection without an answer.
	Hang bool `json:"hang,omitempty"`
	// Count limits the fault to the first Count matching requests (0: unlimited).
	Count int `json:"count,omitempty"`
}

type faultJSON struct {
	Method      string  `json:"method,omitempty"`
	Path        string  `json:"path,omitempty"`
	Latency     string  `json:"latency,omitempty"`
	ErrorRate   float64 `json:"error_rate,omitempty"`
	ErrorStatus int     `json:"error_status,omitempty"`
	TaskFailure string  `json:"task_failure,omitempty"`
	Hang        bool    `json:"hang,omitempty"`
	Count       int     `json:"count,omitempty"`
}

// MarshalJSON renders Latency as a Go duration string ("150ms").
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Method: f.Method, Path: f.Path, ErrorRate: f.ErrorRate, ErrorStatus: f.ErrorStatus,
		TaskFailure: f.TaskFailure, Hang: f.Hang, Count: f.Count}
	if f.Latency > 0 {
		j.Latency = f.Latency.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON accepts Latency as a duration string ("150ms").
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decode fault: %w", err)
	}
	*f = Fault{Method: j.Method, Path: j.Path, ErrorRate: j.ErrorRate, ErrorStatus: j.ErrorStatus,
		TaskFailure: j.TaskFailure, Hang: j.Hang, Count: j.Count}
	if j.Latency != "" {
		d, err := time.ParseDuration(j.Latency)
		if err != nil {
			return fmt.Errorf("decode fault latency %q: %w", j.Latency, err)
		}
		f.Latency = d
	}
	return nil
}

type activeFault struct {
	Fault
	remaining int // for Count > 0
}

// SetFaults replaces the active faults.
func (s *Server) SetFaults(faults ...Fault) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = s.faults[:0]
	for _, f := range faults {
		s.faults = append(s.faults, &activeFault{Fault: f, remaining: f.Count})
	}
}

// Faults returns the active faults, with Count showing what is left.
func (s *Server) Faults() []Fault {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	out := make([]Fault, 0, len(s.faults))
	for _, f := range s.faults {
		c := f.Fault
		if c.Count > 0 {
			c.Count = f.remaining
		}
		out = append(out, c)
	}
	return out
}

func (f *activeFault) matches(method, tmpl, concrete string) bool {
	if f.Method != "" && f.Method != "*" && !strings.EqualFold(f.Method, method) {
		return false
	}
	if f.Path == "" || f.Path == tmpl {
		return true
	}
	ok, err := path.Match(f.Path, concrete)
	return err == nil && ok
}

// matchFaults returns the faults that apply to this request, consuming counts.
func (s *Server) matchFaults(method, tmpl, concrete string) []*activeFault {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	var out []*activeFault
	for _, f := range s.faults {
		if !f.matches(method, tmpl, concrete) {
			continue
		}
		if f.Count > 0 {
			if f.remaining <= 0 {
				continue
			}
			f.remaining--
		}
		c := *f
		out = append(out, &c)
	}
	return out
}

// applyFaults runs latency, hang and error faults.
func (s *Server) applyFaults(hr *http.Request, faults []*activeFault) *apiError {
	for _, f := range faults {
		if f.Latency > 0 {
			select {
			case <-time.After(f.Latency):
			case <-hr.Context().Done():
				// Nobody is waiting for an answer; see abandon.
				abandon()
			case <-s.closed:
				return &apiError{status: http.StatusServiceUnavailable, msg: "server shutting down"}
			}
		}
		if f.Hang {
			select {
			case <-hr.Context().Done():
			case <-s.closed:
			}
			abandon()
		}
		if f.ErrorRate > 0 {
			s.faultMu.Lock()
			hit := s.rng.Float64() < f.ErrorRate
			s.faultMu.Unlock()
			if hit {
				st := f.ErrorStatus
				if st == 0 {
					st = http.StatusServiceUnavailable
				}
				return &apiError{status: st, msg: "injected fault: " + http.StatusText(st)}
			}
		}
	}
	return nil
}

// abandon ends a request without answering it: the connection is closed and
// no status line is written. A hung pveproxy never answers, and an answer
// written after the client gave up could still reach a client whose cancel
// races the response (net/http's transport returns a response that arrived as
// the request's context ended); go-proxmox decodes a 503's null data as
// success.
func abandon() { panic(http.ErrAbortHandler) }

// taskFailure returns the injected exit status for a task, if any.
func taskFailure(faults []*activeFault) string {
	for _, f := range faults {
		if f.TaskFailure != "" {
			return f.TaskFailure
		}
	}
	return ""
}

// serveControl is the lab control endpoint (not part of the PVE API):
//
//	GET  /_lab/faults  → active faults
//	PUT  /_lab/faults  → replace faults (JSON array of Fault)
//	GET  /_lab/tasks   → task durations (JSON TaskTimes)
//	PUT  /_lab/tasks   → replace task durations for tasks started from now on
//	GET  /_lab/calls   → API requests per route since the last reset (JSON CallCounts)
//	DELETE /_lab/calls → reset the call counts
//	POST /_lab/reset   → restore the inventory and the task durations, clear faults and call counts
//	GET  /_lab/state   → canonical JSON of State()
func (s *Server) serveControl(w http.ResponseWriter, hr *http.Request) {
	if hr.Header.Get("Authorization") != "Bearer "+s.opts.ControlToken {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	reply := func(status int, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			status, b = http.StatusInternalServerError, []byte(`{"error":"encode"}`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}
	switch {
	case hr.URL.Path == "/_lab/faults" && hr.Method == http.MethodGet:
		reply(http.StatusOK, s.Faults())
	case hr.URL.Path == "/_lab/faults" && hr.Method == http.MethodPut:
		var fs []Fault
		if err := json.NewDecoder(hr.Body).Decode(&fs); err != nil {
			reply(http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.SetFaults(fs...)
		reply(http.StatusOK, s.Faults())
	case hr.URL.Path == "/_lab/tasks" && hr.Method == http.MethodGet:
		reply(http.StatusOK, s.TaskTimes())
	case hr.URL.Path == "/_lab/tasks" && hr.Method == http.MethodPut:
		var t TaskTimes
		if err := json.NewDecoder(hr.Body).Decode(&t); err != nil {
			reply(http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.SetTaskTimes(t)
		reply(http.StatusOK, s.TaskTimes())
	case hr.URL.Path == "/_lab/calls" && hr.Method == http.MethodGet:
		reply(http.StatusOK, s.Calls())
	case hr.URL.Path == "/_lab/calls" && hr.Method == http.MethodDelete:
		s.ResetCalls()
		reply(http.StatusOK, s.Calls())
	case hr.URL.Path == "/_lab/reset" && hr.Method == http.MethodPost:
		if err := s.Reset(); err != nil {
			reply(http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		reply(http.StatusOK, map[string]string{"status": "reset"})
	case hr.URL.Path == "/_lab/state" && hr.Method == http.MethodGet:
		b, err := s.State().CanonicalJSON()
		if err != nil {
			reply(http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	default:
		reply(http.StatusNotFound, map[string]string{"error": "unknown control endpoint"})
	}
}
