// Package sharedstate keeps the API servers' state in PostgreSQL so that
// every replica sees the same platform: the detectors (their key hashes,
// HMAC secrets and scopes), the replay guard of HMAC-signed requests, and
// the failed-authentication counters of the responder API.
//
//   - Detectors are one document (the detectors file's content) in one row
//     with a version. Writers (keys.rotate_intake_keys, `starter keys
//     add-detector`) change it in a transaction that holds the row's lock,
//     so concurrent rotations never lose each other's changes; every API
//     server polls the version (a one-row read) and reloads when it moved,
//     so a rotation reaches every replica within one poll.
//   - A signed request's signature is inserted with INSERT … ON CONFLICT
//     on (detector, signature): the first replica to see it wins, a replay
//     to any replica finds the row and is refused until it expires.
//   - A failure is one row (key, time); the threshold counts the rows of
//     the window from every replica, and the notification fires on the one
//     replica whose upsert of the key's "fired" row succeeds.
//
// Expired replay rows and failures that left the window are deleted by
// [Store.Run]. The HMAC secrets are kept as in the detectors file: in
// clear, readable by their owner only (the tables are revoked from PUBLIC;
// the file is mode 0600); whoever holds IRU_SHARED_STATE_DSN can read them.
package sharedstate

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iru-responder/responder/internal/auth"
	intakeauth "github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
)

// Config turns the shared state on: every API server and the worker of
// one platform point at the same database and schema.
type Config struct {
	DSN    string        `env:"IRU_SHARED_STATE_DSN" secret:"true" doc:"PostgreSQL connection string of the state the API servers share: detectors (in place of IRU_INTAKE_DETECTORS_FILE), the HMAC replay guard and the failed-authentication counters. Set it on every API server and on the worker (key rotation writes the detectors there). Empty: each process keeps its own (single host)."`
	Schema string        `env:"IRU_SHARED_STATE_SCHEMA" envDefault:"iru_shared" doc:"PostgreSQL schema of the shared state's tables (created if missing)."`
	Poll   time.Duration `env:"IRU_SHARED_STATE_POLL" envDefault:"2s" doc:"How often an API server checks the shared detectors' version; a rotation reaches every API server within this period."`
}

// Enabled reports whether the shared state is configured.
func (c *Config) Enabled() bool { return c.DSN != "" }

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var p []error
	if !schemaName.MatchString(c.Schema) {
		p = append(p, fmt.Errorf("IRU_SHARED_STATE_SCHEMA=%q: want a lower-case SQL identifier", c.Schema))
	}
	if c.Poll <= 0 {
		p = append(p, fmt.Errorf("IRU_SHARED_STATE_POLL=%s: must be positive", c.Poll))
	}
	return errors.Join(p...)
}

// Store is the shared state in one PostgreSQL schema. It is safe for
// concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	log    *slog.Logger
}

// Open connects to cfg.DSN and creates the schema and its tables if they
// are missing (idempotent; concurrent first starts are serialised by an
// advisory lock).
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DSN == "" {
		return nil, errors.New("sharedstate: IRU_SHARED_STATE_DSN is not set")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.New(ctx, cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("sharedstate: %w", err)
	}
	s := &Store{pool: pool, schema: cfg.Schema, log: log}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connection pool.
func (s *Store) Close() { s.pool.Close() }

// String names the store in messages.
func (s *Store) String() string { return "postgresql schema " + s.schema }

// t returns the qualified name of table.
func (s *Store) t(table string) string { return pgx.Identifier{s.schema, table}.Sanitize() }

func (s *Store) migrate(ctx context.Context) error {
	ddl := fmt.Sprintf(`
SELECT pg_advisory_xact_lock(hashtext('iru_shared_state_migrate'));
CREATE SCHEMA IF NOT EXISTS %[1]s;
CREATE TABLE IF NOT EXISTS %[2]s (
	id       smallint    PRIMARY KEY CHECK (id = 1),
	version  bigint      NOT NULL,
	document jsonb       NOT NULL,
	updated  timestamptz NOT NULL
);
INSERT INTO %[2]s (id, version, document, updated) VALUES (1, 0, '{"version":1,"detectors":[]}', now()) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS %[3]s (
	detector   text        NOT NULL,
	signature  bytea       NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (detector, signature)
);
CREATE INDEX IF NOT EXISTS replay_expiry ON %[3]s (expires_at);
CREATE TABLE IF NOT EXISTS %[4]s (
	key text        NOT NULL,
	at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_failures_key_at ON %[4]s (key, at);
CREATE TABLE IF NOT EXISTS %[5]s (
	key      text        PRIMARY KEY,
	fired_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS %[6]s (
	id      text        PRIMARY KEY,
	wrapped jsonb       NOT NULL,
	created timestamptz NOT NULL
);
REVOKE ALL ON %[2]s, %[3]s, %[4]s, %[5]s, %[6]s FROM PUBLIC;
`, pgx.Identifier{s.schema}.Sanitize(), s.t("detectors"), s.t("replay"), s.t("auth_failures"), s.t("auth_fired"), s.t("codec_keys"))
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sharedstate: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("sharedstate: migrate %s: %w", s.schema, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sharedstate: migrate: %w", err)
	}
	return nil
}

// Version returns the detectors' version: it grows with every change.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, "SELECT version FROM "+s.t("detectors")+" WHERE id = 1").Scan(&v); err != nil {
		return 0, fmt.Errorf("sharedstate: detectors version: %w", err)
	}
	return v, nil
}

// Snapshot returns the detectors and their version. An empty store (no
// detector added yet) is not an error: it serves no shared detector.
func (s *Store) Snapshot(ctx context.Context) (int64, detectorsfile.File, error) {
	var (
		v   int64
		doc []byte
	)
	if err := s.pool.QueryRow(ctx, "SELECT version, document FROM "+s.t("detectors")+" WHERE id = 1").Scan(&v, &doc); err != nil {
		return 0, detectorsfile.File{}, fmt.Errorf("sharedstate: read detectors: %w", err)
	}
	f, err := decode(doc)
	if err != nil {
		return 0, detectorsfile.File{}, err
	}
	if len(f.Detectors) > 0 {
		if err := f.Validate(); err != nil {
			return 0, detectorsfile.File{}, fmt.Errorf("sharedstate: detectors version %d: %w", v, err)
		}
	}
	return v, f, nil
}

// Load implements [detectorsfile.Store]: an empty store is an error, as a
// missing file is.
func (s *Store) Load(ctx context.Context) (detectorsfile.File, error) {
	_, f, err := s.Snapshot(ctx)
	if err != nil {
		return detectorsfile.File{}, err
	}
	if err := f.Validate(); err != nil {
		return detectorsfile.File{}, fmt.Errorf("sharedstate: %w", err)
	}
	return f, nil
}

func decode(doc []byte) (detectorsfile.File, error) {
	var f detectorsfile.File
	if err := json.Unmarshal(doc, &f); err != nil {
		return detectorsfile.File{}, fmt.Errorf("sharedstate: decode detectors: %w", err)
	}
	return f, nil
}

// Update implements [detectorsfile.Store]: change runs in a transaction
// holding the detectors row's lock (concurrent writers wait for each
// other); if it reports a change, the result is validated and written with
// the next version.
func (s *Store) Update(ctx context.Context, change func(f *detectorsfile.File) (bool, error)) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sharedstate: update detectors: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var (
		v   int64
		doc []byte
	)
	if err := tx.QueryRow(ctx, "SELECT version, document FROM "+s.t("detectors")+" WHERE id = 1 FOR UPDATE").Scan(&v, &doc); err != nil {
		return fmt.Errorf("sharedstate: update detectors: %w", err)
	}
	f, err := decode(doc)
	if err != nil {
		return err
	}
	changed, err := change(&f)
	if err != nil || !changed {
		return err
	}
	f.Version = detectorsfile.Version
	if err := f.Validate(); err != nil {
		return fmt.Errorf("sharedstate: refusing to write the detectors: %w", err)
	}
	out, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("sharedstate: encode detectors: %w", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE "+s.t("detectors")+" SET version = $1, document = $2, updated = now() WHERE id = 1", v+1, out); err != nil {
		return fmt.Errorf("sharedstate: write detectors: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sharedstate: write detectors: %w", err)
	}
	return nil
}

// Remember implements the intake's replay guard (auth.ReplayGuard): the
// row of (detector, signature) is inserted, or taken over when the one
// there expired; a live row means the request is a replay, whichever API
// server accepted it first.
func (s *Store) Remember(ctx context.Context, detector string, sig [sha256.Size]byte, expires, now time.Time) error {
	tag, err := s.pool.Exec(ctx, "INSERT INTO "+s.t("replay")+` AS r (detector, signature, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (detector, signature) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE r.expires_at <= $4`,
		detector, sig[:], expires, now)
	if err != nil {
		return fmt.Errorf("sharedstate: replay guard: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return intakeauth.ErrReplayed
	}
	return nil
}

// Sweep deletes the replay rows expired at now and the failures older than
// keep; it returns how many rows went.
func (s *Store) Sweep(ctx context.Context, now time.Time, keep time.Duration) (int64, error) {
	a, err := s.pool.Exec(ctx, "DELETE FROM "+s.t("replay")+" WHERE expires_at <= $1", now)
	if err != nil {
		return 0, fmt.Errorf("sharedstate: sweep replay guard: %w", err)
	}
	b, err := s.pool.Exec(ctx, "DELETE FROM "+s.t("auth_failures")+" WHERE at <= $1", now.Add(-keep))
	if err != nil {
		return a.RowsAffected(), fmt.Errorf("sharedstate: sweep failures: %w", err)
	}
	c, err := s.pool.Exec(ctx, "DELETE FROM "+s.t("auth_fired")+" WHERE fired_at <= $1", now.Add(-keep))
	if err != nil {
		return a.RowsAffected() + b.RowsAffected(), fmt.Errorf("sharedstate: sweep failures: %w", err)
	}
	return a.RowsAffected() + b.RowsAffected() + c.RowsAffected(), nil
}

// Run sweeps every minute until ctx ends; keep is the longest failure
// window in use (IRU_AUTH_FAIL_WINDOW).
func (s *Store) Run(ctx context.Context, keep time.Duration) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if _, err := s.Sweep(sctx, time.Now(), keep); err != nil && ctx.Err() == nil {
				s.log.Warn("sharedstate: sweep failed; retried in a minute", "err", err)
			}
			cancel()
		}
	}
}

// failureTimeout bounds one shared failure count.
const failureTimeout = 5 * time.Second

// Failures is the responder API's failed-authentication counter shared by
// every API server: a key crosses the threshold when Threshold failures
// from any replicas fall within Window, and one replica notifies (then the
// key is quiet for one Window, as with [auth.FailureWatch]). When the
// database cannot be reached the failure is counted by the process's own
// watch instead, so the threshold still works per replica.
type Failures struct {
	store *Store
	local *auth.FailureWatch
}

// Failures returns the shared counter with local's threshold, window,
// clock and notification; local counts when the database is unreachable.
func (s *Store) Failures(local *auth.FailureWatch) auth.FailureCounter {
	return &Failures{store: s, local: local}
}

func (f *Failures) now() time.Time {
	if f.local.Now != nil {
		return f.local.Now()
	}
	return time.Now()
}

// Failure implements [auth.FailureCounter].
func (f *Failures) Failure(key string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), failureTimeout)
	defer cancel()
	n, crossed, err := f.store.failure(ctx, key, f.now(), f.local.Window, max(1, f.local.Threshold))
	if err != nil {
		f.store.log.Error("sharedstate: failed-authentication count unavailable; counting in this process", "err", err)
		return f.local.Failure(key)
	}
	if crossed && f.local.OnExceeded != nil {
		f.local.OnExceeded(key, n)
	}
	return crossed
}

// Success implements [auth.FailureCounter].
func (f *Failures) Success(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), failureTimeout)
	defer cancel()
	if _, err := f.store.pool.Exec(ctx, "DELETE FROM "+f.store.t("auth_failures")+" WHERE key = $1", key); err != nil {
		f.store.log.Warn("sharedstate: clear failures", "err", err)
	}
	f.local.Success(key)
}

// Count returns key's failures within window before now, up to limit.
func (s *Store) Count(ctx context.Context, key string, now time.Time, window time.Duration, limit int) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, "SELECT count(*) FROM (SELECT 1 FROM "+s.t("auth_failures")+" WHERE key = $1 AND at > $2 AND at <= $3 LIMIT $4) w",
		key, now.Add(-window), now, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sharedstate: count failures: %w", err)
	}
	return n, nil
}

// failure records one failure of key at now and reports the failures of
// the window (up to threshold) and whether this call crossed the threshold.
func (s *Store) failure(ctx context.Context, key string, now time.Time, window time.Duration, threshold int) (int, bool, error) {
	if _, err := s.pool.Exec(ctx, "INSERT INTO "+s.t("auth_failures")+" (key, at) VALUES ($1, $2)", key, now); err != nil {
		return 0, false, fmt.Errorf("sharedstate: record failure: %w", err)
	}
	n, err := s.Count(ctx, key, now, window, threshold)
	if err != nil || n < threshold {
		return n, false, err
	}
	// Exactly one replica wins the upsert while the key is quiet.
	tag, err := s.pool.Exec(ctx, "INSERT INTO "+s.t("auth_fired")+` AS f (key, fired_at) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET fired_at = EXCLUDED.fired_at WHERE f.fired_at <= $3`, key, now, now.Add(-window))
	if err != nil {
		return n, false, fmt.Errorf("sharedstate: record threshold: %w", err)
	}
	return n, tag.RowsAffected() == 1, nil
}
