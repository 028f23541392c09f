// Package detectorsfile reads and writes the detectors file: the
// detectors and their hashed API keys, kept apart from the intake
// configuration so that key rotation (keys.rotate_intake_keys, `starter
// keys add-detector`) can rewrite it and the API server can pick the change
// up without a restart (intake.Reloader).
//
// The file is written atomically (temporary file, fsync, rename, fsync of
// the folder) with mode 0600, under an exclusive lock on "<file>.lock" so
// that concurrent writers (a scheduled and a manual rotation, an operator
// adding a detector) never lose each other's changes. Writers and the API
// server must see the same file system.
package detectorsfile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/intake/auth"
)

// Version is the version of the file format.
const Version = 1

// Config locates the detectors file. The API server, the
// worker and the starter read the same variable.
type Config struct {
	Path string `env:"IRU_INTAKE_DETECTORS_FILE" doc:"Detectors file (YAML, JSON if the name ends in .json; mode 0600) with the detectors and their hashed API keys, merged with the intake configuration's detectors. The API server reloads it when it changes; keys.rotate_intake_keys and starter keys add-detector rewrite it. Empty: no file."`
	// PollEvery is how often the API server looks for a change.
	PollEvery time.Duration `env:"IRU_INTAKE_DETECTORS_POLL" envDefault:"5s" doc:"How often the API server checks the detectors file for a change (modification time, size, inode)."`
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	if c.PollEvery <= 0 {
		return fmt.Errorf("IRU_INTAKE_DETECTORS_POLL=%s: must be positive", c.PollEvery)
	}
	return nil
}

// File is the content of a detectors file.
type File struct {
	// Version is [Version] (0 is read as 1).
	Version int `yaml:"version" json:"version"`
	// Detectors are the detectors, each with its hashed keys.
	Detectors []auth.Detector `yaml:"detectors" json:"detectors"`
}

// Detector returns the index of the detector called name, or -1.
func (f *File) Detector(name string) int {
	return slices.IndexFunc(f.Detectors, func(d auth.Detector) bool { return d.Name == name })
}

// Validate checks every detector (as the authenticator would) and refuses
// an empty file, which would lock every detector of the file out.
func (f *File) Validate() error {
	if f.Version != 0 && f.Version != Version {
		return fmt.Errorf("detectors file version %d: want %d", f.Version, Version)
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

// Load reads and validates a detectors file. Unknown keys are
// errors. A missing file is an error wrapping [fs.ErrNotExist].
func Load(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("detectors file: read detectors file: %w", err)
	}
	f, err := decode(path, b)
	if err != nil {
		return File{}, err
	}
	if err := f.Validate(); err != nil {
		return File{}, fmt.Errorf("detectors file %s: %w", path, err)
	}
	return f, nil
}

func decode(path string, b []byte) (File, error) {
	var f File
	if isJSON(path) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return File{}, fmt.Errorf("detectors file: parse detectors file %s: %w", path, err)
		}
		return f, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("detectors file: parse detectors file %s: %w", path, err)
	}
	return f, nil
}

const header = "# IRU Responder detectors file. Written by keys.rotate_intake_keys and\n" +
	"# `starter keys add-detector`; it holds key hashes, never keys.\n"

func encode(path string, f File) ([]byte, error) {
	f.Version = Version
	if isJSON(path) {
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("detectors file: encode detectors file: %w", err)
		}
		return append(b, '\n'), nil
	}
	var buf bytes.Buffer
	buf.WriteString(header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("detectors file: encode detectors file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("detectors file: encode detectors file: %w", err)
	}
	return buf.Bytes(), nil
}

// Write validates f and replaces the file at path with it
// atomically, mode 0600. Callers that read, change and write the file use
// [Update] instead, which also locks.
func Write(path string, f File) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("detectors file: refusing to write %s: %w", path, err)
	}
	b, err := encode(path, f)
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, b, 0o600)
}

// Update changes the detectors file under an exclusive lock:
// it reads the file (a missing file reads as empty), calls change and, if
// change reports a change, validates and writes the result atomically.
// change runs with the lock held, so it may store secrets before the file
// is written; it must not keep f. The lock waits until ctx ends.
func Update(ctx context.Context, path string, change func(f *File) (changed bool, err error)) error {
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	var f File
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.Version = Version
	case err != nil:
		return fmt.Errorf("detectors file: read detectors file: %w", err)
	default:
		if f, err = decode(path, b); err != nil {
			return err
		}
	}
	changed, err := change(&f)
	if err != nil || !changed {
		return err
	}
	return Write(path, f)
}

// lockFile takes an exclusive flock on path (created 0600), polling so that
// the wait ends with ctx.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	lf, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("detectors file: open detectors lock: %w", err)
	}
	for {
		err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			lf.Close()
			return nil, fmt.Errorf("detectors file: lock detectors file: %w", err)
		}
		select {
		case <-ctx.Done():
			lf.Close()
			return nil, fmt.Errorf("detectors file: lock detectors file: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
		lf.Close()
	}, nil
}

// Store is where the detectors live: a detectors file on one host
// ([FileStore]) or a store every API server shares (PostgreSQL, package
// sharedstate). Key rotation (keys.rotate_intake_keys, `starter keys
// add-detector`) writes through it; the API server's reloader reads it.
type Store interface {
	// Load reads and validates the detectors.
	Load(ctx context.Context) (File, error)
	// Update changes the detectors under an exclusive lock, as [Update]
	// does for a file: change runs with the lock held and, if it reports a
	// change, the result is validated and written at once.
	Update(ctx context.Context, change func(f *File) (changed bool, err error)) error
	// String names the store in messages (a path, "postgresql schema x").
	String() string
}

// FileStore is the [Store] of a detectors file at Path.
type FileStore struct{ Path string }

// Load implements [Store].
func (s FileStore) Load(context.Context) (File, error) { return Load(s.Path) }

// Update implements [Store].
func (s FileStore) Update(ctx context.Context, change func(f *File) (bool, error)) error {
	return Update(ctx, s.Path, change)
}

// String implements [Store].
func (s FileStore) String() string { return s.Path }
