//go:build integration

package ledger_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/ledger/ledgertest"
)

// defaultTestDSN is the local test database used when IRU_LEDGER_DSN is unset.
const defaultTestDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// testDSN returns IRU_LEDGER_DSN (loaded the way the binaries load it) or
// the local test database.
func testDSN(t testing.TB) string {
	t.Helper()
	var cfg ledger.Config
	if err := config.LoadFrom(&cfg, os.Environ()); err != nil {
		t.Fatalf("load ledger config: %v", err)
	}
	if cfg.DSN != "" {
		return cfg.DSN
	}
	return defaultTestDSN
}

// pgEnv is one test's private schema and app role.
type pgEnv struct {
	owner  *pgxpool.Pool // schema owner (the migration's user)
	app    *pgxpool.Pool // connections that SET ROLE to the app role
	schema string
	role   string
}

// newPGEnv creates a fresh schema and app role, migrates it, and drops both
// when the test ends. An unreachable server fails the test.
func newPGEnv(t testing.TB) *pgEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := testDSN(t)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("PostgreSQL is unreachable at %s (set IRU_LEDGER_DSN to a reachable server; the ledger tests need one): %v",
			redactDSN(dsn), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	env := &pgEnv{schema: "iru_test_" + suffix, role: "iru_test_" + suffix + "_app"}
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+env.schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if env.app != nil {
			env.app.Close()
		}
		if env.owner != nil {
			env.owner.Close()
		}
		for _, q := range []string{
			`DROP SCHEMA IF EXISTS ` + env.schema + ` CASCADE`,
			`DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '` + env.role + `') THEN
				EXECUTE 'DROP OWNED BY ` + env.role + `'; EXECUTE 'DROP ROLE ` + env.role + `'; END IF; END $$`,
		} {
			if _, err := admin.Exec(ctx, q); err != nil {
				t.Errorf("cleanup %q: %v", q, err)
			}
		}
		_ = admin.Close(ctx)
	})
	ownerCfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse dsn: %v", err)
	}
	ownerCfg.ConnConfig.RuntimeParams["search_path"] = env.schema
	appCfg := ownerCfg.Copy()
	appCfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `SET ROLE `+env.role)
		return err
	}
	if env.owner, err = pgxpool.NewWithConfig(ctx, ownerCfg); err != nil {
		t.Fatalf("owner pool: %v", err)
	}
	if err := ledger.MigratePostgres(ctx, env.owner, env.role); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if err := ledger.MigratePostgres(ctx, env.owner, env.role); err != nil {
		t.Fatalf("migrate again (must be idempotent): %v", err)
	}
	if env.app, err = pgxpool.NewWithConfig(ctx, appCfg); err != nil {
		t.Fatalf("app pool: %v", err)
	}
	return env
}

func redactDSN(dsn string) string {
	if c, err := pgconn.ParseConfig(dsn); err == nil && c.Password != "" {
		return strings.ReplaceAll(dsn, c.Password, "***")
	}
	return dsn
}

// pgTamperStore is the store as the responder runs it (app role), plus
// owner access that disables the trigger to tamper.
type pgTamperStore struct {
	*ledger.PostgresStore
	env *pgEnv
}

func newPGStore(t testing.TB) *pgTamperStore {
	env := newPGEnv(t)
	return &pgTamperStore{PostgresStore: ledger.NewPostgresStore(env.app), env: env}
}

// tamper runs q as the owner with the append-only trigger of table disabled
// inside the same transaction, and requires it to change one row.
func (s *pgTamperStore) tamper(t testing.TB, table, trigger, q string, args ...any) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, s.env.owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `ALTER TABLE `+table+` DISABLE TRIGGER `+trigger); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errors.New("tamper changed " + tag.String())
		}
		_, err = tx.Exec(ctx, `ALTER TABLE `+table+` ENABLE TRIGGER `+trigger)
		return err
	})
	if err != nil {
		t.Fatalf("tamper %s: %v", q, err)
	}
}

func pgFlip(column string) string {
	switch column {
	case "at":
		return `at + interval '1 microsecond'`
	case "version", "seq":
		return column + ` + 1`
	case "params_sha256", "prev_hash", "hash", "head_hash", "signature":
		return `set_byte(` + column + `, octet_length(` + column + `) / 2, get_byte(` + column + `, octet_length(` + column + `) / 2) # 1)`
	default:
		return `overlay(` + column + ` placing chr(ascii(` + column + `) # 1) from 1 for 1)`
	}
}

func (s *pgTamperStore) CorruptEntry(t testing.TB, incident string, seq int64, column string) {
	s.tamper(t, "ledger_entries", "ledger_entries_append_only",
		`UPDATE ledger_entries SET `+column+` = `+pgFlip(column)+` WHERE incident_id = $1 AND seq = $2`, incident, seq)
}

func (s *pgTamperStore) ReplaceEntry(t testing.TB, e ledger.Entry) {
	s.tamper(t, "ledger_entries", "ledger_entries_append_only",
		`UPDATE ledger_entries SET version = $3, at = $4, actor = $5, action = $6, target = $7, params_sha256 = $8,
			outcome = $9, outcome_detail = $10, idempotency_key = $11, prev_hash = $12, hash = $13, record = $14
		WHERE incident_id = $1 AND seq = $2`,
		e.Incident, e.Seq, e.Version, e.Time, e.Actor, e.Action, e.Target, e.ParamsDigest[:],
		string(e.Outcome.Status), e.Outcome.Detail, e.IdempotencyKey, e.PrevHash[:], e.Hash[:], recordText(e.Record))
}

func (s *pgTamperStore) EditRecord(t testing.TB, incident string, seq int64, old, new string) {
	s.tamper(t, "ledger_entries", "ledger_entries_append_only",
		`UPDATE ledger_entries SET record = replace(record, $3, $4) WHERE incident_id = $1 AND seq = $2`, incident, seq, old, new)
}

func (s *pgTamperStore) DeleteEntry(t testing.TB, incident string, seq int64) {
	s.tamper(t, "ledger_entries", "ledger_entries_append_only",
		`DELETE FROM ledger_entries WHERE incident_id = $1 AND seq = $2`, incident, seq)
}

func (s *pgTamperStore) CorruptCheckpoint(t testing.TB, incident string, column string) {
	s.tamper(t, "ledger_checkpoints", "ledger_checkpoints_append_only",
		`UPDATE ledger_checkpoints SET `+column+` = `+pgFlip(column)+`
		WHERE id = (SELECT max(id) FROM ledger_checkpoints WHERE incident_id = $1)`, incident)
}

func TestPostgresConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Store { return newPGStore(t) })
}

// TestPostgresAppendOnly proves that stored rows cannot be changed or
// removed, neither by the app role (no privilege) nor by the owner (the
// trigger raises).
func TestPostgresAppendOnly(t *testing.T) {
	ctx := context.Background()
	s := newPGStore(t)
	l := ledger.New(s, nil)
	if _, err := l.Append(ctx, ledgertest.Request("inc-ro", 1)); err != nil {
		t.Fatal(err)
	}
	keys := ledgertest.NewKeys(t, "k")
	if _, err := l.Checkpoint(ctx, "inc-ro", keys); err != nil {
		t.Fatal(err)
	}
	statements := []string{
		`UPDATE ledger_entries SET actor = 'keycloak:iru/mallory'`,
		`DELETE FROM ledger_entries`,
		`TRUNCATE ledger_entries`,
		`UPDATE ledger_checkpoints SET seq = 0`,
		`DELETE FROM ledger_checkpoints`,
		`TRUNCATE ledger_checkpoints`,
	}
	as := []struct {
		name    string
		pool    *pgxpool.Pool
		wantMsg string
	}{
		{"app role", s.env.app, "permission denied"},
		{"owner", s.env.owner, "append-only"},
	}
	for _, who := range as {
		for _, q := range statements {
			t.Run(who.name+"/"+q, func(t *testing.T) {
				_, err := who.pool.Exec(ctx, q)
				if err == nil || !strings.Contains(err.Error(), who.wantMsg) {
					t.Fatalf("%s as %s: err = %v, want %q", q, who.name, err, who.wantMsg)
				}
			})
		}
	}
	rep, err := l.Verify(ctx, "inc-ro", keys)
	if err != nil || rep.Entries != 1 || rep.Checkpoints != 1 {
		t.Fatalf("rows changed: %+v, %v", rep, err)
	}
	// The app role cannot switch the trigger off either.
	if _, err := s.env.app.Exec(ctx, `ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only`); err == nil {
		t.Fatal("app role disabled the trigger")
	}
}

func TestOpenPostgresUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ledger.OpenPostgres(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if err == nil || !strings.Contains(err.Error(), "ledger: postgres: connect") {
		t.Fatalf("OpenPostgres on a closed port: err = %v", err)
	}
}

// TestPostgresMigratesDecisionColumn: a schema made before entries had
// decision and record columns keeps its entries, which still verify, and
// takes entries with decisions and records after the migration runs again.
func TestPostgresMigratesDecisionColumn(t *testing.T) {
	ctx := context.Background()
	env := newPGEnv(t)
	if _, err := env.owner.Exec(ctx, `ALTER TABLE ledger_entries DROP COLUMN decision, DROP COLUMN record`); err != nil {
		t.Fatalf("make the old table: %v", err)
	}
	e := ledger.Entry{Version: ledger.HashVersion, Incident: "inc-old", Seq: 1, Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Actor: "system:workflow", Action: "incident_opened", Outcome: ledger.Outcome{Status: ledger.StatusOK}, IdempotencyKey: "inc-old/1"}
	e.Hash = e.ComputeHash()
	if _, err := env.owner.Exec(ctx, `INSERT INTO ledger_entries (incident_id, seq, version, at, actor, action, target, params_sha256,
		outcome, outcome_detail, idempotency_key, prev_hash, hash) VALUES ($1, 1, $2, $3, $4, $5, '', $6, 'ok', '', $7, $8, $9)`,
		e.Incident, e.Version, e.Time, e.Actor, e.Action, e.ParamsDigest[:], e.IdempotencyKey, e.PrevHash[:], e.Hash[:]); err != nil {
		t.Fatalf("old entry: %v", err)
	}
	if err := ledger.MigratePostgres(ctx, env.owner, env.role); err != nil {
		t.Fatalf("migrate the old table: %v", err)
	}
	l := ledger.New(ledger.NewPostgresStore(env.app), nil)
	r := ledgertest.Request("inc-old", 2)
	r.Decision = &ledger.Decision{Approvals: 1, Quorum: 2, StatementKeyID: "dk-1", StatementSig: []byte{9}, StatementPayload: []byte(`{}`)}
	if _, err := l.Append(ctx, r); err != nil {
		t.Fatalf("append with a decision after migration: %v", err)
	}
	if rep, err := l.Verify(ctx, "inc-old", nil); err != nil || rep.Entries != 2 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	var got []ledger.Entry
	if err := l.Store().Entries(ctx, "inc-old", func(e ledger.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Decision != nil || got[1].Decision == nil || got[1].Decision.Quorum != 2 || got[1].Decision.StatementKeyID != "dk-1" ||
		got[0].Record != nil || !strings.Contains(string(got[1].Record), "suspicious egress") {
		t.Fatalf("entries = %+v", got)
	}
}

func TestPostgresBatchInsert(t *testing.T) {
	testBatchInsert(t, ledger.NewPostgresStore(newPGEnv(t).app))
}
