package keycloak

import (
	"fmt"
	"net"
	"testing"

	"github.com/iru-responder/responder/internal/lab/labtest"
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
			labtest.ExpectNoAnswer(t, conn.(*net.TCPConn), fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr))
		})
	}
}
