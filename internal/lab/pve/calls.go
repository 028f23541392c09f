package pve

import (
	"maps"
	"sync"
)

// callCounter counts API requests per route: "METHOD /schema/template"
// ("GET /nodes/{node}/lxc/{vmid}/config"). Requests for paths the schema
// does not know count under "METHOD unknown".
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *callCounter) add(method, tmpl string) {
	if tmpl == "" {
		tmpl = "unknown"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[method+" "+tmpl]++
}

// CallCounts are API requests per route since the last reset, keyed
// "METHOD /schema/template".
type CallCounts map[string]int

// Total is the number of requests over every route.
func (c CallCounts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Calls returns the API requests served per route since the start or the
// last [Server.ResetCalls] (or reset): every request under /api2/json,
// including failed and faulted ones, counted when it arrives.
func (s *Server) Calls() CallCounts {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	out := CallCounts{}
	maps.Copy(out, s.calls.n)
	return out
}

// ResetCalls sets every route's call count to zero.
func (s *Server) ResetCalls() {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	s.calls.n = nil
}
