// Package sharedtest gives tests a shared-state store of their own: a
// fresh schema in the local PostgreSQL (IRU_TEST_PG_DSN, default
// postgres://postgres@127.0.0.1:5432/test), dropped when the test ends, so
// that tests of different packages running at once never see each other's
// rows. An unreachable server fails the test; it never skips.
package sharedtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iru-responder/responder/internal/sharedstate"
)

// DefaultDSN is the local test server.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Config returns the configuration of a new, unique schema (created by the
// first [sharedstate.Open]) and drops the schema when the test ends.
func Config(tb testing.TB) sharedstate.Config {
	tb.Helper()
	dsn := os.Getenv("IRU_TEST_PG_DSN")
	if dsn == "" {
		dsn = DefaultDSN
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "iru_test_" + hex.EncodeToString(b)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("sharedtest: drop schema %s: %v", schema, err)
			return
		}
		defer func() { _ = conn.Close(ctx) }()
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("sharedtest: drop schema %s: %v", schema, err)
		}
	})
	return sharedstate.Config{DSN: dsn, Schema: schema, Poll: 2 * time.Second}
}

// Open opens a store on a schema of the test's own ([Config]); it is
// closed when the test ends (before the schema is dropped).
func Open(tb testing.TB, cfg sharedstate.Config) *sharedstate.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sharedstate.Open(ctx, cfg, nil)
	if err != nil {
		tb.Fatalf("sharedtest: PostgreSQL unreachable or refused the schema (the test needs the local server): %v", err)
	}
	tb.Cleanup(st.Close)
	return st
}
