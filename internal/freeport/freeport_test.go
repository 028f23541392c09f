package freeport

import (
	"net"
	"strconv"
	"testing"
)

// The port TCP returns can be bound on the same address, and a bad
// address is an error naming it.
func TestTCP(t *testing.T) {
	tests := []struct {
		name    string
		ip      string
		wantErr bool
	}{
		{"loopback", "127.0.0.1", false},
		{"an address not on this machine", "192.0.2.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, err := TCP(tt.ip)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("TCP(%q) = %d, want an error", tt.ip, port)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if port <= 0 || port > 65535 {
				t.Fatalf("port %d out of range", port)
			}
			l, err := net.Listen("tcp", net.JoinHostPort(tt.ip, strconv.Itoa(port)))
			if err != nil {
				t.Fatalf("binding the returned port: %v", err)
			}
			l.Close()
		})
	}
}
