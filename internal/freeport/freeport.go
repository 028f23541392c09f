// Package freeport finds a TCP port for a local server the platform or a
// test launches (the Temporal dev server and cluster, the object store):
// the kernel's choice of a free port, released at once, so the server can
// bind it a moment later.
package freeport

import (
	"fmt"
	"net"
)

// TCP returns a TCP port on ip that was free a moment ago. Another
// process may take it before the caller binds it; a caller that must not
// reuse a port it already handed out keeps track of those itself.
func TCP(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("free port on %s: %w", ip, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("free port on %s: release %d: %w", ip, port, err)
	}
	return port, nil
}
