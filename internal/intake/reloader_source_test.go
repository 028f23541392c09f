package intake

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
)

// storeSource is a detector source in memory, with an outage switch: the
// reloader's side of the shared store (package sharedstate tests the store
// itself on PostgreSQL).
type storeSource struct {
	mu      sync.Mutex
	version int64
	file    detectorsfile.File
	down    bool
}

func (s *storeSource) Version(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return 0, errors.New("connection refused")
	}
	return s.version, nil
}

func (s *storeSource) Snapshot(ctx context.Context) (int64, detectorsfile.File, error) {
	v, err := s.Version(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	return v, s.file, err
}

func (s *storeSource) String() string { return "memory" }

func (s *storeSource) set(f func(s *storeSource)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// TestSourceReloader: a change of the source's version is applied at the
// next check; an outage keeps the detectors in force, is logged once and
// counted at every check; after it, a change made meanwhile is applied.
func TestSourceReloader(t *testing.T) {
	one := auth.Detector{Name: "generic", Format: "generic", APIKeys: []auth.APIKey{apiKey("g1", "k1")}}
	two := auth.Detector{Name: "falco", Format: "falco", APIKeys: []auth.APIKey{apiKey("f1", "k2")}}
	src := &storeSource{version: 1, file: detectorsfile.File{Detectors: []auth.Detector{one}}}
	a, err := auth.New(nil, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r, err := NewReloader(a, ReloaderOptions{Source: src, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if changed, err := r.Check(); changed || err != nil {
		t.Fatalf("unchanged version: %v %v", changed, err)
	}
	src.set(func(s *storeSource) { s.down = true })
	for range 3 {
		if _, err := r.Check(); err == nil {
			t.Fatal("an outage reported no error")
		}
	}
	if got := a.Detectors(); len(got) != 1 || got[0] != "generic" {
		t.Errorf("detectors during the outage: %v", got)
	}
	if n := strings.Count(logs.String(), "unreachable"); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
	if st := r.Stats(); st.Failures != 3 || st.LastError == "" {
		t.Errorf("stats during the outage: %+v", st)
	}
	src.set(func(s *storeSource) { s.down, s.version, s.file.Detectors = false, 2, []auth.Detector{one, two} })
	if changed, err := r.Check(); !changed || err != nil {
		t.Fatalf("after the outage: %v %v", changed, err)
	}
	if got := a.Detectors(); len(got) != 2 {
		t.Errorf("detectors after the outage: %v", got)
	}
	if st := r.Stats(); st.LastError != "" || st.Reloads != 2 {
		t.Errorf("stats after the outage: %+v", st)
	}
}
