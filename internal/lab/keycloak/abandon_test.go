package keycloak

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// TestAbandonedRequestGetsNoAnswer leaves a held request the way a client
// that gave up does (its writing side closed) and reads what the simulator
// sends back. Returning from the handler would answer 200 with an empty
// body, which a client whose cancel races the answer can take for success.
func TestAbandonedRequestGetsNoAnswer(t *testing.T) {
	const path = "/realms/iru/.well-known/openid-configuration"
	tests := []struct {
		name  string
		fault Fault
	}{
		{"hang", Fault{Path: path, Hang: true}},
		{"latency", Fault{Path: path, LatencyMS: 60_000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t)
			if err := l.srv.SetFaults([]Fault{tt.fault}); err != nil {
				t.Fatal(err)
			}
			addr := l.hs.Listener.Addr().String()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr); err != nil {
				t.Fatalf("write request: %v", err)
			}
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatalf("close write: %v", err)
			}
			if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(conn)
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatalf("connection still open 10 s after the client left (read %q)", got)
			}
			if len(got) != 0 {
				t.Fatalf("the simulator answered a request its client had abandoned: %q", got)
			}
		})
	}
}
