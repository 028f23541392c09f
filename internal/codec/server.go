package codec

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// Identity is who called the codec server.
type Identity struct {
	Subject string
}

// Authenticator decides who sent a request. It returns an error wrapping
// [ErrUnauthenticated] when the request carries no valid credentials.
type Authenticator interface {
	Authenticate(r *http.Request) (Identity, error)
}

// ErrUnauthenticated is returned by an [Authenticator] for a request
// without valid credentials.
var ErrUnauthenticated = errors.New("unauthenticated")

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header, or "" if there is none.
func BearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// StaticTokenAuthenticator accepts one shared bearer token. It is the
// stand-in until the API's OIDC verifier implements [Authenticator].
type StaticTokenAuthenticator struct {
	sum     [32]byte
	subject string
}

// MinStaticTokenLen is the shortest token [NewStaticTokenAuthenticator]
// accepts.
const MinStaticTokenLen = 16

// NewStaticTokenAuthenticator accepts token and names its callers subject.
func NewStaticTokenAuthenticator(token, subject string) (*StaticTokenAuthenticator, error) {
	if len(token) < MinStaticTokenLen {
		return nil, fmt.Errorf("codec: static token of %d characters, want at least %d", len(token), MinStaticTokenLen)
	}
	return &StaticTokenAuthenticator{sum: sha256.Sum256([]byte(token)), subject: subject}, nil
}

// Authenticate implements [Authenticator] with a constant-time comparison.
func (a *StaticTokenAuthenticator) Authenticate(r *http.Request) (Identity, error) {
	tok := BearerToken(r)
	if tok == "" {
		return Identity{}, fmt.Errorf("codec: no bearer token: %w", ErrUnauthenticated)
	}
	sum := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(sum[:], a.sum[:]) != 1 {
		return Identity{}, fmt.Errorf("codec: bearer token not accepted: %w", ErrUnauthenticated)
	}
	return Identity{Subject: a.subject}, nil
}

// ServerOptions configures [NewServer].
type ServerOptions struct {
	// Codec encodes and decodes; required.
	Codec converter.PayloadCodec
	// Authenticator checks every /encode and /decode request; required.
	Authenticator Authenticator
	// AllowedOrigins are the Web UI origins (scheme://host[:port]) allowed
	// to call the server from a browser.
	AllowedOrigins []string
	// Log receives one line per rejected request; slog.Default() if nil.
	Log *slog.Logger
	// MaxBodyBytes bounds a request body; 8 MiB if zero.
	MaxBodyBytes int64
}

// corsAllowHeaders are the request headers the Temporal Web UI sends.
const corsAllowHeaders = "Authorization, Content-Type, X-Namespace"

// NewServer returns the codec server: POST /encode and POST /decode (the
// Temporal remote codec protocol, also under a path prefix), behind
// authentication, with CORS for opts.AllowedOrigins.
func NewServer(opts ServerOptions) (http.Handler, error) {
	if opts.Codec == nil || opts.Authenticator == nil {
		return nil, errors.New("codec: server needs a codec and an authenticator")
	}
	for _, o := range opts.AllowedOrigins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.HasSuffix(o, "/") {
			return nil, fmt.Errorf("codec: CORS origin %q: want scheme://host[:port] without a path", o)
		}
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 8 << 20
	}
	return &server{opts: opts, codec: converter.NewPayloadCodecHTTPHandler(opts.Codec)}, nil
}

type server struct {
	opts  ServerOptions
	codec http.Handler
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	allowed := origin != "" && slices.Contains(s.opts.AllowedOrigins, origin)
	if origin != "" {
		w.Header().Add("Vary", "Origin")
	}
	if allowed {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
	}
	if r.Method == http.MethodOptions {
		if !allowed || r.Header.Get("Access-Control-Request-Method") == "" {
			http.Error(w, "CORS preflight not allowed for this origin", http.StatusForbidden)
			return
		}
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", corsAllowHeaders)
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/encode") && !strings.HasSuffix(r.URL.Path, "/decode") {
		http.NotFound(w, r)
		return
	}
	id, err := s.opts.Authenticator.Authenticate(r)
	if err != nil {
		s.opts.Log.Warn("codec server: request rejected", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		w.Header().Set("WWW-Authenticate", `Bearer realm="iru-codec"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	s.opts.Log.Debug("codec server", "path", r.URL.Path, "subject", id.Subject, "namespace", r.Header.Get("X-Namespace"))
	s.codec.ServeHTTP(w, r)
}
