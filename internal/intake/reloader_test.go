package intake

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
)

func apiKey(id, key string) auth.APIKey { return auth.APIKey{ID: id, SHA256: auth.HashKey(id, key)} }

func fileDetectors() []auth.Detector {
	return []auth.Detector{
		{Name: "generic", Format: "generic", APIKeys: []auth.APIKey{apiKey("g1", "generic-key-1")}},
		{Name: "falco", Format: "falco", APIKeys: []auth.APIKey{apiKey("f1", "falco-key-1")}},
	}
}

func TestMergeDetectors(t *testing.T) {
	inline := []auth.Detector{{Name: "wazuh", Format: "wazuh", HMACSecrets: []auth.HMACSecret{{ID: "w", Secret: wazuhHMAC}}}}
	got, err := MergeDetectors(inline, fileDetectors())
	if err != nil || len(got) != 3 || got[0].Name != "wazuh" {
		t.Fatalf("merge = %v, %v", got, err)
	}
	if _, err := MergeDetectors(fileDetectors()[:1], fileDetectors()); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("duplicate name: %v", err)
	}
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// reloadEnv is an intake opened from a detectors file, with its reloader.
type reloadEnv struct {
	path string
	svc  *Service
	rl   *Reloader
	srv  *httptest.Server
	log  *syncBuffer
}

func newReloadEnv(t *testing.T) *reloadEnv {
	t.Helper()
	dir := t.TempDir()
	e := &reloadEnv{path: filepath.Join(dir, "detectors.yaml"), log: &syncBuffer{}}
	if err := detectorsfile.Write(e.path, detectorsfile.File{Detectors: fileDetectors()}); err != nil {
		t.Fatal(err)
	}
	inline := []auth.Detector{{Name: "wazuh", Format: "wazuh", HMACSecrets: []auth.HMACSecret{{ID: "w1", Secret: wazuhHMAC}}}}
	ds, err := ResolveDetectors(inline, e.path)
	if err != nil {
		t.Fatal(err)
	}
	e.svc, err = Open(Config{SpoolDir: filepath.Join(dir, "spool"), Detectors: ds, Limits: loadLimits()}, Deps{Assets: testAssets, Signaler: newMem()})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.log, nil))
	if e.rl, err = e.svc.NewReloader(e.path, inline, 20*time.Millisecond, log); err != nil {
		t.Fatal(err)
	}
	if err := e.rl.Reload(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Pattern, e.svc.Handler)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() { e.srv.Close(); e.svc.Close() })
	return e
}

func (e *reloadEnv) status(t *testing.T, detector, key string) int {
	t.Helper()
	return postTo(t, e.srv.Client(), e.srv.URL, detector, genericAlert("db-1", 1), bearer(key)...).status
}

// authed reports whether the intake authenticated the post (the generic
// payload may then still be refused by another detector's parser: 400).
func (e *reloadEnv) authed(t *testing.T, detector, key string) bool {
	t.Helper()
	return e.status(t, detector, key) != http.StatusUnauthorized
}

func (e *reloadEnv) update(t *testing.T, change func(f *detectorsfile.File)) {
	t.Helper()
	err := detectorsfile.Update(context.Background(), e.path, func(f *detectorsfile.File) (bool, error) { change(f); return true, nil })
	if err != nil {
		t.Fatal(err)
	}
}

func TestReloaderAppliesChanges(t *testing.T) {
	e := newReloadEnv(t)
	if s := e.status(t, "generic", "generic-key-1"); s != http.StatusAccepted {
		t.Fatalf("first key: %d", s)
	}
	// Rotation: a second key, the first one ended.
	e.update(t, func(f *detectorsfile.File) {
		d := &f.Detectors[f.Detector("generic")]
		d.APIKeys[0].NotAfter = time.Now().Add(-time.Second)
		d.APIKeys = append(d.APIKeys, apiKey("g2", "generic-key-2"))
	})
	if changed, err := e.rl.Check(); !changed || err != nil {
		t.Fatalf("Check = %v, %v", changed, err)
	}
	if s := e.status(t, "generic", "generic-key-2"); s != http.StatusAccepted {
		t.Fatalf("new key after reload: %d", s)
	}
	if s := e.status(t, "generic", "generic-key-1"); s != http.StatusUnauthorized {
		t.Fatalf("ended key after reload: %d", s)
	}
	if changed, err := e.rl.Check(); changed || err != nil {
		t.Fatalf("Check without a change = %v, %v", changed, err)
	}
	// Run polls and picks a change up on its own.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.rl.Run(ctx); close(done) }()
	e.update(t, func(f *detectorsfile.File) {
		f.Detectors[f.Detector("falco")].APIKeys = []auth.APIKey{apiKey("f2", "falco-key-2")}
	})
	eventually(t, "poll reload", 5*time.Second, func() bool { return e.authed(t, "falco", "falco-key-2") })
	cancel()
	<-done
	if e.authed(t, "falco", "falco-key-1") {
		t.Fatal("removed key still authenticates")
	}
	// The inline detector is still served.
	body := genericAlert("db-1", 1)
	if r := postTo(t, e.srv.Client(), e.srv.URL, "wazuh", body, signedHeaders(body, time.Now())...); r.status == http.StatusUnauthorized {
		t.Fatalf("inline detector after reloads: %d", r.status)
	}
}

func TestReloaderKeepsDetectorsOnBadFile(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, path string)
		want    string
	}{
		{"garbage", func(t *testing.T, p string) { writeRaw(t, p, "detectors: [[[") }, "parse"},
		{"empty list", func(t *testing.T, p string) { writeRaw(t, p, "version: 1\ndetectors: []\n") }, "no detectors"},
		{"invalid key", func(t *testing.T, p string) {
			writeRaw(t, p, "detectors:\n  - name: generic\n    format: generic\n    api_keys:\n      - id: x\n        sha256: zz\n")
		}, "64 hex"},
		{"inline name", func(t *testing.T, p string) {
			writeRaw(t, p, fmt.Sprintf("detectors:\n  - name: wazuh\n    format: generic\n    api_keys:\n      - id: x\n        sha256: %s\n", auth.HashKey("x", "y")))
		}, "both"},
		{"missing", func(t *testing.T, p string) { os.Remove(p) }, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newReloadEnv(t)
			tt.corrupt(t, e.path)
			if _, err := e.rl.Check(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check error %v, want %q", err, tt.want)
			}
			for det, key := range map[string]string{"generic": "generic-key-1", "falco": "falco-key-1"} {
				if !e.authed(t, det, key) {
					t.Fatalf("%s locked out by a bad file", det)
				}
			}
			// The same bad version is reported once, not at every poll.
			if _, err := e.rl.Check(); err != nil && tt.name != "missing" {
				t.Fatalf("second Check of the same bad file: %v", err)
			}
			if st := e.rl.Stats(); st.Failures != 1 || !strings.Contains(st.LastError, tt.want) {
				t.Fatalf("stats %+v", st)
			}
			if got := strings.Count(e.log.String(), "detectors file refused"); got != 1 {
				t.Fatalf("logged the refusal %d times:\n%s", got, e.log.String())
			}
			// A fixed file is applied.
			if err := detectorsfile.Write(e.path, detectorsfile.File{Detectors: []auth.Detector{
				{Name: "generic", Format: "generic", APIKeys: []auth.APIKey{apiKey("g3", "generic-key-3")}},
			}}); err != nil {
				t.Fatal(err)
			}
			if changed, err := e.rl.Check(); !changed || err != nil {
				t.Fatalf("Check of the fixed file = %v, %v", changed, err)
			}
			if s := e.status(t, "generic", "generic-key-3"); s != http.StatusAccepted {
				t.Fatalf("fixed file not applied: %d", s)
			}
		})
	}
}

func writeRaw(t *testing.T, path, content string) {
	t.Helper()
	if err := fsutil.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloaderServesOnlyWhatTheHandlerCan: a detector the handler has no
// parser for is left out (no panic, 401), a changed format keeps the
// detector's previous definition, and the rest of the file still applies.
func TestReloaderServesOnlyWhatTheHandlerCan(t *testing.T) {
	e := newReloadEnv(t)
	e.update(t, func(f *detectorsfile.File) {
		f.Detectors = append(f.Detectors, auth.Detector{Name: "newcomer", Format: "generic", APIKeys: []auth.APIKey{apiKey("n1", "new-key")}})
		f.Detectors = append(f.Detectors, auth.Detector{Name: "bogus", Format: "no-such-format", APIKeys: []auth.APIKey{apiKey("b1", "bogus-key")}})
		f.Detectors[f.Detector("falco")].Format = "generic"
		f.Detectors[f.Detector("falco")].APIKeys = []auth.APIKey{apiKey("f9", "falco-key-9")}
		f.Detectors[f.Detector("generic")].APIKeys = append(f.Detectors[f.Detector("generic")].APIKeys, apiKey("g2", "generic-key-2"))
	})
	if _, err := e.rl.Check(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		detector, key string
		want          int
	}{
		{"newcomer", "new-key", http.StatusAccepted},      // a new detector is served at once
		{"falco", "falco-key-1", http.StatusUnauthorized}, // its old key is gone
		{"falco", "falco-key-9", http.StatusAccepted},     // its new format parses the generic payload
		{"generic", "generic-key-2", http.StatusAccepted},
		{"bogus", "bogus-key", http.StatusUnauthorized}, // a format without a parser is refused, not served
	}
	for _, tt := range tests {
		t.Run(tt.detector+"/"+tt.key, func(t *testing.T) {
			if s := e.status(t, tt.detector, tt.key); s != tt.want {
				t.Fatalf("status %d, want %d", s, tt.want)
			}
		})
	}
	if log := e.log.String(); !strings.Contains(log, "detector=bogus") {
		t.Fatalf("the refused detector was not logged:\n%s", log)
	}
}

// TestReloadDuringTraffic posts from several goroutines while the file is
// rewritten and reloaded (run with -race): the key present in every
// version never fails.
func TestReloadDuringTraffic(t *testing.T) {
	e := newReloadEnv(t)
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		bad      atomic.Int64
		requests atomic.Int64
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if s := e.status(t, "generic", "generic-key-1"); s != http.StatusAccepted {
					bad.Add(1)
				}
				requests.Add(1)
			}
		})
	}
	for i := range 30 {
		e.update(t, func(f *detectorsfile.File) {
			d := &f.Detectors[f.Detector("generic")]
			d.APIKeys = append(d.APIKeys[:1], apiKey(fmt.Sprintf("extra%d", i), fmt.Sprintf("extra-key-%d", i)))
		})
		if changed, err := e.rl.Check(); !changed || err != nil {
			t.Fatalf("reload %d: %v, %v", i, changed, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 || requests.Load() == 0 {
		t.Fatalf("%d of %d requests with a key valid throughout failed", bad.Load(), requests.Load())
	}
	if s := e.status(t, "generic", "extra-key-29"); s != http.StatusAccepted {
		t.Fatalf("last version not in force: %d", s)
	}
}
