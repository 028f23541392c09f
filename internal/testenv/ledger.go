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

// PostgresLedger creates a fresh ledger database on the local PostgreSQL
// (IRU_TEST_PG_HOST/PORT/USER, as the cluster's), laid out as compose's
// ledger-migrate job leaves it: a database owned by an owner role that
// migrated it, and an append-only login role that may only SELECT and
// INSERT. It returns the worker's environment for it (IRU_LEDGER_DRIVER,
// IRU_LEDGER_DSN as the append-only role, IRU_LEDGER_APP_ROLE); the
// database and roles are dropped when tb ends.
func PostgresLedger(tb testing.TB) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host := envOr("IRU_TEST_PG_HOST", "127.0.0.1")
	port := envOr("IRU_TEST_PG_PORT", "5432")
	if _, err := strconv.Atoi(port); err != nil {
		tb.Fatalf("testenv: IRU_TEST_PG_PORT=%q: %v", port, err)
	}
	dsn := func(user, db string) string {
		u := url.URL{Scheme: "postgres", User: url.User(user), Host: net.JoinHostPort(host, port), Path: "/" + db,
			RawQuery: "sslmode=disable"}
		return u.String()
	}
	admin, err := pgx.Connect(ctx, dsn(envOr("IRU_TEST_PG_USER", "postgres"), "postgres"))
	if err != nil {
		tb.Fatalf("testenv: ledger database: PostgreSQL at %s:%s: %v", host, port, err)
	}
	defer func() { _ = admin.Close(context.Background()) }()
	var b [5]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	owner, app, db := "iru_test_ledger_owner_"+tag, "iru_test_ledger_app_"+tag, "iru_test_ledger_"+tag
	tb.Cleanup(func() {
		if err := dropLedger(owner, app, db, dsn(envOr("IRU_TEST_PG_USER", "postgres"), "postgres")); err != nil {
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
	pool, err := pgxpool.New(ctx, dsn(owner, db))
	if err != nil {
		tb.Fatalf("testenv: ledger database: connect as its owner: %v", err)
	}
	defer pool.Close()
	if err := ledger.MigratePostgres(ctx, pool, app); err != nil {
		tb.Fatalf("testenv: ledger database: %v", err)
	}
	return []string{"IRU_LEDGER_DRIVER=" + ledger.DriverPostgres, "IRU_LEDGER_DSN=" + dsn(app, db), "IRU_LEDGER_APP_ROLE=" + app}
}

// dropLedger drops a database and the two roles of PostgresLedger.
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
