package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresStore is a [Store] on PostgreSQL. Its tables live in the first
// schema of the connection's search_path. Appends are group-committed: the
// entries that arrive while a commit runs are inserted together by the next
// one, in a single statement.
type PostgresStore struct {
	pool  *pgxpool.Pool
	owned bool
	group *groupCommitter
}

func newPostgresStore(pool *pgxpool.Pool, owned bool) *PostgresStore {
	s := &PostgresStore{pool: pool, owned: owned}
	s.group = newGroupCommitter(s)
	return s
}

// OpenPostgres connects to dsn and returns a store that closes its pool on
// Close. The schema must have been created by [MigratePostgres].
func OpenPostgres(ctx context.Context, dsn string) (*PostgresStore, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger: postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ledger: postgres: connect: %w", err)
	}
	return newPostgresStore(pool, true), nil
}

// NewPostgresStore returns a store on pool; Close leaves the pool open.
func NewPostgresStore(pool *pgxpool.Pool) *PostgresStore {
	return newPostgresStore(pool, false)
}

// postgresSchema creates the tables, the trigger that rejects UPDATE,
// DELETE and TRUNCATE even for the owner, and the indexes. It is idempotent.
const postgresSchema = `
CREATE TABLE IF NOT EXISTS ledger_entries (
	incident_id     text        NOT NULL,
	seq             bigint      NOT NULL CHECK (seq >= 1),
	version         smallint    NOT NULL,
	at              timestamptz NOT NULL,
	actor           text        NOT NULL,
	action          text        NOT NULL,
	target          text        NOT NULL,
	params_sha256   bytea       NOT NULL CHECK (octet_length(params_sha256) = 32),
	outcome         text        NOT NULL,
	outcome_detail  text        NOT NULL,
	decision        text,
	record          text,
	idempotency_key text        NOT NULL,
	prev_hash       bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
	hash            bytea       NOT NULL CHECK (octet_length(hash) = 32),
	CONSTRAINT ledger_entries_pkey PRIMARY KEY (incident_id, seq),
	CONSTRAINT ledger_entries_idempotency_key UNIQUE (incident_id, idempotency_key)
);
ALTER TABLE ledger_entries ADD COLUMN IF NOT EXISTS decision text;
ALTER TABLE ledger_entries ADD COLUMN IF NOT EXISTS record text;
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
	id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	incident_id text        NOT NULL,
	seq         bigint      NOT NULL,
	version     smallint    NOT NULL,
	head_hash   bytea       NOT NULL CHECK (octet_length(head_hash) = 32),
	at          timestamptz NOT NULL,
	key_id      text        NOT NULL,
	signature   bytea       NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_checkpoints_incident ON ledger_checkpoints (incident_id, id);
CREATE OR REPLACE FUNCTION ledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'ledger: % on % is not allowed: the ledger is append-only', TG_OP, TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE OR REPLACE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
	FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
CREATE OR REPLACE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
	FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change();
CREATE OR REPLACE TRIGGER ledger_checkpoints_append_only BEFORE UPDATE OR DELETE ON ledger_checkpoints
	FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
CREATE OR REPLACE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change();
REVOKE ALL ON ledger_entries, ledger_checkpoints FROM PUBLIC;
`

// MigratePostgres creates the ledger schema in the first schema of pool's
// search_path and creates appRole (NOLOGIN, when missing) with USAGE on that
// schema and only SELECT and INSERT on the tables. Run it as the schema
// owner; the responder itself connects as a login role that is a member of
// appRole, so it can neither change nor remove rows, nor disable the
// trigger. It is idempotent and serialised by an advisory lock.
func MigratePostgres(ctx context.Context, pool *pgxpool.Pool, appRole string) error {
	if !roleRE.MatchString(appRole) {
		return fmt.Errorf("ledger: migrate: app role %q: want a lowercase SQL identifier", appRole)
	}
	role := pgx.Identifier{appRole}.Sanitize()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('iru-ledger-migrate'))`); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, postgresSchema); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, appRole).Scan(&exists); err != nil {
			return fmt.Errorf("look up role: %w", err)
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE ROLE `+role+` NOLOGIN`); err != nil {
				return fmt.Errorf("create role: %w", err)
			}
		}
		var schema, seq string
		if err := tx.QueryRow(ctx, `SELECT current_schema(), pg_get_serial_sequence('ledger_checkpoints', 'id')`).Scan(&schema, &seq); err != nil {
			return fmt.Errorf("look up schema: %w", err)
		}
		grants := []string{
			`GRANT USAGE ON SCHEMA ` + pgx.Identifier{schema}.Sanitize() + ` TO ` + role,
			`REVOKE ALL ON ledger_entries, ledger_checkpoints FROM ` + role,
			`GRANT SELECT, INSERT ON ledger_entries, ledger_checkpoints TO ` + role,
			`GRANT USAGE ON SEQUENCE ` + seq + ` TO ` + role,
		}
		for _, g := range grants {
			if _, err := tx.Exec(ctx, g); err != nil {
				return fmt.Errorf("%s: %w", g, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: migrate postgres: %w", err)
	}
	return nil
}

const pgEntryCols = `incident_id, seq, version, at, actor, action, target, params_sha256, outcome, outcome_detail, decision, record, idempotency_key, prev_hash, hash`

// errLostRace means a concurrent append of the same slot won between our
// read and our insert; the caller reads again.
var errLostRace = errors.New("ledger: concurrent append, retry")

// maxRaceRetries bounds how often an append re-reads after losing a race.
const maxRaceRetries = 5

// Insert implements [Store], through the group commit.
func (s *PostgresStore) Insert(ctx context.Context, e Entry) (Entry, error) {
	return s.insertAsync(ctx, e)()
}

// insertAsync queues e in the group commit; the function waits for it.
func (s *PostgresStore) insertAsync(ctx context.Context, e Entry) func() (Entry, error) {
	return s.group.insertAsync(ctx, e)
}

// insertOne appends e alone, in its own transaction.
func (s *PostgresStore) insertOne(ctx context.Context, e Entry) (Entry, error) {
	for attempt := 0; ; attempt++ {
		out, err := s.insertOnce(ctx, e)
		if errors.Is(err, errLostRace) && attempt < maxRaceRetries {
			continue
		}
		return out, err
	}
}

// lookup returns the stored entries among slots, in one query.
func (s *PostgresStore) lookup(ctx context.Context, slots []slot) (map[slot]Entry, error) {
	incidents := make([]string, len(slots))
	seqs := make([]int64, len(slots))
	for i, sl := range slots {
		incidents[i], seqs[i] = sl.incident, sl.seq
	}
	rows, err := s.pool.Query(ctx, `SELECT `+pgEntryCols+` FROM ledger_entries
		WHERE (incident_id, seq) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))`, incidents, seqs)
	if err != nil {
		return nil, fmt.Errorf("look up entries: %w", err)
	}
	defer rows.Close()
	found := make(map[slot]Entry, len(slots))
	err = eachRow(rows, "look up entries", func(r rowScanner) (Entry, error) { return scanEntry(r, false) },
		func(e Entry) error { found[slot{e.Incident, e.Seq}] = e; return nil })
	return found, err
}

// pgInsertOne inserts one entry: pgEntryCols, in order. A taken slot or
// idempotency key fails it.
const pgInsertOne = `INSERT INTO ledger_entries (` + pgEntryCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`

// insertAll stores es with one INSERT statement in its own implicit
// transaction: a taken slot or idempotency key fails the statement, and
// none of es is stored. One entry (a chain appended alone) is a plain
// one-row insert, without encoding and unnesting fifteen arrays.
func (s *PostgresStore) insertAll(ctx context.Context, es []Entry) error {
	if len(es) == 1 {
		e := &es[0]
		dec, err := decisionColumn(e.Decision)
		if err != nil {
			return err
		}
		if _, err := s.pool.Exec(ctx, pgInsertOne, e.Incident, e.Seq, int16(e.Version), e.Time, e.Actor, e.Action, e.Target,
			e.ParamsDigest[:], string(e.Outcome.Status), e.Outcome.Detail, dec, recordColumn(e.Record), e.IdempotencyKey,
			e.PrevHash[:], e.Hash[:]); err != nil {
			return fmt.Errorf("insert %s seq %d: %w", e.Incident, e.Seq, err)
		}
		return nil
	}
	var (
		incidents, actors, actions, targets, statuses, details, keys = make([]string, len(es)), make([]string, len(es)),
			make([]string, len(es)), make([]string, len(es)), make([]string, len(es)), make([]string, len(es)), make([]string, len(es))
		decisions, records    = make([]*string, len(es)), make([]*string, len(es))
		seqs                  = make([]int64, len(es))
		versions              = make([]int16, len(es))
		times                 = make([]time.Time, len(es))
		params, prevs, hashes = make([][]byte, len(es)), make([][]byte, len(es)), make([][]byte, len(es))
	)
	for i := range es {
		e := &es[i]
		dec, err := decisionColumn(e.Decision)
		if err != nil {
			return err
		}
		incidents[i], seqs[i], versions[i], times[i] = e.Incident, e.Seq, int16(e.Version), e.Time
		actors[i], actions[i], targets[i], params[i] = e.Actor, e.Action, e.Target, e.ParamsDigest[:]
		statuses[i], details[i], decisions[i], records[i] = string(e.Outcome.Status), e.Outcome.Detail, dec, recordColumn(e.Record)
		keys[i], prevs[i], hashes[i] = e.IdempotencyKey, e.PrevHash[:], e.Hash[:]
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO ledger_entries (`+pgEntryCols+`)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::smallint[], $4::timestamptz[], $5::text[], $6::text[],
			$7::text[], $8::bytea[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[], $15::bytea[])`,
		incidents, seqs, versions, times, actors, actions, targets, params, statuses, details, decisions, records, keys, prevs, hashes)
	if err != nil {
		return fmt.Errorf("insert %d entries: %w", len(es), err)
	}
	if tag.RowsAffected() != int64(len(es)) {
		return fmt.Errorf("insert %d entries: stored %d", len(es), tag.RowsAffected())
	}
	return nil
}

func (s *PostgresStore) insertOnce(ctx context.Context, e Entry) (Entry, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Entry{}, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	stored, err := pgEntry(ctx, tx, e.Incident, e.Seq)
	switch {
	case err == nil:
		return resolve(stored, e)
	case !errors.Is(err, ErrNotFound):
		return Entry{}, err
	}
	var prev Digest
	if e.Seq > 1 {
		var b []byte
		err := tx.QueryRow(ctx, `SELECT hash FROM ledger_entries WHERE incident_id = $1 AND seq = $2`, e.Incident, e.Seq-1).Scan(&b)
		if errors.Is(err, pgx.ErrNoRows) {
			return Entry{}, fmt.Errorf("%w: entry %d not appended yet", ErrGap, e.Seq-1)
		}
		if err != nil {
			return Entry{}, fmt.Errorf("read prev hash: %w", err)
		}
		if prev, err = digestFrom(b, "prev hash"); err != nil {
			return Entry{}, err
		}
	}
	e = e.seal(prev)
	dec, err := decisionColumn(e.Decision)
	if err != nil {
		return Entry{}, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO ledger_entries (`+pgEntryCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (incident_id, seq) DO NOTHING`,
		e.Incident, e.Seq, e.Version, e.Time, e.Actor, e.Action, e.Target, e.ParamsDigest[:],
		string(e.Outcome.Status), e.Outcome.Detail, dec, recordColumn(e.Record), e.IdempotencyKey, e.PrevHash[:], e.Hash[:])
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			_ = tx.Rollback(ctx)
			return s.afterUniqueViolation(ctx, e)
		}
		return Entry{}, fmt.Errorf("insert: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return Entry{}, errLostRace
	}
	if err := tx.Commit(ctx); err != nil {
		return Entry{}, fmt.Errorf("commit: %w", err)
	}
	return e, nil
}

// afterUniqueViolation explains a violation of the idempotency key.
func (s *PostgresStore) afterUniqueViolation(ctx context.Context, e Entry) (Entry, error) {
	if stored, err := pgEntry(ctx, s.pool, e.Incident, e.Seq); err == nil {
		return resolve(stored, e)
	}
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT seq FROM ledger_entries WHERE incident_id = $1 AND idempotency_key = $2`,
		e.Incident, e.IdempotencyKey).Scan(&seq)
	if err != nil {
		return Entry{}, errLostRace
	}
	return Entry{}, fmt.Errorf("%w: idempotency key %q is already recorded at seq %d", ErrConflict, e.IdempotencyKey, seq)
}

type pgQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func pgEntry(ctx context.Context, q pgQuerier, incident string, seq int64) (Entry, error) {
	row := q.QueryRow(ctx, `SELECT `+pgEntryCols+` FROM ledger_entries WHERE incident_id = $1 AND seq = $2`, incident, seq)
	e, err := scanEntry(row, false)
	if errors.Is(err, pgx.ErrNoRows) {
		return Entry{}, ErrNotFound
	}
	return e, err
}

// rowScanner is what pgx rows and database/sql rows have in common.
type rowScanner interface{ Scan(dest ...any) error }

// rowIter is what eachRow reads of pgx.Rows and *sql.Rows.
type rowIter interface {
	rowScanner
	Next() bool
	Err() error
}

// eachRow scans every row with scan and hands it to fn; what names the
// listing in errors. The caller closes rows.
func eachRow[T any](rows rowIter, what string, scan func(rowScanner) (T, error), fn func(T) error) error {
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return fmt.Errorf("ledger: %s: %w", what, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ledger: %s: %w", what, err)
	}
	return nil
}

// decisionColumn is the stored form of a decision: its JSON, or NULL.
func decisionColumn(d *Decision) (*string, error) {
	if d == nil {
		return nil, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("decision: %w", err)
	}
	s := string(b)
	return &s, nil
}

// recordColumn is the stored form of a record: its JSON text, or NULL for
// an entry without one.
func recordColumn(r []byte) *string {
	if r == nil {
		return nil
	}
	s := string(r)
	return &s
}

// timeCol scans a time column: timestamptz (PostgreSQL) or an integer of
// Unix microseconds (SQLite, micro true).
type timeCol struct {
	t     time.Time
	us    int64
	micro bool
}

func (c *timeCol) dest() any {
	if c.micro {
		return &c.us
	}
	return &c.t
}

func (c *timeCol) value() time.Time {
	if c.micro {
		return time.UnixMicro(c.us).UTC()
	}
	return c.t.UTC()
}

func scanEntry(r rowScanner, micro bool) (Entry, error) {
	var (
		e                  Entry
		at                 = timeCol{micro: micro}
		status             string
		params, prev, hash []byte
		decision, record   *string
	)
	if err := r.Scan(&e.Incident, &e.Seq, &e.Version, at.dest(), &e.Actor, &e.Action, &e.Target, &params,
		&status, &e.Outcome.Detail, &decision, &record, &e.IdempotencyKey, &prev, &hash); err != nil {
		return Entry{}, err
	}
	if record != nil {
		e.Record = []byte(*record)
	}
	if decision != nil {
		e.Decision = new(Decision)
		if err := json.Unmarshal([]byte(*decision), e.Decision); err != nil {
			return Entry{}, fmt.Errorf("decision of seq %d: %w", e.Seq, err)
		}
	}
	e.Time = at.value()
	e.Outcome.Status = Status(status)
	var err error
	if e.ParamsDigest, err = digestFrom(params, "params digest"); err != nil {
		return Entry{}, err
	}
	if e.PrevHash, err = digestFrom(prev, "prev hash"); err != nil {
		return Entry{}, err
	}
	if e.Hash, err = digestFrom(hash, "hash"); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// Entries implements [Store].
func (s *PostgresStore) Entries(ctx context.Context, incident string, fn func(Entry) error) error {
	rows, err := s.pool.Query(ctx, `SELECT `+pgEntryCols+` FROM ledger_entries WHERE incident_id = $1 ORDER BY seq`, incident)
	if err != nil {
		return fmt.Errorf("ledger: entries %s: %w", incident, err)
	}
	defer rows.Close()
	return eachRow(rows, "entries "+incident, func(r rowScanner) (Entry, error) { return scanEntry(r, false) }, fn)
}

// Head implements [Store].
func (s *PostgresStore) Head(ctx context.Context, incident string) (Entry, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+pgEntryCols+` FROM ledger_entries WHERE incident_id = $1 ORDER BY seq DESC LIMIT 1`, incident)
	e, err := scanEntry(row, false)
	if errors.Is(err, pgx.ErrNoRows) {
		return Entry{}, fmt.Errorf("%w: incident %s has no entries", ErrNotFound, incident)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("ledger: head %s: %w", incident, err)
	}
	return e, nil
}

// AddCheckpoint implements [Store].
func (s *PostgresStore) AddCheckpoint(ctx context.Context, c Checkpoint) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO ledger_checkpoints (incident_id, seq, version, head_hash, at, key_id, signature)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		c.Incident, c.Seq, c.Version, c.HeadHash[:], c.Time, c.Signature.KeyID, c.Signature.Sig)
	if err != nil {
		return fmt.Errorf("ledger: add checkpoint %s: %w", c.Incident, err)
	}
	return nil
}

const checkpointCols = `incident_id, seq, version, head_hash, at, key_id, signature`

func scanCheckpoint(r rowScanner, micro bool) (Checkpoint, error) {
	var (
		c    Checkpoint
		head []byte
		at   = timeCol{micro: micro}
	)
	if err := r.Scan(&c.Incident, &c.Seq, &c.Version, &head, at.dest(), &c.Signature.KeyID, &c.Signature.Sig); err != nil {
		return Checkpoint{}, err
	}
	c.Time = at.value()
	var err error
	c.HeadHash, err = digestFrom(head, "checkpoint head hash")
	return c, err
}

// Checkpoints implements [Store].
func (s *PostgresStore) Checkpoints(ctx context.Context, incident string, fn func(Checkpoint) error) error {
	rows, err := s.pool.Query(ctx, `SELECT `+checkpointCols+` FROM ledger_checkpoints WHERE incident_id = $1 ORDER BY id`, incident)
	if err != nil {
		return fmt.Errorf("ledger: checkpoints %s: %w", incident, err)
	}
	defer rows.Close()
	return eachRow(rows, "checkpoints "+incident, func(r rowScanner) (Checkpoint, error) { return scanCheckpoint(r, false) }, fn)
}

// Close implements [Store]; it closes the pool when the store opened it.
func (s *PostgresStore) Close() error {
	if s.owned {
		s.pool.Close()
	}
	return nil
}
