package pve

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/luthermonson/go-proxmox"
)

// TestCallCounts counts API requests per route, through the Go API and
// /_lab/calls, including refused requests, and resets the counts.
func TestCallCounts(t *testing.T) {
	s := startSim(t, Options{TaskDuration: InstantTasks})
	ctx := testCtx(t)
	c := responder(s)
	if _, err := (&proxmox.Node{}).New(c, "pve1").Container(ctx, 900); err != nil { // reads config and status
		t.Fatal(err)
	}
	var conf map[string]any
	if err := c.Get(ctx, "/nodes/pve1/lxc/900/config", &conf); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "/nodes/pve1/lxc/900/no-such-route", &conf); err == nil {
		t.Fatal("unknown route answered")
	}
	control := func(method string) (int, CallCounts) {
		t.Helper()
		req, _ := http.NewRequest(method, s.ControlURL()+"/calls", strings.NewReader(""))
		req.Header.Set("Authorization", "Bearer "+LabControlToken)
		res, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		b, _ := io.ReadAll(res.Body)
		var out CallCounts
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s /calls: %s: %v", method, b, err)
		}
		return res.StatusCode, out
	}
	got := s.Calls()
	if n := got["GET /nodes/{node}/lxc/{vmid}/config"]; n < 2 {
		t.Errorf("config reads counted %d, want at least 2: %v", n, got)
	}
	if got["GET unknown"] != 1 {
		t.Errorf("unknown route counted %d, want 1: %v", got["GET unknown"], got)
	}
	st, viaHTTP := control(http.MethodGet)
	if st != http.StatusOK || viaHTTP.Total() != got.Total() {
		t.Errorf("GET /_lab/calls = %d %v, want %v", st, viaHTTP, got)
	}
	if st, after := control(http.MethodDelete); st != http.StatusOK || after.Total() != 0 {
		t.Errorf("DELETE /_lab/calls = %d %v, want no calls", st, after)
	}
	if n := s.Calls().Total(); n != 0 {
		t.Errorf("after reset %d calls counted", n)
	}
}
