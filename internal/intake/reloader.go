package intake

// The detectors the intake serves: inline detectors (Config.Detectors) and
// those of the detectors file (package detectorsfile) are merged: the
// intake serves both, a name may appear in only one of them, and only the
// file's detectors are rotated. A Reloader keeps the authenticator in step
// with the file.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/intake/parse"
)

// DefaultDetectorsPoll is how often a [Reloader] checks the file by default.
const DefaultDetectorsPoll = 5 * time.Second

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
	f, err := detectorsfile.Load(path)
	if err != nil {
		return nil, err
	}
	return MergeDetectors(inline, f.Detectors)
}

// DetectorSource is a store of detectors shared by every API server
// (PostgreSQL, package sharedstate): its version changes with every change
// of the detectors, so a reloader polls the version, a cheap read, and
// reads the detectors only when it moved.
type DetectorSource interface {
	// Version returns the store's current version.
	Version(ctx context.Context) (int64, error)
	// Snapshot returns the detectors and the version they are at.
	Snapshot(ctx context.Context) (version int64, f detectorsfile.File, err error)
	// String names the store in logs.
	String() string
}

// ReloaderOptions configure a [Reloader].
type ReloaderOptions struct {
	// Path is the detectors file (required unless Source is set).
	Path string
	// Source, if set, is where the detectors live instead of a file.
	Source DetectorSource
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

	mu      sync.Mutex
	stamp   fileStamp
	stamped bool
	// version is the source's version last applied (with stamped).
	version int64
	// unreachable is set while the source cannot be reached.
	unreachable bool
	lastErr     error
	reloads     int
	failures    int
}

// NewReloader returns a reloader of a's detectors from opts.Path. It does
// not read the file; call [Reloader.Reload] or [Reloader.Run].
func NewReloader(a *auth.Authenticator, opts ReloaderOptions) (*Reloader, error) {
	if a == nil || (opts.Path == "") == (opts.Source == nil) {
		return nil, errors.New("intake: a reloader needs an authenticator and either a detectors file or a detector source")
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

// NewSourceReloader is [Service.NewReloader] for detectors kept in a
// shared store instead of a file.
func (s *Service) NewSourceReloader(src DetectorSource, inline []auth.Detector, every time.Duration, log *slog.Logger) (*Reloader, error) {
	servable := func(d auth.Detector) error {
		_, err := parse.ForFormat(d.Format)
		return err
	}
	return NewReloader(s.Handler.opts.Auth, ReloaderOptions{Source: src, Inline: inline, Every: every, Servable: servable, Log: log})
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
	if r.opts.Source != nil {
		return r.reloadSource()
	}
	return r.reload()
}

// Check reloads the file if it changed since it was last read (modification
// time, size or inode) and reports whether it did. A file version that
// failed is not retried until it changes again.
func (r *Reloader) Check() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.opts.Source != nil {
		return r.checkSource()
	}
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
	f, err := detectorsfile.Load(r.opts.Path)
	if err != nil {
		return r.fail(err, stamp, true)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		r.opts.Log.Warn("intake: detectors file is readable by others; want mode 0600", "path", r.opts.Path, "mode", fi.Mode().Perm().String())
	}
	n, err := r.apply(f)
	if err != nil {
		return r.fail(err, stamp, true)
	}
	r.stamp, r.stamped, r.lastErr = stamp, true, nil
	r.reloads++
	r.opts.Log.Info("intake: detectors reloaded", "path", r.opts.Path, "detectors", n)
	return nil
}

// apply merges f with the inline detectors and hands the servable ones to
// the authenticator; r.mu is held.
func (r *Reloader) apply(f detectorsfile.File) (int, error) {
	ds, err := MergeDetectors(r.opts.Inline, f.Detectors)
	if err != nil {
		return 0, err
	}
	ds = r.servable(ds)
	if err := r.auth.SetDetectors(ds); err != nil {
		return 0, fmt.Errorf("intake: apply detectors: %w", err)
	}
	return len(ds), nil
}

// sourceTimeout bounds one poll of a detector source.
const sourceTimeout = 10 * time.Second

// checkSource reloads from the source when its version moved; r.mu is
// held. A version that failed is not retried until it moves again; an
// unreachable source is logged and the detectors in force stay.
func (r *Reloader) checkSource() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	v, err := r.opts.Source.Version(ctx)
	if err != nil {
		r.failures++
		if !r.unreachable { // once per outage, not every poll
			r.opts.Log.Error("intake: detector source unreachable; the detectors in force stay", "source", r.opts.Source.String(), "err", err)
		}
		r.unreachable = true
		r.lastErr = fmt.Errorf("intake: detector source %s: %w", r.opts.Source, err)
		return false, r.lastErr
	}
	if r.unreachable {
		r.opts.Log.Info("intake: detector source reachable again", "source", r.opts.Source.String(), "version", v)
		r.unreachable = false
		if r.stamped && v == r.version {
			return true, r.reloadSource() // also clears or restates the error
		}
	}
	if r.stamped && v == r.version {
		return false, nil
	}
	return true, r.reloadSource()
}

// reloadSource reads and applies the source's detectors; r.mu is held.
func (r *Reloader) reloadSource() error {
	ctx, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	v, f, err := r.opts.Source.Snapshot(ctx)
	if err != nil {
		r.failures++
		r.lastErr = fmt.Errorf("intake: detector source %s: %w", r.opts.Source, err)
		r.opts.Log.Error("intake: detector source refused; the detectors in force stay", "source", r.opts.Source.String(), "err", err)
		return r.lastErr
	}
	n, err := r.apply(f)
	r.version, r.stamped = v, true
	if err != nil {
		r.failures++
		r.lastErr = err
		r.opts.Log.Error("intake: detector source refused; the detectors in force stay", "source", r.opts.Source.String(), "version", v, "err", err)
		return err
	}
	r.lastErr = nil
	r.reloads++
	r.opts.Log.Info("intake: detectors reloaded", "source", r.opts.Source.String(), "version", v, "detectors", n)
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
