// Package objectstore runs the pinned MinIO server (scripts/tools.sh) as a
// child process, for the evidence locker's S3 backend: in tests and in the
// local cluster mode (`starter cluster`). It starts the server on free
// ports with generated root credentials, creates the evidence bucket with
// Object Lock, and issues the platform's own S3 credentials: temporary
// credentials (STS AssumeRole) whose session policy allows what the locker
// needs and nothing more (no s3:BypassGovernanceRetention, no bucket or
// lock configuration changes). Production uses its own store; the README
// gives the same policy for a long-lived user.
package objectstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/iru-responder/responder/internal/freeport"
	"github.com/iru-responder/responder/internal/procgroup"
)

// ErrBinaryMissing is returned by [Start] when the MinIO binary is not
// where the options say. `make tools` installs it.
var ErrBinaryMissing = errors.New("objectstore: minio binary not found (run `make tools`)")

// DefaultBucket is the evidence bucket's name.
const DefaultBucket = "iru-evidence"

// Credentials are S3 credentials; SessionToken is set for temporary ones.
type Credentials struct {
	AccessKey    string
	SecretKey    string
	SessionToken string
	Expires      time.Time // zero for long-lived credentials
}

// Options configure a server.
type Options struct {
	// Binary is the path of the pinned MinIO server; default [Binary]().
	Binary string
	// Dir holds the data; it survives a restart.
	Dir string
	// IP to listen on; default 127.0.0.1.
	IP string
	// Port of the S3 API; 0 picks a free one.
	Port int
	// Root credentials; generated when empty. A server restarted on the
	// same Dir needs the same ones.
	Root Credentials
	// Bucket to create with Object Lock; default [DefaultBucket].
	Bucket string
	// PlatformTTL is how long the platform's credentials last; default
	// 7 days (MinIO allows 15 minutes to 365 days).
	PlatformTTL time.Duration
	// Log receives the server's output; nil discards it.
	Log io.Writer
}

// Server is a running MinIO server.
type Server struct {
	opts     Options
	platform Credentials

	mu   sync.Mutex
	proc *procgroup.Process
}

// Binary returns the path of the pinned MinIO server: IRU_MINIO_BIN, or
// .tools/bin/minio in the repository that holds the working directory.
func Binary() string {
	if p := os.Getenv("IRU_MINIO_BIN"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join(".tools", "bin", "minio")
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".tools", "bin", "minio")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join(".tools", "bin", "minio")
		}
		dir = parent
	}
}

// Start launches the server, waits until it is live, creates the bucket
// with Object Lock (keeping it when it exists) and issues the platform's
// credentials.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Binary == "" {
		opts.Binary = Binary()
	}
	if _, err := os.Stat(opts.Binary); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBinaryMissing, opts.Binary)
	}
	if opts.Dir == "" {
		return nil, errors.New("objectstore: no data folder")
	}
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.PlatformTTL == 0 {
		opts.PlatformTTL = 7 * 24 * time.Hour
	}
	if opts.Root.AccessKey == "" {
		opts.Root = Credentials{AccessKey: "iru-root-" + randomHex(6), SecretKey: randomHex(24)}
	}
	if opts.Port == 0 {
		p, err := freeport.TCP(opts.IP)
		if err != nil {
			return nil, err
		}
		opts.Port = p
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("objectstore: data folder: %w", err)
	}
	s := &Server{opts: opts}
	if err := s.launch(ctx); err != nil {
		return nil, err
	}
	if err := s.setup(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) launch(ctx context.Context) error {
	// The console listens too; it gets a free port of its own and is off.
	cport, err := freeport.TCP(s.opts.IP)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.opts.Binary, "server", s.opts.Dir,
		"--address", s.Endpoint(), "--console-address", net.JoinHostPort(s.opts.IP, strconv.Itoa(cport)), "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.opts.Root.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.opts.Root.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1", // no interactive prompts, no update checks
	)
	proc, err := procgroup.Start(cmd, s.opts.Log)
	if err != nil {
		return fmt.Errorf("objectstore: start %s: %w", s.opts.Binary, err)
	}
	s.mu.Lock()
	s.proc = proc
	s.mu.Unlock()
	if err := s.waitLive(ctx, proc.Exited()); err != nil {
		_ = s.Stop()
		return err
	}
	return nil
}

// waitLive polls the health route until it answers 200.
func (s *Server) waitLive(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	url := "http://" + s.Endpoint() + "/minio/health/live"
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("objectstore: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health: %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("objectstore: not live at %s: %w", s.Endpoint(), errors.Join(ctx.Err(), last))
		case <-exited:
			return fmt.Errorf("objectstore: exited before it was live (see its log): %v", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// setup creates the bucket and issues the platform credentials.
// The server answers its health route before its IAM subsystem is up
// ("Server not initialized"): the first calls are tried again for a while.
func (s *Server) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		creds, err := s.NewBucket(ctx, s.opts.Bucket)
		if err == nil {
			s.platform = creds
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// NewBucket creates bucket with Object Lock (keeping it when it exists)
// and returns platform credentials for it: temporary credentials whose
// session policy is [PlatformPolicy] of bucket. Tests use a bucket each.
func (s *Server) NewBucket(ctx context.Context, bucket string) (Credentials, error) {
	root, err := s.Client(s.opts.Root)
	if err != nil {
		return Credentials{}, err
	}
	err = root.MakeBucket(ctx, bucket, minio.MakeBucketOptions{ObjectLocking: true})
	if code := minio.ToErrorResponse(err).Code; err != nil && code != "BucketAlreadyOwnedByYou" {
		return Credentials{}, fmt.Errorf("objectstore: create bucket %s: %w", bucket, err)
	}
	enabled, _, _, _, err := root.GetObjectLockConfig(ctx, bucket)
	if err != nil || enabled != "Enabled" {
		return Credentials{}, fmt.Errorf("objectstore: bucket %s has no Object Lock (%q): %v", bucket, enabled, err)
	}
	sts, err := credentials.NewSTSAssumeRole("http://"+s.Endpoint(), credentials.STSAssumeRoleOptions{
		AccessKey: s.opts.Root.AccessKey, SecretKey: s.opts.Root.SecretKey,
		Policy: PlatformPolicy(bucket), DurationSeconds: int(s.opts.PlatformTTL / time.Second),
	})
	if err != nil {
		return Credentials{}, fmt.Errorf("objectstore: platform credentials: %w", err)
	}
	v, err := sts.GetWithContext(&credentials.CredContext{Client: http.DefaultClient})
	if err != nil {
		return Credentials{}, fmt.Errorf("objectstore: platform credentials (STS AssumeRole): %w", err)
	}
	return Credentials{AccessKey: v.AccessKeyID, SecretKey: v.SecretAccessKey, SessionToken: v.SessionToken, Expires: v.Expiration}, nil
}

// PlatformPolicy is the IAM policy of the platform's S3 user on bucket:
// write, read, list, lock and hold objects, and delete them (which Object
// Lock refuses until their retention ends and their hold is released).
// It grants no s3:BypassGovernanceRetention and no bucket configuration.
func PlatformPolicy(bucket string) string {
	return `{"Version":"2012-10-17","Statement":[` +
		`{"Effect":"Allow","Action":["s3:GetBucketLocation","s3:ListBucket","s3:ListBucketVersions","s3:GetBucketObjectLockConfiguration"],"Resource":["arn:aws:s3:::` + bucket + `"]},` +
		`{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:GetObjectVersion","s3:DeleteObject","s3:DeleteObjectVersion",` +
		`"s3:PutObjectRetention","s3:GetObjectRetention","s3:PutObjectLegalHold","s3:GetObjectLegalHold"],"Resource":["arn:aws:s3:::` + bucket + `/*"]}]}`
}

// Client returns an S3 client of the server with creds.
func (s *Server) Client(creds Credentials) (*minio.Client, error) {
	c, err := minio.New(s.Endpoint(), &minio.Options{
		Creds: credentials.NewStaticV4(creds.AccessKey, creds.SecretKey, creds.SessionToken), Region: "us-east-1",
	})
	if err != nil {
		return nil, fmt.Errorf("objectstore: client: %w", err)
	}
	return c, nil
}

// Endpoint is the S3 API's host:port.
func (s *Server) Endpoint() string { return net.JoinHostPort(s.opts.IP, strconv.Itoa(s.opts.Port)) }

// Bucket is the evidence bucket.
func (s *Server) Bucket() string { return s.opts.Bucket }

// Root returns the root credentials (administration and tests only).
func (s *Server) Root() Credentials { return s.opts.Root }

// Platform returns the platform's restricted credentials.
func (s *Server) Platform() Credentials { return s.platform }

// Env returns the variables that point a platform process's evidence
// locker at the bucket with the platform's credentials.
func (s *Server) Env() []string {
	p := s.platform
	return []string{
		"IRU_EVIDENCE_BACKEND=s3", "IRU_EVIDENCE_S3_ENDPOINT=" + s.Endpoint(), "IRU_EVIDENCE_S3_BUCKET=" + s.opts.Bucket,
		"IRU_EVIDENCE_S3_ACCESS_KEY=" + p.AccessKey, "IRU_EVIDENCE_S3_SECRET_KEY=" + p.SecretKey,
		"IRU_EVIDENCE_S3_SESSION_TOKEN=" + p.SessionToken,
	}
}

// Stop interrupts the server and waits for it to exit (killing it after
// 10 s).
func (s *Server) Stop() error {
	s.mu.Lock()
	proc := s.proc
	s.proc = nil
	s.mu.Unlock()
	proc.Stop(syscall.SIGTERM, 10*time.Second)
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
