package intake

// The detectors file: the detectors and their hashed API keys, kept apart
// from the intake configuration so that key rotation
// (keys.rotate_intake_keys, `starter keys add-detector`) can rewrite it and
// the API server can pick the change up without a restart.
//
// Inline detectors (Config.Detectors) and the file's detectors are merged:
// the intake serves both, a name may appear in only one of them, and only
// the file's detectors are rotated. The file is written atomically (temporary
// file, fsync, rename, fsync of the folder) with mode 0600, under an
// exclusive lock on "<file>.lock" so that concurrent writers (a scheduled
// and a manual rotation, an operator adding a detector) never lose each
// other's changes. Writers and the API server must see the same file system.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/parse"
)

// DetectorsFileVersion is the version of the detectors file format.
const DetectorsFileVersion = 1

// DefaultDetectorsPoll is how often a [Reloader] checks the file by default.
const DefaultDetectorsPoll = 5 * time.Second

// DetectorsFileConfig locates the detectors file. The API server, the
// worker and the starter read the same variable.
type DetectorsFileConfig struct {
	Path string `env:"IRU_INTAKE_DETECTORS_FILE" doc:"Detectors file (YAML, JSON if the name ends in .json; mode 0600) with the detectors and their hashed API keys, merged with the intake configuration's detectors. The API server reloads it when it changes; keys.rotate_intake_keys and starter keys add-detector rewrite it. Empty: no file."`
	// PollEvery is how often the API server looks for a change.
	PollEvery time.Duration `env:"IRU_INTAKE_DETECTORS_POLL" envDefault:"5s" doc:"How often the API server checks the detectors file for a change (modification time, size, inode)."`
}

// Validate implements config.Validator.
func (c *DetectorsFileConfig) Validate() error {
	if c.PollEvery <= 0 {
		return fmt.Errorf("IRU_INTAKE_DETECTORS_POLL=%s: must be positive", c.PollEvery)
	}
	return nil
}

// DetectorsFile is the content of a detectors file.
type DetectorsFile struct {
	// Version is [DetectorsFileVersion] (0 is read as 1).
	Version int `yaml:"version" json:"version"`
	// Detectors are the detectors, each with its hashed keys.
	Detectors []auth.Detector `yaml:"detectors" json:"detectors"`
}

// Detector returns the index of the detector called name, or -1.
func (f *DetectorsFile) Detector(name string) int {
	return slices.IndexFunc(f.Detectors, func(d auth.Detector) bool { return d.Name == name })
}

// Validate checks every detector (as the authenticator would) and refuses
// an empty file, which would lock every detector of the file out.
func (f *DetectorsFile) Validate() error {
	if f.Version != 0 && f.Version != DetectorsFileVersion {
		return fmt.Errorf("detectors file version %d: want %d", f.Version, DetectorsFileVersion)
	}
	if len(f.Detectors) == 0 {
		return errors.New("detectors file lists no detectors")
	}
	if _, err := auth.New(f.Detectors, auth.Options{ReplayCacheMax: 1}); err != nil {
		return err
	}
	return nil
}

func isJSON(path string) bool { return strings.EqualFold(filepath.Ext(path), ".json") }

// LoadDetectorsFile reads and validates a detectors file. Unknown keys are
// errors. A missing file is an error wrapping [fs.ErrNotExist].
func LoadDetectorsFile(path string) (DetectorsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return DetectorsFile{}, fmt.Errorf("intake: read detectors file: %w", err)
	}
	f, err := decodeDetectors(path, b)
	if err != nil {
		return DetectorsFile{}, err
	}
	if err := f.Validate(); err != nil {
		return DetectorsFile{}, fmt.Errorf("intake: detectors file %s: %w", path, err)
	}
	return f, nil
}

func decodeDetectors(path string, b []byte) (DetectorsFile, error) {
	var f DetectorsFile
	if isJSON(path) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return DetectorsFile{}, fmt.Errorf("intake: parse detectors file %s: %w", path, err)
		}
		return f, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return DetectorsFile{}, fmt.Errorf("intake: parse detectors file %s: %w", path, err)
	}
	return f, nil
}

const detectorsHeader = "# IRU Responder detectors file. Written by keys.rotate_intake_keys and\n" +
	"# `starter keys add-detector`; it holds key hashes, never keys.\n"

func encodeDetectors(path string, f DetectorsFile) ([]byte, error) {
	f.Version = DetectorsFileVersion
	if isJSON(path) {
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("intake: encode detectors file: %w", err)
		}
		return append(b, '\n'), nil
	}
	var buf bytes.Buffer
	buf.WriteString(detectorsHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("intake: encode detectors file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("intake: encode detectors file: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteDetectorsFile validates f and replaces the file at path with it
// atomically, mode 0600. Callers that read, change and write the file use
// [UpdateDetectorsFile] instead, which also locks.
func WriteDetectorsFile(path string, f DetectorsFile) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("intake: refusing to write detectors file %s: %w", path, err)
	}
	b, err := encodeDetectors(path, f)
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, b, 0o600)
}

// UpdateDetectorsFile changes the detectors file under an exclusive lock:
// it reads the file (a missing file reads as empty), calls change and, if
// change reports a change, validates and writes the result atomically.
// change runs with the lock held, so it may store secrets before the file
// is written; it must not keep f. The lock waits until ctx ends.
func UpdateDetectorsFile(ctx context.Context, path string, change func(f *DetectorsFile) (changed bool, err error)) error {
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	var f DetectorsFile
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.Version = DetectorsFileVersion
	case err != nil:
		return fmt.Errorf("intake: read detectors file: %w", err)
	default:
		if f, err = decodeDetectors(path, b); err != nil {
			return err
		}
	}
	changed, err := change(&f)
	if err != nil || !changed {
		return err
	}
	return WriteDetectorsFile(path, f)
}

// lockFile takes an exclusive flock on path (created 0600), polling so that
// the wait ends with ctx.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	lf, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("intake: open detectors lock: %w", err)
	}
	for {
		err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			lf.Close()
			return nil, fmt.Errorf("intake: lock detectors file: %w", err)
		}
		select {
		case <-ctx.Done():
			lf.Close()
			return nil, fmt.Errorf("intake: lock detectors file: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
		lf.Close()
	}, nil
}

// MergeDetectors returns the inline detectors followed by the file's; a
// name in both is an error.
func MergeDetectors(inline, file []auth.Detector) ([]auth.Detector, error) {
	out := slices.Clone(inline)
	for _, d := range file {
		if slices.ContainsFunc(inline, func(i auth.Detector) bool { return i.Name == d.Name }) {
			return nil, fmt.Errorf("intake: detector %q is both in the configuration and in the detectors file; keep one", d.Name)
		}
		out = append(out, d)
	}
	return out, nil
}

// ResolveDetectors returns the detectors the intake serves: the inline
// ones merged with those of the detectors file at path ("" : inline only).
// A missing or invalid file is an error.
func ResolveDetectors(inline []auth.Detector, path string) ([]auth.Detector, error) {
	if path == "" {
		return inline, nil
	}
	f, err := LoadDetectorsFile(path)
	if err != nil {
		return nil, err
	}
	return MergeDetectors(inline, f.Detectors)
}

// ReloaderOptions configure a [Reloader].
type ReloaderOptions struct {
	// Path is the detectors file (required).
	Path string
	// Inline are the detectors of the configuration, merged with the file's.
	Inline []auth.Detector
	// Every is the poll period of Run (default [DefaultDetectorsPoll]).
	Every time.Duration
	// Servable, if set, says whether the HTTP handler can serve a detector
	// (nil error). A detector it refuses is left out when it is new and
	// kept at its previous definition when it was served before, and a
	// warning is logged. See [Service.NewReloader].
	Servable func(d auth.Detector) error
	// Log receives reloads and refused files (nil: discarded).
	Log *slog.Logger
}

// fileStamp identifies one version of the file without reading it.
type fileStamp struct {
	mod   time.Time
	size  int64
	inode uint64
}

func stampOf(fi fs.FileInfo) fileStamp {
	s := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.inode = uint64(st.Ino)
	}
	return s
}

// Reloader keeps an authenticator in step with a detectors file. A file
// that cannot be read or is invalid after a change is logged and the
// detectors in force stay; an empty file is invalid, so a reload never
// locks every detector out.
type Reloader struct {
	auth *auth.Authenticator
	opts ReloaderOptions

	mu       sync.Mutex
	stamp    fileStamp
	stamped  bool
	lastErr  error
	reloads  int
	failures int
}

// NewReloader returns a reloader of a's detectors from opts.Path. It does
// not read the file; call [Reloader.Reload] or [Reloader.Run].
func NewReloader(a *auth.Authenticator, opts ReloaderOptions) (*Reloader, error) {
	if a == nil || opts.Path == "" {
		return nil, errors.New("intake: a reloader needs an authenticator and a detectors file")
	}
	if opts.Every <= 0 {
		opts.Every = DefaultDetectorsPoll
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Reloader{auth: a, opts: opts}, nil
}

// NewReloader returns a reloader of the service's authenticator from the
// detectors file at path, merged with the inline detectors. The handler
// picks the parser of the authenticated detector's format per request, so
// a reload may add detectors and change formats; a detector whose format
// has no parser is refused (and logged) and the rest apply.
func (s *Service) NewReloader(path string, inline []auth.Detector, every time.Duration, log *slog.Logger) (*Reloader, error) {
	servable := func(d auth.Detector) error {
		_, err := parse.ForFormat(d.Format)
		return err
	}
	return NewReloader(s.Handler.opts.Auth, ReloaderOptions{Path: path, Inline: inline, Every: every, Servable: servable, Log: log})
}

// ReloadStats says how the reloader has done.
type ReloadStats struct {
	// Reloads counts applied reloads; Failures counts refused files.
	Reloads, Failures int
	// LastError is the error of the file version last seen ("" if valid).
	LastError string
}

// Stats returns the counters.
func (r *Reloader) Stats() ReloadStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := ReloadStats{Reloads: r.reloads, Failures: r.failures}
	if r.lastErr != nil {
		s.LastError = r.lastErr.Error()
	}
	return s
}

// Reload reads the file now and applies it, whether it changed or not.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reload()
}

// Check reloads the file if it changed since it was last read (modification
// time, size or inode) and reports whether it did. A file version that
// failed is not retried until it changes again.
func (r *Reloader) Check() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fi, err := os.Stat(r.opts.Path)
	if err != nil {
		if r.stamped && r.stamp == (fileStamp{}) {
			return false, r.lastErr // already reported
		}
		return false, r.fail(fmt.Errorf("intake: stat detectors file: %w", err), fileStamp{}, true)
	}
	if r.stamped && stampOf(fi) == r.stamp {
		return false, nil
	}
	return true, r.reload()
}

// Run checks the file every opts.Every until ctx ends.
func (r *Reloader) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = r.Check() // failures are logged
		}
	}
}

// reload reads and applies the file; r.mu is held.
func (r *Reloader) reload() error {
	// Stat before reading: if the file changes in between, the next Check
	// sees a new stamp and reads it again.
	fi, err := os.Stat(r.opts.Path)
	if err != nil {
		return r.fail(fmt.Errorf("intake: stat detectors file: %w", err), fileStamp{}, true)
	}
	stamp := stampOf(fi)
	f, err := LoadDetectorsFile(r.opts.Path)
	if err != nil {
		return r.fail(err, stamp, true)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		r.opts.Log.Warn("intake: detectors file is readable by others; want mode 0600", "path", r.opts.Path, "mode", fi.Mode().Perm().String())
	}
	ds, err := MergeDetectors(r.opts.Inline, f.Detectors)
	if err != nil {
		return r.fail(err, stamp, true)
	}
	ds = r.servable(ds)
	if err := r.auth.SetDetectors(ds); err != nil {
		return r.fail(fmt.Errorf("intake: apply detectors file: %w", err), stamp, true)
	}
	r.stamp, r.stamped, r.lastErr = stamp, true, nil
	r.reloads++
	r.opts.Log.Info("intake: detectors reloaded", "path", r.opts.Path, "detectors", len(ds))
	return nil
}

// servable applies opts.Servable: refused detectors are dropped when new
// and kept at their current definition otherwise.
func (r *Reloader) servable(ds []auth.Detector) []auth.Detector {
	if r.opts.Servable == nil {
		return ds
	}
	out := make([]auth.Detector, 0, len(ds))
	for _, d := range ds {
		err := r.opts.Servable(d)
		if err == nil {
			out = append(out, d)
			continue
		}
		if cur, ok := r.auth.Detector(d.Name); ok {
			r.opts.Log.Warn("intake: detectors file: keeping the detector's previous definition", "detector", d.Name, "reason", err.Error())
			out = append(out, cur)
			continue
		}
		r.opts.Log.Warn("intake: detectors file: detector not served", "detector", d.Name, "reason", err.Error())
	}
	return out
}

// fail records and logs a refused file; the detectors in force stay.
func (r *Reloader) fail(err error, stamp fileStamp, stamped bool) error {
	r.failures++
	r.lastErr = err
	r.stamp, r.stamped = stamp, stamped
	r.opts.Log.Error("intake: detectors file refused; the detectors in force stay", "path", r.opts.Path, "err", err)
	return err
}
