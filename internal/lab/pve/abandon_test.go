package pve

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/lab/labtest"
)

// TestAbandonedRequestGetsNoAnswer leaves a held request the way a client
// that gave up does (its writing side closed) and reads what the simulator
// sends back. A hung pveproxy never answers; an answer written anyway can
// still reach a client whose cancel races it, and go-proxmox decodes a 503's
// null data as success (Node.Container then dereferences nil).
func TestAbandonedRequestGetsNoAnswer(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
	}{
		{"hang", Fault{Path: "/version", Hang: true}},
		{"latency", Fault{Path: "/version", Latency: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSim(t, Options{Faults: []Fault{tt.fault}})
			u, err := url.Parse(s.URL())
			if err != nil {
				t.Fatal(err)
			}
			conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: s.CertPool(), ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			labtest.ExpectNoAnswer(t, conn, fmt.Sprintf("GET /api2/json/version HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host))
		})
	}
}
