package evidence

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options configure an [S3Backend].
type S3Options struct {
	// Endpoint is the store's host:port (no scheme).
	Endpoint string
	// Bucket must have been created with Object Lock enabled.
	Bucket string
	// AccessKey, SecretKey and SessionToken (temporary credentials only)
	// are the platform's S3 credentials. They need s3:PutObject,
	// s3:GetObject, s3:ListBucket(Versions), s3:DeleteObject,
	// s3:PutObjectRetention, s3:PutObjectLegalHold and
	// s3:GetBucketObjectLockConfiguration; they should not have
	// s3:BypassGovernanceRetention (compliance mode refuses it anyway).
	AccessKey    string
	SecretKey    string
	SessionToken string
	// TLS turns HTTPS on; CAFile, when set, is the PEM bundle that
	// verifies the store's certificate (default: the system roots).
	TLS    bool
	CAFile string
	// Region of the bucket; default us-east-1.
	Region string
	// PartSize is the multipart upload part size, which is also the
	// memory one upload holds; default 16 MiB (objects up to 160 GB).
	PartSize uint64
}

// defaultPartSize bounds an upload's buffer: minio-go's own default for a
// stream of unknown size is over 500 MB.
const defaultPartSize = 16 << 20

// S3Backend is a [Backend] in an S3 bucket with Object Lock (MinIO, AWS
// S3 and other stores of the S3 API), and a [Holder]: the store itself
// refuses to delete or overwrite a locked blob, whoever asks.
//
// Every blob is written under a legal hold; the [Locker] then locks each
// recorded blob in compliance mode until its retention ends ([Holder.Retain])
// and releases the hold when the incident closes. The bucket is versioned
// (Object Lock needs it), so a PUT over a key or a DELETE without a version
// only adds a version or a delete marker: the backend reads, describes and
// deletes a key by its first version, which is the one that was locked, so
// neither hides the evidence from the locker.
type S3Backend struct {
	c        *minio.Client
	bucket   string
	partSize uint64
}

var (
	_ Backend   = (*S3Backend)(nil)
	_ Holder    = (*S3Backend)(nil)
	_ Versioned = (*S3Backend)(nil)
)

// NewS3Backend connects to the bucket and checks that Object Lock is
// enabled on it.
func NewS3Backend(ctx context.Context, o S3Options) (*S3Backend, error) {
	if o.Endpoint == "" || o.Bucket == "" {
		return nil, fmt.Errorf("%w: S3 endpoint and bucket are required", ErrInvalid)
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.PartSize == 0 {
		o.PartSize = defaultPartSize
	}
	opts := &minio.Options{
		Creds:  credentials.NewStaticV4(o.AccessKey, o.SecretKey, o.SessionToken),
		Secure: o.TLS,
		Region: o.Region,
	}
	if o.TLS && o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("evidence: S3 CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: S3 CA bundle %s has no certificate", ErrInvalid, o.CAFile)
		}
		tr, err := minio.DefaultTransport(true)
		if err != nil {
			return nil, fmt.Errorf("evidence: S3 transport: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts.Transport = tr
	}
	c, err := minio.New(o.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("evidence: S3 client for %s: %w", o.Endpoint, err)
	}
	enabled, _, _, _, err := c.GetObjectLockConfig(ctx, o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("evidence: S3 bucket %s at %s: object lock configuration: %w", o.Bucket, o.Endpoint, err)
	}
	if enabled != "Enabled" {
		return nil, fmt.Errorf("%w: S3 bucket %s was not created with Object Lock", ErrInvalid, o.Bucket)
	}
	return &S3Backend{c: c, bucket: o.Bucket, partSize: o.PartSize}, nil
}

// s3Err maps the store's refusals onto the locker's errors.
func s3Err(op, key string, err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NoSuchVersion":
		return fmt.Errorf("%w: blob %s", ErrNotFound, key)
	case "PreconditionFailed":
		return fmt.Errorf("%w: %s", ErrExists, key)
	case "AccessDenied", "ObjectLocked", "InvalidRequest":
		// A locked version (retention or legal hold) cannot be deleted.
		if op == "delete" {
			return fmt.Errorf("%w: the store refuses to delete %s: %w", ErrRetained, key, err)
		}
	}
	return fmt.Errorf("evidence: S3 %s %s: %w", op, key, err)
}

// Put implements [Backend]. The blob is written under a legal hold, and
// only when key is not stored yet (If-None-Match: *).
func (b *S3Backend) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := checkBlobKey(key); err != nil {
		return 0, err
	}
	if _, err := b.first(ctx, key); err == nil {
		return 0, fmt.Errorf("%w: %s", ErrExists, key)
	} else if !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	opts := minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		LegalHold:   minio.LegalHoldEnabled,
		PartSize:    b.partSize,
	}
	opts.SetMatchETagExcept("*")
	// A blob that fits in singlePutMax goes in one request of known size;
	// a larger one streams as a multipart upload of PartSize parts.
	buf := headPool.Get().(*[]byte)
	defer headPool.Put(buf)
	head := *buf
	n, err := io.ReadFull(ctxReader{ctx, r}, head)
	var body io.Reader
	size := int64(-1)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		body, size = bytes.NewReader(head[:n]), int64(n)
	case err != nil:
		return 0, fmt.Errorf("evidence: put %s: %w", key, err)
	default:
		body = io.MultiReader(bytes.NewReader(head), ctxReader{ctx, r})
	}
	info, err := b.c.PutObject(ctx, b.bucket, key, body, size, opts)
	if err != nil {
		return 0, s3Err("put", key, err)
	}
	return info.Size, nil
}

// singlePutMax is the largest blob written in a single PUT.
const singlePutMax = 1 << 20

// headPool holds the buffers that read a blob's first singlePutMax bytes.
var headPool = sync.Pool{New: func() any {
	b := make([]byte, singlePutMax)
	return &b
}}

// Children implements [Lister].
func (b *S3Backend) Children(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for o := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if o.Err != nil {
			return nil, s3Err("list", prefix, o.Err)
		}
		if name, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, prefix), "/"); ok && name != "" && !strings.Contains(name, "/") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// versions lists the versions of key (delete markers included), oldest
// first.
func (b *S3Backend) versions(ctx context.Context, key string) ([]minio.ObjectInfo, error) {
	var out []minio.ObjectInfo
	for o := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}) {
		if o.Err != nil {
			return nil, s3Err("list", key, o.Err)
		}
		if o.Key == key {
			out = append(out, o)
		}
	}
	// The listing is newest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// first returns the first version of key that holds data: the one that
// was written by Put and locked.
func (b *S3Backend) first(ctx context.Context, key string) (minio.ObjectInfo, error) {
	vs, err := b.versions(ctx, key)
	if err != nil {
		return minio.ObjectInfo{}, err
	}
	for _, v := range vs {
		if !v.IsDeleteMarker {
			return v, nil
		}
	}
	return minio.ObjectInfo{}, fmt.Errorf("%w: blob %s", ErrNotFound, key)
}

// Get implements [Backend]: it reads the first version of key.
func (b *S3Backend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkBlobKey(key); err != nil {
		return nil, err
	}
	v, err := b.first(ctx, key)
	if err != nil {
		return nil, err
	}
	obj, err := b.c.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{VersionID: v.VersionID})
	if err != nil {
		return nil, s3Err("get", key, err)
	}
	return obj, nil
}

// Stat implements [Backend] for the first version of key.
func (b *S3Backend) Stat(ctx context.Context, key string) (BlobInfo, error) {
	if err := checkBlobKey(key); err != nil {
		return BlobInfo{}, err
	}
	v, err := b.first(ctx, key)
	if err != nil {
		return BlobInfo{}, err
	}
	return BlobInfo{Key: key, Size: v.Size, ModTime: v.LastModified}, nil
}

// Delete implements [Backend]: it removes every version of key (and every
// delete marker), which the store refuses with an error wrapping
// ErrRetained while a version is locked or held.
func (b *S3Backend) Delete(ctx context.Context, key string) error {
	if err := checkBlobKey(key); err != nil {
		return err
	}
	vs, err := b.versions(ctx, key)
	if err != nil {
		return err
	}
	for _, v := range vs {
		if err := b.c.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID}); err != nil {
			return s3Err("delete", key, err)
		}
	}
	return nil
}

// Retain implements [Holder]: it locks the first version of key in
// compliance mode until until (rounded up to the second, as S3 keeps it).
// The store lets retention be extended, never shortened. A date already
// past locks nothing.
func (b *S3Backend) Retain(ctx context.Context, key string, until time.Time) error {
	if err := checkBlobKey(key); err != nil {
		return err
	}
	v, err := b.first(ctx, key)
	if err != nil {
		return err
	}
	until = ceilSecond(until)
	if !until.After(time.Now()) {
		return nil // the retention has ended: there is nothing left to lock
	}
	mode := minio.Compliance
	if err := b.c.PutObjectRetention(ctx, b.bucket, key, minio.PutObjectRetentionOptions{
		Mode: &mode, RetainUntilDate: &until, VersionID: v.VersionID,
	}); err != nil {
		return s3Err("retain", key, err)
	}
	return nil
}

// SetLegalHold implements [Holder] on every version of key.
func (b *S3Backend) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := checkBlobKey(key); err != nil {
		return err
	}
	vs, err := b.versions(ctx, key)
	if err != nil {
		return err
	}
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	for _, v := range vs {
		if v.IsDeleteMarker {
			continue
		}
		if err := b.c.PutObjectLegalHold(ctx, b.bucket, key, minio.PutObjectLegalHoldOptions{VersionID: v.VersionID, Status: &status}); err != nil {
			return s3Err("legal hold", key, err)
		}
	}
	return nil
}

// Versions implements [Versioned].
func (b *S3Backend) Versions(ctx context.Context, key string) ([]string, error) {
	if err := checkBlobKey(key); err != nil {
		return nil, err
	}
	vs, err := b.versions(ctx, key)
	if err != nil {
		return nil, err
	}
	var out []string
	for i := len(vs) - 1; i >= 0; i-- {
		if !vs[i].IsDeleteMarker {
			out = append(out, vs[i].VersionID)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: blob %s", ErrNotFound, key)
	}
	return out, nil
}

// GetVersion implements [Versioned].
func (b *S3Backend) GetVersion(ctx context.Context, key, version string) (io.ReadCloser, error) {
	if err := checkBlobKey(key); err != nil {
		return nil, err
	}
	obj, err := b.c.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{VersionID: version})
	if err != nil {
		return nil, s3Err("get", key, err)
	}
	return obj, nil
}

// PutVersion implements [Versioned]: the new version gets the legal hold
// and the compliance retention of the first version.
func (b *S3Backend) PutVersion(ctx context.Context, key string, r io.Reader) error {
	lock, err := b.Lock(ctx, key)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(r, singlePutMax+1))
	if err != nil {
		return fmt.Errorf("evidence: put version of %s: %w", key, err)
	}
	if len(data) > singlePutMax {
		return fmt.Errorf("%w: a new version of %s is larger than %d bytes", ErrInvalid, key, singlePutMax)
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", LegalHold: minio.LegalHoldDisabled}
	if lock.LegalHold {
		opts.LegalHold = minio.LegalHoldEnabled
	}
	if lock.Mode != "" && lock.RetainUntil.After(time.Now()) {
		opts.Mode, opts.RetainUntilDate = minio.RetentionMode(lock.Mode), lock.RetainUntil
	}
	if _, err := b.c.PutObject(ctx, b.bucket, key, bytes.NewReader(data), int64(len(data)), opts); err != nil {
		return s3Err("put version", key, err)
	}
	return nil
}

// Lock describes how the store holds the first version of key: its
// retention mode and date, and whether a legal hold is on.
func (b *S3Backend) Lock(ctx context.Context, key string) (StoreLock, error) {
	v, err := b.first(ctx, key)
	if err != nil {
		return StoreLock{}, err
	}
	var l StoreLock
	mode, until, err := b.c.GetObjectRetention(ctx, b.bucket, key, v.VersionID)
	if err != nil && minio.ToErrorResponse(err).Code != "NoSuchObjectLockConfiguration" {
		return StoreLock{}, s3Err("retention", key, err)
	}
	if mode != nil {
		l.Mode = string(*mode)
	}
	if until != nil {
		l.RetainUntil = *until
	}
	hold, err := b.c.GetObjectLegalHold(ctx, b.bucket, key, minio.GetObjectLegalHoldOptions{VersionID: v.VersionID})
	if err != nil && minio.ToErrorResponse(err).Code != "NoSuchObjectLockConfiguration" {
		return StoreLock{}, s3Err("legal hold", key, err)
	}
	l.LegalHold = hold != nil && *hold == minio.LegalHoldEnabled
	return l, nil
}

// StoreLock is how an object store holds a blob.
type StoreLock struct {
	Mode        string    // "COMPLIANCE", or "" when not retained
	RetainUntil time.Time // zero when not retained
	LegalHold   bool
}

// ceilSecond rounds t up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); s.Before(t) {
		return s.Add(time.Second)
	}
	return t
}
