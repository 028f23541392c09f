package ledger_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/ledger/ledgertest"
)

// sqliteTamperStore is the store plus a raw connection to its file, as an
// attacker with disk access would have.
type sqliteTamperStore struct {
	*ledger.SQLiteStore
	raw *sql.DB
}

func newSQLiteStore(t testing.TB) *sqliteTamperStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := ledger.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	raw, err := sql.Open("sqlite", ledger.SQLiteDSN(path))
	if err != nil {
		t.Fatalf("open raw sqlite: %v", err)
	}
	t.Cleanup(func() {
		_ = raw.Close()
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &sqliteTamperStore{SQLiteStore: s, raw: raw}
}

// tamper drops table's append-only triggers, runs fn, and puts the triggers
// back, in one transaction.
func (s *sqliteTamperStore) tamper(t testing.TB, table string, fn func(tx *sql.Tx) error) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("tamper: begin: %v", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?`, table)
	if err != nil {
		t.Fatalf("tamper: triggers: %v", err)
	}
	triggers := map[string]string{}
	for rows.Next() {
		var name, q string
		if err := rows.Scan(&name, &q); err != nil {
			t.Fatalf("tamper: triggers: %v", err)
		}
		triggers[name] = q
	}
	_ = rows.Close()
	for name := range triggers {
		if _, err := tx.ExecContext(ctx, `DROP TRIGGER `+name); err != nil {
			t.Fatalf("tamper: drop trigger: %v", err)
		}
	}
	if err := fn(tx); err != nil {
		t.Fatalf("tamper %s: %v", table, err)
	}
	for _, q := range triggers {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatalf("tamper: recreate trigger: %v", err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("tamper: commit: %v", err)
	}
}

// flip changes one byte of a text or blob value, or adds one to an integer.
func flip(v any) (any, error) {
	switch x := v.(type) {
	case int64:
		return x + 1, nil
	case string:
		b := []byte(x)
		b[0] ^= 1
		return string(b), nil
	case []byte:
		b := append([]byte(nil), x...)
		b[len(b)/2] ^= 1
		return b, nil
	}
	return nil, fmt.Errorf("cannot flip %T", v)
}

func exactlyOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("changed %d rows, want 1", n)
	}
	return nil
}

func (s *sqliteTamperStore) flipWhere(t testing.TB, table, column, where string, args ...any) {
	s.tamper(t, table, func(tx *sql.Tx) error {
		var v any
		if err := tx.QueryRow(`SELECT `+column+` FROM `+table+` WHERE `+where, args...).Scan(&v); err != nil {
			return err
		}
		nv, err := flip(v)
		if err != nil {
			return err
		}
		return exactlyOne(tx.Exec(`UPDATE `+table+` SET `+column+` = ? WHERE `+where, append([]any{nv}, args...)...))
	})
}

func (s *sqliteTamperStore) CorruptEntry(t testing.TB, incident string, seq int64, column string) {
	s.flipWhere(t, "ledger_entries", column, `incident_id = ? AND seq = ?`, incident, seq)
}

func (s *sqliteTamperStore) ReplaceEntry(t testing.TB, e ledger.Entry) {
	s.tamper(t, "ledger_entries", func(tx *sql.Tx) error {
		return exactlyOne(tx.Exec(`UPDATE ledger_entries SET version = ?, at = ?, actor = ?, action = ?, target = ?,
			params_sha256 = ?, outcome = ?, outcome_detail = ?, idempotency_key = ?, prev_hash = ?, hash = ?, record = ?
			WHERE incident_id = ? AND seq = ?`,
			e.Version, e.Time.UnixMicro(), e.Actor, e.Action, e.Target, e.ParamsDigest[:], string(e.Outcome.Status),
			e.Outcome.Detail, e.IdempotencyKey, e.PrevHash[:], e.Hash[:], recordText(e.Record), e.Incident, e.Seq))
	})
}

// recordText is a record as the record column holds it (NULL: none).
func recordText(r []byte) *string {
	if r == nil {
		return nil
	}
	s := string(r)
	return &s
}

func (s *sqliteTamperStore) EditRecord(t testing.TB, incident string, seq int64, old, new string) {
	s.tamper(t, "ledger_entries", func(tx *sql.Tx) error {
		return exactlyOne(tx.Exec(`UPDATE ledger_entries SET record = replace(record, ?, ?) WHERE incident_id = ? AND seq = ?`, old, new, incident, seq))
	})
}

func (s *sqliteTamperStore) DeleteEntry(t testing.TB, incident string, seq int64) {
	s.tamper(t, "ledger_entries", func(tx *sql.Tx) error {
		return exactlyOne(tx.Exec(`DELETE FROM ledger_entries WHERE incident_id = ? AND seq = ?`, incident, seq))
	})
}

func (s *sqliteTamperStore) CorruptCheckpoint(t testing.TB, incident string, column string) {
	s.flipWhere(t, "ledger_checkpoints", column,
		`id = (SELECT max(id) FROM ledger_checkpoints WHERE incident_id = ?)`, incident)
}

func TestSQLiteConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Store { return newSQLiteStore(t) })
}

// TestSQLiteAppendOnly proves the triggers abort UPDATE and DELETE, even on
// a connection that bypasses the store.
func TestSQLiteAppendOnly(t *testing.T) {
	ctx := context.Background()
	s := newSQLiteStore(t)
	l := ledger.New(s, nil)
	keys := ledgertest.NewKeys(t, "k")
	if _, err := l.Append(ctx, ledgertest.Request("inc-ro", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(ctx, "inc-ro", keys); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE ledger_entries SET actor = 'keycloak:iru/mallory'`,
		`DELETE FROM ledger_entries`,
		`UPDATE ledger_checkpoints SET seq = 0`,
		`DELETE FROM ledger_checkpoints`,
	} {
		t.Run(q, func(t *testing.T) {
			_, err := s.raw.ExecContext(ctx, q)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Fatalf("%s: err = %v, want append-only error", q, err)
			}
		})
	}
	rep, err := l.Verify(ctx, "inc-ro", keys)
	if err != nil || rep.Entries != 1 || rep.Checkpoints != 1 {
		t.Fatalf("rows changed: %+v, %v", rep, err)
	}
}

func TestOpenSQLiteReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "ledger.db")
	s, err := ledger.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.New(s, nil).Append(ctx, ledgertest.Request("inc", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = ledger.OpenSQLite(ctx, path) // migration is idempotent, data kept
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if _, err := ledger.New(s, nil).Append(ctx, ledgertest.Request("inc", 2)); err != nil {
		t.Fatalf("append after reopen: %v", err)
	}
}

// TestSQLiteMigratesDecisionColumn: a ledger file made before entries had
// decision and record columns keeps its entries, which still verify, and
// takes entries with decisions and records after it is opened.
func TestSQLiteMigratesDecisionColumn(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	old, err := sql.Open("sqlite", ledger.SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`CREATE TABLE ledger_entries (
	incident_id TEXT NOT NULL, seq INTEGER NOT NULL CHECK (seq >= 1), version INTEGER NOT NULL, at INTEGER NOT NULL,
	actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
	params_sha256 BLOB NOT NULL CHECK (length(params_sha256) = 32), outcome TEXT NOT NULL, outcome_detail TEXT NOT NULL,
	idempotency_key TEXT NOT NULL, prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32), hash BLOB NOT NULL CHECK (length(hash) = 32),
	PRIMARY KEY (incident_id, seq), UNIQUE (incident_id, idempotency_key)) STRICT`); err != nil {
		t.Fatal(err)
	}
	// One entry as the old code stored it: its hash has no decision fields.
	e := ledger.Entry{Version: ledger.HashVersion, Incident: "inc-old", Seq: 1, Time: time.UnixMicro(0).UTC(), Actor: "system:workflow", Action: "incident_opened",
		Outcome: ledger.Outcome{Status: ledger.StatusOK}, IdempotencyKey: "inc-old/1"}
	e.Hash = e.ComputeHash()
	if _, err := old.Exec(`INSERT INTO ledger_entries VALUES (?, 1, ?, 0, ?, ?, '', ?, 'ok', '', ?, ?, ?)`,
		e.Incident, e.Version, e.Actor, e.Action, e.ParamsDigest[:], e.IdempotencyKey, e.PrevHash[:], e.Hash[:]); err != nil {
		t.Fatal(err)
	}
	_ = old.Close()

	s, err := ledger.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("open the old file: %v", err)
	}
	defer func() { _ = s.Close() }()
	l := ledger.New(s, nil)
	r := ledgertest.Request("inc-old", 2)
	r.Decision = &ledger.Decision{Approvals: 1, Quorum: 1}
	if _, err := l.Append(ctx, r); err != nil {
		t.Fatalf("append with a decision after migration: %v", err)
	}
	rep, err := l.Verify(ctx, "inc-old", nil)
	if err != nil || rep.Entries != 2 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	var got []ledger.Entry
	if err := s.Entries(ctx, "inc-old", func(e ledger.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Decision != nil || got[1].Decision == nil || got[1].Decision.Quorum != 1 ||
		got[0].Record != nil || !strings.Contains(string(got[1].Record), "suspicious egress") {
		t.Fatalf("entries = %+v", got)
	}
}

// testBatchInsert stores entries with a decision and a record through the
// batch path of the group commit and reads them back: every column of an
// entry goes into the one statement, and the chain verifies.
func testBatchInsert(t *testing.T, s ledger.Store) {
	t.Helper()
	ctx := context.Background()
	var rs []ledger.AppendRequest
	for seq := int64(1); seq <= 3; seq++ {
		r := ledgertest.Request("inc-batch", seq)
		r.Time = time.Date(2026, 12, 5, 10, 0, int(seq), 0, time.UTC)
		if seq == 2 {
			r.Decision = &ledger.Decision{Approvals: 1, Quorum: 2, StatementKeyID: "dk-1", StatementSig: []byte{1}, StatementPayload: []byte(`{}`)}
		}
		rs = append(rs, r)
	}
	if err := ledger.InsertBatch(ctx, s, rs); err != nil {
		t.Fatalf("batch insert: %v", err)
	}
	var got []ledger.Entry
	if err := s.Entries(ctx, "inc-batch", func(e ledger.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[1].Decision == nil || got[1].Decision.Quorum != 2 || got[0].Decision != nil {
		t.Fatalf("stored %+v", got)
	}
	for _, e := range got {
		want, _ := ledger.CanonicalJSON(rs[e.Seq-1].Params)
		if string(e.Record) != string(want) {
			t.Errorf("seq %d: record %s, want %s", e.Seq, e.Record, want)
		}
	}
	if rep, err := ledger.New(s, nil).Verify(ctx, "inc-batch", nil); err != nil || rep.Entries != 3 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}

	// A batch of one entry (a chain appended alone) takes a one-row
	// statement on PostgreSQL: every column too, and a taken slot fails it.
	one := []ledger.AppendRequest{rs[1]}
	one[0].Incident, one[0].Seq, one[0].IdempotencyKey = "inc-one", 1, "inc-one/step-1"
	if err := ledger.InsertBatch(ctx, s, one); err != nil {
		t.Fatalf("one-entry batch: %v", err)
	}
	if err := ledger.InsertBatch(ctx, s, one); err == nil {
		t.Fatal("one-entry batch into a taken slot: stored, want an error")
	}
	got = got[:0]
	if err := s.Entries(ctx, "inc-one", func(e ledger.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	want, _ := ledger.CanonicalJSON(one[0].Params)
	if len(got) != 1 || got[0].Decision == nil || got[0].Decision.Quorum != 2 || string(got[0].Record) != string(want) ||
		!got[0].Time.Equal(one[0].Time) || got[0].Target != one[0].Target {
		t.Fatalf("one-entry batch stored %+v", got)
	}
	if rep, err := ledger.New(s, nil).Verify(ctx, "inc-one", nil); err != nil || rep.Entries != 1 {
		t.Fatalf("Verify inc-one = %+v, %v", rep, err)
	}
}

func TestSQLiteBatchInsert(t *testing.T) { testBatchInsert(t, newSQLiteStore(t).SQLiteStore) }
