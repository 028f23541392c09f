//go:build localstack

package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/iru-responder/responder/internal/objectstore"
)

// startEvidenceStore starts MinIO (the pinned .tools/bin/minio, or
// IRU_MINIO_BIN) on a free port with its data in IRU_STATE_DIR/minio, and
// points every platform process's evidence locker at its bucket with
// Object Lock, as the platform's restricted S3 user. The root credentials
// are kept (0600) beside the data, so a restart finds its bucket.
func (s *stack) startEvidenceStore(ctx context.Context) error {
	logf, err := s.openLog("minio.log")
	if err != nil {
		return err
	}
	dir := filepath.Join(s.cfg.StateDir, "minio")
	root, err := minioRoot(filepath.Join(s.cfg.StateDir, "minio-root.json"))
	if err != nil {
		return err
	}
	t0 := time.Now()
	srv, err := objectstore.Start(ctx, objectstore.Options{Dir: filepath.Join(dir, "data"), Root: root, Log: logf})
	if err != nil {
		return err
	}
	s.defer_(func() {
		s.say("stopping MinIO")
		_ = srv.Stop()
	})
	if root.AccessKey == "" {
		if err := saveMinioRoot(filepath.Join(s.cfg.StateDir, "minio-root.json"), srv.Root()); err != nil {
			return err
		}
	}
	s.env = append(s.env, srv.Env()...)
	s.say("evidence store: MinIO %s, bucket %s with Object Lock, ready in %s (platform credentials until %s)",
		srv.Endpoint(), srv.Bucket(), time.Since(t0).Round(time.Millisecond), srv.Platform().Expires.Format(time.RFC3339))
	return nil
}

// minioRoot reads the saved root credentials; none yet is not an error.
func minioRoot(path string) (objectstore.Credentials, error) {
	var c objectstore.Credentials
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("minio root credentials: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("minio root credentials %s: %w", path, err)
	}
	return c, nil
}

func saveMinioRoot(path string, c objectstore.Credentials) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("minio root credentials: %w", err)
	}
	return nil
}
