// Package labtest holds test helpers shared by the lab's simulators.
package labtest

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// HalfCloser is a connection whose writing side closes alone (*net.TCPConn,
// *tls.Conn).
type HalfCloser interface {
	net.Conn
	CloseWrite() error
}

// ExpectNoAnswer sends request on conn, closes conn's writing side the way
// a client that gave up does, and fails tb unless the server closes the
// connection without writing anything: a simulator must drop a request
// whose client left, not answer it late.
func ExpectNoAnswer(tb testing.TB, conn HalfCloser, request string) {
	tb.Helper()
	if _, err := io.WriteString(conn, request); err != nil {
		tb.Fatalf("write request: %v", err)
	}
	if err := conn.CloseWrite(); err != nil {
		tb.Fatalf("close write: %v", err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		tb.Fatalf("connection still open 10 s after the client left (read %q)", got)
	}
	if len(got) != 0 {
		tb.Fatalf("the simulator answered a request its client had abandoned: %q", got)
	}
}
