//go:build localstack

package localstack

import (
	"net"
	"net/http"
	"strings"

	"github.com/iru-responder/responder/internal/codec"
)

// labUIAuthenticator lets the lab's Web UI (which has no login) decode
// payloads through the codec server from loopback; encoding (which would
// let any local client make payloads the platform decrypts) and everything
// else need a token.
type labUIAuthenticator struct {
	origin string
	next   codec.Authenticator
}

// Authenticate implements codec.Authenticator.
func (a labUIAuthenticator) Authenticate(r *http.Request) (codec.Identity, error) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && r.Header.Get("Origin") == a.origin && r.Header.Get("Authorization") == "" &&
		strings.HasSuffix(r.URL.Path, "/decode") {
		return codec.Identity{Subject: "lab:web-ui"}, nil
	}
	return a.next.Authenticate(r)
}
