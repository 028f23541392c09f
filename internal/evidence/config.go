package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Config is the locker's configuration. Load it with internal/config
// (config.Load(&cfg)); it validates itself.
type Config struct {
	Dir                  string        `env:"IRU_EVIDENCE_DIR" envDefault:".iru/evidence" doc:"Folder of the evidence locker: blobs/ (encrypted objects and wrapped keys) and custody/ (custody logs)."`
	RetentionPII         time.Duration `env:"IRU_EVIDENCE_RETENTION_PII" envDefault:"720h" doc:"Retention of pii evidence (default 30 days: GDPR storage limitation)."`
	RetentionFinancial   time.Duration `env:"IRU_EVIDENCE_RETENTION_FINANCIAL" envDefault:"61368h" doc:"Retention of financial evidence (default 7 years: accounting and tax record keeping)."`
	RetentionOperational time.Duration `env:"IRU_EVIDENCE_RETENTION_OPERATIONAL" envDefault:"8760h" doc:"Retention of operational evidence (default 1 year: PCI DSS audit log history)."`

	Backend        string `env:"IRU_EVIDENCE_BACKEND" envDefault:"dir" doc:"Where the encrypted objects and wrapped keys go: dir (IRU_EVIDENCE_DIR/blobs) or s3 (a bucket with Object Lock; the custody logs go there too, one object per event, so every host shares them)."`
	S3Endpoint     string `env:"IRU_EVIDENCE_S3_ENDPOINT" doc:"host:port of the S3 store (s3 backend)."`
	S3Bucket       string `env:"IRU_EVIDENCE_S3_BUCKET" envDefault:"iru-evidence" doc:"Bucket of the s3 backend; it must have been created with Object Lock."`
	S3Region       string `env:"IRU_EVIDENCE_S3_REGION" envDefault:"us-east-1" doc:"Region of the bucket."`
	S3AccessKey    string `env:"IRU_EVIDENCE_S3_ACCESS_KEY" doc:"Access key of the platform's S3 user (no s3:BypassGovernanceRetention)."`
	S3SecretKey    string `env:"IRU_EVIDENCE_S3_SECRET_KEY" secret:"true" doc:"Secret key of the platform's S3 user."`
	S3SessionToken string `env:"IRU_EVIDENCE_S3_SESSION_TOKEN" secret:"true" doc:"Session token, when the S3 credentials are temporary (STS)."`
	S3TLS          bool   `env:"IRU_EVIDENCE_S3_TLS" envDefault:"false" doc:"Use HTTPS to the S3 store (implied by IRU_EVIDENCE_S3_CA)."`
	S3CA           string `env:"IRU_EVIDENCE_S3_CA" doc:"PEM file of the CA that signs the S3 store's certificate; system roots when empty."`
}

// Evidence backends (IRU_EVIDENCE_BACKEND).
const (
	BackendDir = "dir"
	BackendS3  = "s3"
)

// Validate checks the configuration; errors name the variable.
func (c *Config) Validate() error {
	var p []error
	if c.Dir == "" {
		p = append(p, errors.New("IRU_EVIDENCE_DIR: must not be empty"))
	}
	switch c.Backend {
	case BackendDir:
	case BackendS3:
		if c.S3Endpoint == "" || c.S3Bucket == "" || c.S3AccessKey == "" || c.S3SecretKey == "" {
			p = append(p, errors.New("IRU_EVIDENCE_BACKEND=s3: IRU_EVIDENCE_S3_ENDPOINT, IRU_EVIDENCE_S3_BUCKET, IRU_EVIDENCE_S3_ACCESS_KEY and IRU_EVIDENCE_S3_SECRET_KEY are required"))
		}
		if strings.Contains(c.S3Endpoint, "://") || strings.Contains(c.S3Endpoint, "/") {
			p = append(p, fmt.Errorf("IRU_EVIDENCE_S3_ENDPOINT=%q: want host:port, without scheme or path", c.S3Endpoint))
		}
		if c.S3CA != "" {
			if _, err := os.Stat(c.S3CA); err != nil {
				p = append(p, fmt.Errorf("IRU_EVIDENCE_S3_CA: %w", err))
			}
		}
	default:
		p = append(p, fmt.Errorf("IRU_EVIDENCE_BACKEND=%q: want dir or s3", c.Backend))
	}
	for name, d := range map[string]time.Duration{
		"IRU_EVIDENCE_RETENTION_PII":         c.RetentionPII,
		"IRU_EVIDENCE_RETENTION_FINANCIAL":   c.RetentionFinancial,
		"IRU_EVIDENCE_RETENTION_OPERATIONAL": c.RetentionOperational,
	} {
		if d <= 0 {
			p = append(p, fmt.Errorf("%s=%s: must be positive", name, d))
		}
	}
	return errors.Join(p...)
}

// Options returns the locker options of c (the default backend in c.Dir;
// with S3, the custody logs in the bucket too, shared by every host).
func (c Config) Options() Options {
	return Options{Retention: map[Class]time.Duration{
		ClassPII:         c.RetentionPII,
		ClassFinancial:   c.RetentionFinancial,
		ClassOperational: c.RetentionOperational,
	}, CustodyInStore: c.Backend == BackendS3}
}

// S3Options returns the S3 backend options of c.
func (c Config) S3Options() S3Options {
	return S3Options{
		Endpoint: c.S3Endpoint, Bucket: c.S3Bucket, Region: c.S3Region,
		AccessKey: c.S3AccessKey, SecretKey: c.S3SecretKey, SessionToken: c.S3SessionToken,
		TLS: c.S3TLS || c.S3CA != "", CAFile: c.S3CA,
	}
}

// OpenBackend returns the backend c chooses: nil for the folder (the
// locker's default), or the S3 bucket, checked to have Object Lock.
func (c Config) OpenBackend(ctx context.Context) (Backend, error) {
	if c.Backend != BackendS3 {
		return nil, nil
	}
	return NewS3Backend(ctx, c.S3Options())
}

// maxJSONBlob bounds small JSON blobs (wrapped keys).
const maxJSONBlob = 64 << 10

func putJSON(ctx context.Context, b Backend, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = b.Put(ctx, key, bytes.NewReader(data))
	return err
}

func getJSON(ctx context.Context, b Backend, key string, v any) error {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()
	data, err := io.ReadAll(io.LimitReader(rc, maxJSONBlob+1))
	if err != nil {
		return err
	}
	if len(data) > maxJSONBlob {
		return fmt.Errorf("blob %s is larger than %d bytes", key, maxJSONBlob)
	}
	if err := decodeJSON(data, v); err != nil {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	return nil
}

// decodeJSON decodes data into v, refusing unknown fields.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
