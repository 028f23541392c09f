package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLiteStore is a [Store] in an SQLite file (pure Go, modernc.org/sqlite),
// the embedded default. Writers take the database write lock at BEGIN
// (BEGIN IMMEDIATE) and wait for it up to the busy timeout, so concurrent
// appends queue instead of failing. The file is in WAL mode with
// synchronous=FULL: a committed entry survives a power loss. Appends are
// group-committed: the entries that arrive while a commit runs are inserted
// together by the next transaction. One batch commits at a time: SQLite has
// one write lock, and a second BEGIN IMMEDIATE would wait for it in SQLite's
// busy handler, which sleeps 1, 2, 5, 10… ms between tries instead of
// waking when the lock is free.
type SQLiteStore struct {
	db    *sql.DB
	group *groupCommitter
}

// sqliteBusyTimeout is how long a writer waits for the write lock.
const sqliteBusyTimeout = 30 * time.Second

// sqliteSchema creates the tables and the triggers that abort UPDATE and
// DELETE. It is idempotent.
const sqliteSchema = `
CREATE TABLE IF NOT EXISTS ledger_entries (
	incident_id     TEXT    NOT NULL,
	seq             INTEGER NOT NULL CHECK (seq >= 1),
	version         INTEGER NOT NULL,
	at           INTEGER NOT NULL,
	actor           TEXT    NOT NULL,
	action          TEXT    NOT NULL,
	target          TEXT    NOT NULL,
	params_sha256   BLOB    NOT NULL CHECK (length(params_sha256) = 32),
	outcome         TEXT    NOT NULL,
	outcome_detail  TEXT    NOT NULL,
	decision        TEXT,
	record          TEXT,
	idempotency_key TEXT    NOT NULL,
	prev_hash       BLOB    NOT NULL CHECK (length(prev_hash) = 32),
	hash            BLOB    NOT NULL CHECK (length(hash) = 32),
	PRIMARY KEY (incident_id, seq),
	UNIQUE (incident_id, idempotency_key)
) STRICT;
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	incident_id TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	version     INTEGER NOT NULL,
	head_hash   BLOB    NOT NULL CHECK (length(head_hash) = 32),
	at       INTEGER NOT NULL,
	key_id      TEXT    NOT NULL,
	signature   BLOB    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS ledger_checkpoints_incident ON ledger_checkpoints (incident_id, id);
CREATE TRIGGER IF NOT EXISTS ledger_entries_no_update BEFORE UPDATE ON ledger_entries
	BEGIN SELECT RAISE(ABORT, 'ledger: UPDATE on ledger_entries is not allowed: the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_entries_no_delete BEFORE DELETE ON ledger_entries
	BEGIN SELECT RAISE(ABORT, 'ledger: DELETE on ledger_entries is not allowed: the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints
	BEGIN SELECT RAISE(ABORT, 'ledger: UPDATE on ledger_checkpoints is not allowed: the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints
	BEGIN SELECT RAISE(ABORT, 'ledger: DELETE on ledger_checkpoints is not allowed: the ledger is append-only'); END;
`

// SQLiteDSN returns the modernc.org/sqlite data source name the store uses
// for the file at path.
func SQLiteDSN(path string) string {
	q := url.Values{}
	q.Set("_txlock", "immediate")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	return "file:" + path + "?" + q.Encode()
}

// OpenSQLite opens (creating when missing) the ledger database at path and
// migrates it.
func OpenSQLite(ctx context.Context, path string) (*SQLiteStore, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("ledger: sqlite path %q: must not contain ? or #", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("ledger: sqlite: %w", err)
		}
	}
	db, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("ledger: sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := migrateSQLite(ctx, db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ledger: sqlite %s: migrate: %w", path, err)
	}
	s := &SQLiteStore{db: db}
	s.group = newGroupCommitter(s)
	return s, nil
}

// migrateSQLite creates the schema, and adds the decision and record
// columns to a table made before they existed (its entries keep NULL).
func migrateSQLite(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, sqliteSchema); err != nil {
		return err
	}
	for _, col := range []string{"decision", "record"} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('ledger_entries') WHERE name = ?`, col).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := db.ExecContext(ctx, `ALTER TABLE ledger_entries ADD COLUMN `+col+` TEXT`); err != nil {
				return err
			}
		}
	}
	return nil
}

const sqliteEntryCols = `incident_id, seq, version, at, actor, action, target, params_sha256, outcome, outcome_detail, decision, record, idempotency_key, prev_hash, hash`

// sqliteInsert inserts one entry: sqliteEntryCols, in order.
const sqliteInsert = `INSERT INTO ledger_entries (` + sqliteEntryCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// sqliteArgs are e's values for sqliteInsert.
func sqliteArgs(e Entry) ([]any, error) {
	dec, err := decisionColumn(e.Decision)
	if err != nil {
		return nil, err
	}
	return []any{e.Incident, e.Seq, e.Version, e.Time.UnixMicro(), e.Actor, e.Action, e.Target, e.ParamsDigest[:],
		string(e.Outcome.Status), e.Outcome.Detail, dec, recordColumn(e.Record), e.IdempotencyKey, e.PrevHash[:], e.Hash[:]}, nil
}

// Insert implements [Store], through the group commit.
func (s *SQLiteStore) Insert(ctx context.Context, e Entry) (Entry, error) {
	return s.insertAsync(ctx, e)()
}

// insertAsync queues e in the group commit; the function waits for it.
func (s *SQLiteStore) insertAsync(ctx context.Context, e Entry) func() (Entry, error) {
	return s.group.insertAsync(ctx, e)
}

// lookup returns the stored entries among slots.
func (s *SQLiteStore) lookup(ctx context.Context, slots []slot) (map[slot]Entry, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("look up entries: %w", err)
	}
	defer func() { _ = conn.Close() }()
	stmt, err := conn.PrepareContext(ctx, `SELECT `+sqliteEntryCols+` FROM ledger_entries WHERE incident_id = ? AND seq = ?`)
	if err != nil {
		return nil, fmt.Errorf("look up entries: %w", err)
	}
	defer func() { _ = stmt.Close() }()
	found := make(map[slot]Entry, len(slots))
	for _, sl := range slots {
		e, err := scanEntry(stmt.QueryRowContext(ctx, sl.incident, sl.seq), true)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("look up %s seq %d: %w", sl.incident, sl.seq, err)
		default:
			found[sl] = e
		}
	}
	return found, nil
}

// insertAll stores es in one transaction: a taken slot or idempotency key
// rolls it back, and none of es is stored.
func (s *SQLiteStore) insertAll(ctx context.Context, es []Entry) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, sqliteInsert)
	if err != nil {
		return fmt.Errorf("prepare insert: %w", err)
	}
	defer func() { _ = stmt.Close() }()
	for _, e := range es {
		args, err := sqliteArgs(e)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert %s seq %d: %w", e.Incident, e.Seq, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// insertOne appends e alone, in its own transaction.
func (s *SQLiteStore) insertOne(ctx context.Context, e Entry) (Entry, error) {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock from here
	if err != nil {
		return Entry{}, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stored, err := scanEntry(tx.QueryRowContext(ctx,
		`SELECT `+sqliteEntryCols+` FROM ledger_entries WHERE incident_id = ? AND seq = ?`, e.Incident, e.Seq), true)
	switch {
	case err == nil:
		return resolve(stored, e)
	case !errors.Is(err, sql.ErrNoRows):
		return Entry{}, fmt.Errorf("read entry: %w", err)
	}
	var prev Digest
	if e.Seq > 1 {
		var b []byte
		err := tx.QueryRowContext(ctx, `SELECT hash FROM ledger_entries WHERE incident_id = ? AND seq = ?`, e.Incident, e.Seq-1).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
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
	args, err := sqliteArgs(e)
	if err != nil {
		return Entry{}, err
	}
	if _, err = tx.ExecContext(ctx, sqliteInsert, args...); err != nil {
		var se *sqlite.Error
		if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
			var seq int64
			if qerr := tx.QueryRowContext(ctx, `SELECT seq FROM ledger_entries WHERE incident_id = ? AND idempotency_key = ?`,
				e.Incident, e.IdempotencyKey).Scan(&seq); qerr == nil {
				return Entry{}, fmt.Errorf("%w: idempotency key %q is already recorded at seq %d", ErrConflict, e.IdempotencyKey, seq)
			}
		}
		return Entry{}, fmt.Errorf("insert: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Entry{}, fmt.Errorf("commit: %w", err)
	}
	return e, nil
}

// Entries implements [Store].
func (s *SQLiteStore) Entries(ctx context.Context, incident string, fn func(Entry) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sqliteEntryCols+` FROM ledger_entries WHERE incident_id = ? ORDER BY seq`, incident)
	if err != nil {
		return fmt.Errorf("ledger: entries %s: %w", incident, err)
	}
	defer func() { _ = rows.Close() }()
	return eachRow(rows, "entries "+incident, func(r rowScanner) (Entry, error) { return scanEntry(r, true) }, fn)
}

// Head implements [Store].
func (s *SQLiteStore) Head(ctx context.Context, incident string) (Entry, error) {
	e, err := scanEntry(s.db.QueryRowContext(ctx,
		`SELECT `+sqliteEntryCols+` FROM ledger_entries WHERE incident_id = ? ORDER BY seq DESC LIMIT 1`, incident), true)
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("%w: incident %s has no entries", ErrNotFound, incident)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("ledger: head %s: %w", incident, err)
	}
	return e, nil
}

// AddCheckpoint implements [Store].
func (s *SQLiteStore) AddCheckpoint(ctx context.Context, c Checkpoint) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO ledger_checkpoints (incident_id, seq, version, head_hash, at, key_id, signature)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.Incident, c.Seq, c.Version, c.HeadHash[:], c.Time.UnixMicro(), c.Signature.KeyID, c.Signature.Sig)
	if err != nil {
		return fmt.Errorf("ledger: add checkpoint %s: %w", c.Incident, err)
	}
	return nil
}

// Checkpoints implements [Store].
func (s *SQLiteStore) Checkpoints(ctx context.Context, incident string, fn func(Checkpoint) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT incident_id, seq, version, head_hash, at, key_id, signature
		FROM ledger_checkpoints WHERE incident_id = ? ORDER BY id`, incident)
	if err != nil {
		return fmt.Errorf("ledger: checkpoints %s: %w", incident, err)
	}
	defer func() { _ = rows.Close() }()
	return eachRow(rows, "checkpoints "+incident, func(r rowScanner) (Checkpoint, error) { return scanCheckpoint(r, true) }, fn)
}

// Close implements [Store].
func (s *SQLiteStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("ledger: sqlite close: %w", err)
	}
	return nil
}
