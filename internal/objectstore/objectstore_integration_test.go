//go:build integration

package objectstore

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestStart starts the pinned MinIO: the bucket has Object Lock, the
// platform's credentials are temporary and cannot change the bucket (its
// lock configuration, its policy, its existence), and a restart on the
// same folder with the same root keeps the bucket.
func TestStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	log, err := os.Create(dir + ".log")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = log.Close() }()
	s, err := Start(ctx, Options{Dir: dir, Log: log})
	if err != nil {
		t.Fatalf("%v (log %s)", err, log.Name())
	}
	defer func() { _ = s.Stop() }()
	p := s.Platform()
	if p.SessionToken == "" || time.Until(p.Expires) < 6*24*time.Hour {
		t.Fatalf("platform credentials %q expire %s: want temporary ones for about 7 days", p.AccessKey, p.Expires)
	}
	platform, err := s.Client(p)
	if err != nil {
		t.Fatal(err)
	}
	if enabled, _, _, _, err := platform.GetObjectLockConfig(ctx, s.Bucket()); err != nil || enabled != "Enabled" {
		t.Fatalf("object lock = %q, %v", enabled, err)
	}
	days := uint(1)
	mode, unit := minio.Governance, minio.Days
	refused := []struct {
		name string
		do   func() error
	}{
		{"change the bucket's default retention", func() error {
			return platform.SetObjectLockConfig(ctx, s.Bucket(), &mode, &days, &unit)
		}},
		{"set a bucket policy", func() error { return platform.SetBucketPolicy(ctx, s.Bucket(), `{}`) }},
		{"remove the bucket", func() error { return platform.RemoveBucket(ctx, s.Bucket()) }},
		{"create another bucket", func() error { return platform.MakeBucket(ctx, "other", minio.MakeBucketOptions{}) }},
	}
	for _, r := range refused {
		if err := r.do(); minio.ToErrorResponse(err).Code != "AccessDenied" {
			t.Errorf("%s as the platform user: err = %v, want AccessDenied", r.name, err)
		}
	}
	if _, err := platform.PutObject(ctx, s.Bucket(), "probe", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("platform put: %v", err)
	}
	root := s.Root()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s2, err := Start(ctx, Options{Dir: dir, Root: root, Log: log})
	if err != nil {
		t.Fatalf("restart: %v (log %s)", err, log.Name())
	}
	defer func() { _ = s2.Stop() }()
	c, err := s2.Client(s2.Platform())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StatObject(ctx, s2.Bucket(), "probe", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("object after restart: %v", err)
	}
	if _, err := os.Stat(Binary()); err != nil {
		t.Fatal(err)
	}
}
