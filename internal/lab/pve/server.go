// Package pve is a faithful, in-process simulator of the Proxmox VE 9.1 API
// for LXC incident-response work: the unmodified go-proxmox client talks to it
// over HTTPS exactly as it would to pveproxy. Every request is checked against
// the embedded PVE 9.1 API schema (501 for unknown routes, 400 for parameter
// errors), authenticated with API tokens or tickets, and served from a
// concurrency-safe model of the "iru-lab" cluster seeded from inventory.yaml.
// Faults (latency, error statuses, hangs, task failures) can be injected at
// start or at run time through a control endpoint outside /api2.
//
// The package is for tests and the lab only; platform code must never import it.
package pve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand"
	"net"
	"net/http"
	"sync"
	"time"
)

// Lab credentials. They are fixed, documented defaults for the simulator and
// must never be used anywhere else.
const (
	// LabRootUser is the superuser of the simulated cluster.
	LabRootUser = "root@pam"
	// LabRootPassword is root@pam's password (ticket login).
	LabRootPassword = "iru-lab-root"
	// LabIRUUser is the platform's service user.
	LabIRUUser = "iru@pve"
	// LabIRUPassword is iru@pve's password (ticket login).
	LabIRUPassword = "iru-lab-responder"
	// LabResponderTokenID is the full-privilege API token of the platform.
	LabResponderTokenID = "iru@pve!responder"
	// LabResponderTokenSecret is the secret of LabResponderTokenID.
	LabResponderTokenSecret = "3f6c0d3e-8d0a-4b8e-9a52-6f1d2c7b9e10"
	// LabAuditTokenID is a read-only (PVEAuditor) API token.
	LabAuditTokenID = "iru@pve!audit"
	// LabAuditTokenSecret is the secret of LabAuditTokenID.
	LabAuditTokenSecret = "9b2e4f71-5c3a-4d6b-8e0f-1a7c3d5e9b24"
	// LabControlToken protects the /_lab control endpoint (Bearer token).
	LabControlToken = "iru-lab-control"
	// LabClusterName is the name of the simulated cluster.
	LabClusterName = "iru-lab"
)

// DefaultAddr is where Start listens when Options.Addr is empty.
const DefaultAddr = "127.0.0.1:8006"

// DefaultTaskDuration is how long a task runs when Options.TaskDuration is 0.
const DefaultTaskDuration = 50 * time.Millisecond

// InstantTasks, used as a task duration, makes tasks finish before the HTTP
// call that started them returns.
const InstantTasks time.Duration = -1

// Options configures a Server.
type Options struct {
	// Addr is the TCP listen address for Start; port 0 picks a free port.
	Addr string
	// InventoryPath overrides the embedded inventory.yaml.
	InventoryPath string
	// TaskDuration is how long every task runs (0: DefaultTaskDuration,
	// InstantTasks: finished when the call returns).
	TaskDuration time.Duration
	// TaskDurations overrides TaskDuration per task type ("vzsnapshot", "vzdump", ...).
	// Both can be changed at run time: see SetTaskTimes and PUT /_lab/tasks.
	TaskDurations map[string]time.Duration
	// AuthFailureDelay delays 401 answers, as pveproxy does (3 s there); default 0.
	AuthFailureDelay time.Duration
	// Faults are active from the start; see SetFaults.
	Faults []Fault
	// Seed makes error-rate faults deterministic; 0 uses a fixed seed of 1.
	Seed int64
	// ControlToken protects /_lab; empty means LabControlToken.
	ControlToken string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is a running (or runnable) Proxmox VE simulator.
type Server struct {
	opts   Options
	schema *apiSchema
	routes map[string]map[string]handlerFunc
	inv    *inventory

	mu sync.Mutex // guards st and the task table
	st *state

	faultMu sync.Mutex
	faults  []*activeFault
	rng     *mrand.Rand

	taskTimesMu sync.Mutex
	taskTimes   TaskTimes // see SetTaskTimes

	calls callCounter // see Calls

	ticketKey []byte
	pidSeq    uint32

	tlsCert  tls.Certificate
	certPool *x509.CertPool

	lnMu     sync.Mutex
	ln       net.Listener
	httpSrv  *http.Server
	baseAddr string

	closed   chan struct{}
	closeOne sync.Once
	taskWG   sync.WaitGroup
}

// New builds a simulator from the options and the inventory; it does not listen.
func New(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.TaskDuration == 0 {
		opts.TaskDuration = DefaultTaskDuration
	}
	if opts.ControlToken == "" {
		opts.ControlToken = LabControlToken
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	sch, err := loadSchema()
	if err != nil {
		return nil, err
	}
	inv, err := loadInventory(opts.InventoryPath)
	if err != nil {
		return nil, err
	}
	st, err := newState(inv, opts.Now())
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:   opts,
		schema: sch,
		inv:    inv,
		st:     st,
		rng:    mrand.New(mrand.NewSource(opts.Seed)),
		closed: make(chan struct{}),
		pidSeq: 0x1000,
	}
	s.SetTaskTimes(TaskTimes{Default: opts.TaskDuration, ByType: opts.TaskDurations})
	s.ticketKey = make([]byte, 32)
	if _, err := rand.Read(s.ticketKey); err != nil {
		return nil, fmt.Errorf("generate ticket key: %w", err)
	}
	if err := s.makeCert(); err != nil {
		return nil, err
	}
	s.routes = s.routeTable()
	for path, methods := range s.routes {
		for m := range methods {
			if _, ok := sch.byPath[path][m]; !ok {
				return nil, fmt.Errorf("route %s %s is not in the PVE 9.1 schema", m, path)
			}
		}
	}
	s.SetFaults(opts.Faults...)
	return s, nil
}

// makeCert creates the self-signed certificate pveproxy would present.
func (s *Server) makeCert() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return fmt.Errorf("generate tls serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "pve1.iru-lab", Organization: []string{"PVE Cluster Node"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(2 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", "pve1", "pve2", "pve1.iru-lab", "pve2.iru-lab"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create tls certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse tls certificate: %w", err)
	}
	s.tlsCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
	s.certPool = x509.NewCertPool()
	s.certPool.AddCert(cert)
	return nil
}

// Start listens on Options.Addr and serves HTTPS until ctx ends or Close is
// called. It returns once the listener is ready.
func (s *Server) Start(ctx context.Context) error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.ln != nil {
		return errors.New("start pve simulator: already started")
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("start pve simulator: listen %s: %w", s.opts.Addr, err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{s.tlsCert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	s.ln = ln
	s.baseAddr = ln.Addr().String()
	s.httpSrv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// pveproxy speaks HTTP/1.1 only; an empty map disables h2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	tlsLn := tls.NewListener(ln, tlsCfg)
	srv := s.httpSrv
	go func() { _ = srv.Serve(tlsLn) }()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.closed:
		}
	}()
	return nil
}

// URL is the API base, "https://host:port/api2/json" (no trailing slash).
func (s *Server) URL() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return "https://" + s.baseAddr + "/api2/json"
}

// ControlURL is the base of the lab control endpoint, "https://host:port/_lab".
func (s *Server) ControlURL() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return "https://" + s.baseAddr + "/_lab"
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.baseAddr
}

// HTTPClient returns a client that trusts the simulator's certificate.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: s.certPool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// CertPool returns a pool holding the simulator's self-signed certificate.
func (s *Server) CertPool() *x509.CertPool { return s.certPool }

// Close stops serving, cancels running tasks and waits for them.
func (s *Server) Close() {
	s.closeOne.Do(func() {
		close(s.closed)
		s.lnMu.Lock()
		srv := s.httpSrv
		s.lnMu.Unlock()
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
			_ = srv.Close()
		}
	})
	s.taskWG.Wait()
}

// Reset restores the inventory state and clears all faults. Running tasks
// are cancelled first.
func (s *Server) Reset() error {
	s.mu.Lock()
	for _, t := range s.st.tasks {
		if t.status == "running" {
			t.cancelLocked("interrupted by signal")
		}
	}
	s.mu.Unlock()
	st, err := newState(s.inv, s.opts.Now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
	s.SetFaults()
	s.SetTaskTimes(TaskTimes{Default: s.opts.TaskDuration, ByType: s.opts.TaskDurations})
	s.ResetCalls()
	return nil
}

func (s *Server) now() time.Time { return s.opts.Now() }
