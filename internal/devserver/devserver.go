// Package devserver runs the pinned Temporal CLI dev server
// (`temporal server start-dev`) as a child process: for `starter up`, and
// for tests that need a real server. It starts the server with a SQLite
// file, eager activity execution on, the platform's search attributes
// registered, and waits until the frontend answers.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/freeport"
	"github.com/iru-responder/responder/internal/gctune"
	"github.com/iru-responder/responder/internal/procgroup"
)

// ErrBinaryMissing is returned by [Start] when the Temporal CLI binary is
// not where the options say. `make tools` installs it.
var ErrBinaryMissing = errors.New("devserver: temporal CLI binary not found (run `make tools`)")

// Options configure a dev server.
type Options struct {
	// Binary is the path of the pinned Temporal CLI.
	Binary string
	// DBFile is the SQLite file; "" keeps the state in memory.
	DBFile string
	// IP to listen on; default 127.0.0.1.
	IP string
	// Port of the frontend; 0 picks a free one.
	Port int
	// UI enables the Web UI; UIPort 0 picks a free one.
	UI     bool
	UIPort int
	// Namespace to create; default "default".
	Namespace string
	// SearchAttributes to register, as "Name=Type".
	SearchAttributes []string
	// CodecEndpoint, if set, is the codec server the Web UI uses.
	CodecEndpoint string
	// Log receives the server's output; nil discards it.
	Log io.Writer
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// Server is a running dev server.
type Server struct {
	opts Options

	mu   sync.Mutex
	proc *procgroup.Process
}

// Start launches the dev server and waits until its frontend answers.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if _, err := os.Stat(opts.Binary); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBinaryMissing, opts.Binary)
	}
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	var err error
	if opts.Port == 0 {
		if opts.Port, err = freeport.TCP(opts.IP); err != nil {
			return nil, err
		}
	}
	if opts.UI && opts.UIPort == 0 {
		if opts.UIPort, err = freeport.TCP(opts.IP); err != nil {
			return nil, err
		}
	}
	if opts.DBFile != "" {
		if err := os.MkdirAll(filepath.Dir(opts.DBFile), 0o700); err != nil {
			return nil, fmt.Errorf("devserver: state folder: %w", err)
		}
	}
	s := &Server{opts: opts}
	if err := s.launch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Args returns the command line the server runs with (without the binary).
func (s *Server) Args() []string { return args(s.opts) }

func args(o Options) []string {
	a := []string{
		"server", "start-dev",
		"--ip", o.IP,
		"--port", strconv.Itoa(o.Port),
		"--namespace", o.Namespace,
		"--log-format", "json",
		"--log-level", "warn",
		// Activities scheduled by a workflow task run on the same worker
		// without a round trip through matching: ~50 ms less per activity.
		"--dynamic-config-value", "system.enableActivityEagerExecution=true",
		"--dynamic-config-value", "frontend.enableServerVersionCheck=false",
		// Visibility as on the cluster (deploy/temporal/dynamicconfig.yaml):
		// the API lists a whole backlog (up to api.MaxListLimit) in one
		// visibility call instead of pages of the default 1,000.
		"--dynamic-config-value", "frontend.visibilityMaxPageSize=10000",
		// The CLI turns this on so that search attributes created at run
		// time are seen at once; it makes the server read the cluster
		// metadata from SQLite again for every visibility row it lists
		// (and every search attribute it validates). The platform
		// registers its search attributes at start (--search-attribute,
		// written before the server runs), so the ordinary cache is enough.
		"--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=false",
	}
	if o.DBFile != "" {
		a = append(a, "--db-filename", o.DBFile)
	}
	if o.UI {
		a = append(a, "--ui-port", strconv.Itoa(o.UIPort), "--ui-ip", o.IP)
		if o.CodecEndpoint != "" {
			a = append(a, "--ui-codec-endpoint", o.CodecEndpoint)
		}
	} else {
		a = append(a, "--headless")
	}
	for _, sa := range o.SearchAttributes {
		a = append(a, "--search-attribute", sa)
	}
	return append(a, o.ExtraArgs...)
}

// serverEnv is the dev server's environment: the platform's collector
// setting (gctune.ServerEnv), then parent, whose GOGC or GOMEMLIMIT come
// later and so win.
func serverEnv(parent []string) []string {
	return append(gctune.ServerEnv(), parent...)
}

func (s *Server) launch(ctx context.Context) error {
	cmd := exec.Command(s.opts.Binary, args(s.opts)...)
	cmd.Env = serverEnv(os.Environ())
	proc, err := procgroup.Start(cmd, s.opts.Log)
	if err != nil {
		return fmt.Errorf("devserver: start %s: %w", s.opts.Binary, err)
	}
	s.mu.Lock()
	s.proc = proc
	s.mu.Unlock()
	if err := s.waitReady(ctx, proc.Exited()); err != nil {
		_ = s.Stop()
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for {
		select {
		case <-exited:
			return fmt.Errorf("devserver: exited before it was ready (see its log): last dial error: %v", last)
		default:
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		c, err := client.DialContext(attempt, client.Options{HostPort: s.Address(), Namespace: s.opts.Namespace, Logger: quietLogger{}})
		cancelAttempt()
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("devserver: not ready at %s: %w", s.Address(), errors.Join(ctx.Err(), last))
		case <-exited:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Address is the frontend's host:port.
func (s *Server) Address() string {
	return net.JoinHostPort(s.opts.IP, strconv.Itoa(s.opts.Port))
}

// Namespace is the namespace the server was started with.
func (s *Server) Namespace() string { return s.opts.Namespace }

// UIURL is the Web UI's URL, or "" when the UI is off.
func (s *Server) UIURL() string {
	if !s.opts.UI {
		return ""
	}
	return "http://" + net.JoinHostPort(s.opts.IP, strconv.Itoa(s.opts.UIPort))
}

// Stop interrupts the server and waits for it to exit (killing it after
// 10 s).
func (s *Server) Stop() error {
	s.mu.Lock()
	proc := s.proc
	s.proc = nil
	s.mu.Unlock()
	proc.Stop(syscall.SIGINT, 10*time.Second)
	return nil
}

// Restart stops the server and starts it again on the same ports and
// database file, as an operator restart would.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.launch(ctx)
}

// quietLogger drops the SDK's logs while waiting for readiness.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
