package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iru-responder/responder/internal/ledger"
)

// LedgerDatabase is a fresh, empty ledger database on the local
// PostgreSQL (localPG), laid out as compose's PostgreSQL leaves it for the
// ledger-migrate job: a database owned by an owner role, and a login role
// for the worker and the API server that the migration grants SELECT and
// INSERT only.
type LedgerDatabase struct {
	// OwnerDSN connects as the database's owner (the migration's user).
	OwnerDSN string
	// AppDSN connects as AppRole, the append-only login role.
	AppDSN  string
	AppRole string
}

// NewLedgerDatabase creates a LedgerDatabase (not migrated); the database
// and both roles are dropped when tb ends.
func NewLedgerDatabase(tb testing.TB) LedgerDatabase {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg, err := localPG()
	if err != nil {
		tb.Fatalf("testenv: ledger database: %v", err)
	}
	dsn := func(user, db string) string {
		u := url.URL{Scheme: "postgres", User: url.User(user), Host: net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)),
			Path: "/" + db, RawQuery: "sslmode=disable"}
		return u.String()
	}
	adminDSN := dsn(pg.User, "postgres")
	admin, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		tb.Fatalf("testenv: ledger database: PostgreSQL at %s:%d (the test needs the local server): %v", pg.Host, pg.Port, err)
	}
	defer func() { _ = admin.Close(context.Background()) }()
	var b [5]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	owner, app, db := "iru_test_ledger_owner_"+tag, "iru_test_ledger_app_"+tag, "iru_test_ledger_"+tag
	tb.Cleanup(func() {
		if err := dropLedger(owner, app, db, adminDSN); err != nil {
			tb.Logf("testenv: drop ledger database %s: %v", db, err)
		}
	})
	for _, q := range []string{
		"CREATE ROLE " + owner + " LOGIN", "CREATE ROLE " + app + " LOGIN",
		"CREATE DATABASE " + db + " OWNER " + owner,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			tb.Fatalf("testenv: ledger database: %s: %v", q, err)
		}
	}
	return LedgerDatabase{OwnerDSN: dsn(owner, db), AppDSN: dsn(app, db), AppRole: app}
}

// PostgresLedger creates a NewLedgerDatabase, migrates it as its owner
// (ledger.MigratePostgres, as compose's ledger-migrate job does) and
// returns the worker's environment for it: IRU_LEDGER_DRIVER, IRU_LEDGER_DSN
// as the append-only role, IRU_LEDGER_APP_ROLE.
func PostgresLedger(tb testing.TB) []string {
	tb.Helper()
	ldb := NewLedgerDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, ldb.OwnerDSN)
	if err != nil {
		tb.Fatalf("testenv: ledger database: connect as its owner: %v", err)
	}
	defer pool.Close()
	if err := ledger.MigratePostgres(ctx, pool, ldb.AppRole); err != nil {
		tb.Fatalf("testenv: ledger database: %v", err)
	}
	return []string{"IRU_LEDGER_DRIVER=" + ledger.DriverPostgres, "IRU_LEDGER_DSN=" + ldb.AppDSN, "IRU_LEDGER_APP_ROLE=" + ldb.AppRole}
}

// dropLedger drops a database and the two roles of NewLedgerDatabase.
func dropLedger(owner, app, db, adminDSN string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return err
	}
	defer func() { _ = admin.Close(context.Background()) }()
	for _, q := range []string{"DROP DATABASE IF EXISTS " + db + " WITH (FORCE)", "DROP ROLE IF EXISTS " + app, "DROP ROLE IF EXISTS " + owner} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}
