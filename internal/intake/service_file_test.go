package intake

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
)

// TestServiceDetectorsFile opens the intake from a configuration naming a
// detectors file and checks that Run reloads it.
func TestServiceDetectorsFile(t *testing.T) {
	dir := t.TempDir()
	df := filepath.Join(dir, "detectors.yaml")
	if err := detectorsfile.Write(df, detectorsfile.File{Detectors: []auth.Detector{{Name: "generic", Format: "generic", APIKeys: []auth.APIKey{apiKey("g1", "k1")}}}}); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "intake.yaml")
	os.WriteFile(cfgPath, fmt.Appendf(nil, "spool_dir: %s\ndetectors_file: %s\ndetectors_poll: 20ms\n", filepath.Join(dir, "spool"), df), 0o600)
	c, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := Open(c, Deps{Assets: testAssets, Signaler: newMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	mux := http.NewServeMux()
	mux.Handle(Pattern, svc.Handler)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(key string) int {
		return postTo(t, srv.Client(), srv.URL, "generic", genericAlert("db-1", 1), bearer(key)...).status
	}
	if s := post("k1"); s != http.StatusAccepted {
		t.Fatalf("file key: %d", s)
	}
	detectorsfile.Update(ctx, df, func(f *detectorsfile.File) (bool, error) {
		f.Detectors[0].APIKeys = append(f.Detectors[0].APIKeys, apiKey("g2", "k2"))
		return true, nil
	})
	eventually(t, "reload", 5*time.Second, func() bool { return post("k2") == http.StatusAccepted })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
