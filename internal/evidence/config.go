package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Config is the locker's configuration. Load it with internal/config
// (config.Load(&cfg)); it validates itself.
type Config struct {
	Dir                  string        `env:"IRU_EVIDENCE_DIR" envDefault:".iru/evidence" doc:"Folder of the evidence locker: blobs/ (encrypted objects and wrapped keys) and custody/ (custody logs)."`
	RetentionPII         time.Duration `env:"IRU_EVIDENCE_RETENTION_PII" envDefault:"720h" doc:"Retention of pii evidence (default 30 days: GDPR storage limitation)."`
	RetentionFinancial   time.Duration `env:"IRU_EVIDENCE_RETENTION_FINANCIAL" envDefault:"61368h" doc:"Retention of financial evidence (default 7 years: accounting and tax record keeping)."`
	RetentionOperational time.Duration `env:"IRU_EVIDENCE_RETENTION_OPERATIONAL" envDefault:"8760h" doc:"Retention of operational evidence (default 1 year: PCI DSS audit log history)."`
}

// Validate checks the configuration; errors name the variable.
func (c *Config) Validate() error {
	var p []error
	if c.Dir == "" {
		p = append(p, errors.New("IRU_EVIDENCE_DIR: must not be empty"))
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

// Options returns the locker options of c (the default backend in c.Dir).
func (c Config) Options() Options {
	return Options{Retention: map[Class]time.Duration{
		ClassPII:         c.RetentionPII,
		ClassFinancial:   c.RetentionFinancial,
		ClassOperational: c.RetentionOperational,
	}}
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
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	return nil
}
