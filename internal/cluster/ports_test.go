package cluster

import (
	"encoding/json"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestChoosePortsKeepsMembershipPorts checks that a restart in the same
// folder takes the last start's membership ports again while they are
// free (the server then joins itself instead of the dead addresses its
// membership table still lists), takes a new one where a port is in use
// or where the record names a port another listener already has, never
// gives two listeners one port, and refuses an unreadable record.
func TestChoosePortsKeepsMembershipPorts(t *testing.T) {
	const ip = "127.0.0.1"
	membership := func(ports map[string]int) map[string]int {
		out := map[string]int{}
		for name, p := range ports {
			if strings.HasSuffix(name, "_MEMBERSHIP_PORT") {
				out[name] = p
			}
		}
		return out
	}
	start := func(t *testing.T, dir string, frontend int) (*Cluster, error) {
		t.Helper()
		c := &Cluster{opts: Options{Dir: dir, IP: ip, FrontendPort: frontend}, ports: map[string]int{}}
		return c, c.choosePorts()
	}
	tests := []struct {
		name string
		// prepare runs between the first start and the second.
		prepare func(t *testing.T, c *Cluster) (held string)
		wantErr string
	}{
		{name: "restart", prepare: func(*testing.T, *Cluster) string { return "" }},
		{name: "a port in use", prepare: func(t *testing.T, c *Cluster) string {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(c.ports["HISTORY_MEMBERSHIP_PORT"])))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return "HISTORY_MEMBERSHIP_PORT"
		}},
		{name: "a record naming one port twice", prepare: func(t *testing.T, c *Cluster) string {
			// The record of a start that gave two services one port
			// (two random picks that met); the worker's own old port is
			// held, so only a port no other listener has will do.
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(c.ports["WORKER_MEMBERSHIP_PORT"])))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			rec := membership(c.ports)
			rec["WORKER_MEMBERSHIP_PORT"] = rec["FRONTEND_MEMBERSHIP_PORT"]
			b, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c.membershipFile(), b, 0o600); err != nil {
				t.Fatal(err)
			}
			return "WORKER_MEMBERSHIP_PORT"
		}},
		{name: "unreadable record", prepare: func(t *testing.T, c *Cluster) string {
			if err := os.WriteFile(c.membershipFile(), []byte("{"), 0o600); err != nil {
				t.Fatal(err)
			}
			return ""
		}, wantErr: "membership-ports.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := start(t, dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			before := membership(first.ports)
			if len(before) != 5 {
				t.Fatalf("membership ports %v, want 5", before)
			}
			for name, p := range before {
				if p < 20000 || p > 32767 {
					t.Errorf("%s = %d, want 20000-32767 (the membership table's smallint)", name, p)
				}
			}
			held := tt.prepare(t, first)
			second, err := start(t, dir, 7233)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("second start: %v, want an error naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := second.ports["FRONTEND_GRPC_PORT"]; got != 7233 {
				t.Errorf("frontend port %d, want the option's 7233", got)
			}
			owner := map[int]string{}
			for name, p := range second.ports {
				if other, ok := owner[p]; ok {
					t.Errorf("%s and %s both got port %d", other, name, p)
				}
				owner[p] = name
			}
			after := membership(second.ports)
			for name, p := range before {
				switch {
				case name == held && after[name] == p:
					t.Errorf("%s kept %d, which is in use", name, p)
				case name != held && after[name] != p:
					t.Errorf("%s = %d after the restart, want the last start's %d", name, after[name], p)
				}
			}
			var saved map[string]int
			b, err := os.ReadFile(second.membershipFile())
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &saved); err != nil {
				t.Fatal(err)
			}
			for name, p := range after {
				if saved[name] != p {
					t.Errorf("recorded %s = %d, want %d", name, saved[name], p)
				}
			}
		})
	}
}
