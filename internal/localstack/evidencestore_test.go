//go:build localstack && integration

package localstack

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/evidence"
)

// TestEvidenceStoreStep runs the cluster mode's evidence store step twice on
// one state folder, as two `starter cluster` runs would: MinIO starts, the
// root credentials are kept 0600 and reused, and the variables handed to the
// worker and the API server open the bucket with Object Lock as the
// platform's user, which finds the first run's blob.
func TestEvidenceStoreStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	state := t.TempDir()
	run := func() (*stack, evidence.Backend) {
		t.Helper()
		s := &stack{cfg: Config{Up: config.Up{StateDir: state}}, out: io.Discard, logDir: state}
		if err := s.startEvidenceStore(ctx); err != nil {
			t.Fatal(err)
		}
		var cfg evidence.Config
		if err := config.LoadFrom(&cfg, s.env); err != nil {
			t.Fatalf("the step's variables do not load: %v", err)
		}
		if cfg.Backend != evidence.BackendS3 {
			t.Fatalf("backend %q, want s3", cfg.Backend)
		}
		b, err := cfg.OpenBackend(ctx)
		if err != nil {
			s.close()
			t.Fatal(err)
		}
		return s, b
	}
	s1, b1 := run()
	if _, err := b1.Put(ctx, "inc-1/blob.obj", strings.NewReader("ciphertext")); err != nil {
		s1.close()
		t.Fatal(err)
	}
	s1.close()
	fi, err := os.Stat(filepath.Join(state, "minio-root.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root credentials file: %v %v; want 0600", fi, err)
	}
	s2, b2 := run()
	defer s2.close()
	if info, err := b2.Stat(ctx, "inc-1/blob.obj"); err != nil || info.Size != int64(len("ciphertext")) {
		t.Fatalf("blob after the restart: %+v, %v", info, err)
	}
}
