package intake

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/auth"
)

func TestServiceFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "intake.yaml")
	cfg := fmt.Sprintf(`spool_dir: %s
max_body_bytes: 65536
retry_after: 7s
task_queue: svc-test
detectors:
  - name: generic
    format: generic
    api_keys:
      - id: old
        sha256: %s
        not_after: 2000-01-01T00:00:00Z
      - id: new
        sha256: %s
`, filepath.Join(dir, "spool"), auth.HashKey("old", "k-old"), auth.HashKey("new", "k-new"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if c.RetryAfter != 7*time.Second || len(c.Detectors) != 1 || c.Detectors[0].APIKeys[0].NotAfter.Year() != 2000 {
		t.Fatalf("config %+v", c)
	}
	mem := newMem()
	svc, err := Open(c, Deps{Assets: testAssets, Signaler: mem})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	mux := http.NewServeMux()
	mux.Handle(Pattern, svc.Handler)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	if r := postTo(t, srv.Client(), srv.URL, "generic", genericAlert("db-1", 1), bearer("k-old")...); r.status != http.StatusUnauthorized {
		t.Fatalf("expired key: %d", r.status)
	}
	if r := postTo(t, srv.Client(), srv.URL, "generic", genericAlert("10.10.0.22", 1), bearer("k-new")...); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %v", r.status, r.body)
	}
	if r := postTo(t, srv.Client(), srv.URL, "generic", []byte(`{"source":"`+strings.Repeat("x", 70000)+`"}`), bearer("k-new")...); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("max_body_bytes not applied: %d", r.status)
	}
	eventually(t, "delivery", 10*time.Second, func() bool { return svc.Spool.Stats().Pending == 0 })
	starts, _ := mem.snapshot()
	in, ok := starts["incident:container-compromise:db-1"]
	if !ok || in.Asset != "db-1" || in.OpenedBy != "generic/new" {
		t.Fatalf("starts %+v", starts)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigRejectsUnknownKeys(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("spool_dir: /x\nspool_dri: /y\n"), 0o600)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "spool_dri") {
		t.Fatalf("LoadConfig error %v", err)
	}
}

func TestOpenRejectsBadFormat(t *testing.T) {
	c := Config{SpoolDir: t.TempDir(), Detectors: []auth.Detector{{Name: "x", Format: "splunk", APIKeys: []auth.APIKey{{ID: "k", SHA256: auth.HashKey("k", "v")}}}}}
	if _, err := Open(c, Deps{Assets: testAssets, Signaler: newMem()}); err == nil || !strings.Contains(err.Error(), "splunk") {
		t.Fatalf("Open error %v", err)
	}
}
