//go:build integration

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/testenv"
)

// TestLedgerMigrate runs `starter ledger migrate` as a database's owner, as compose's
// ledger-migrate job does, and checks what the append-only login role (the worker's and the
// API server's) may do afterwards: read and append, never change or delete.
func TestLedgerMigrate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ldb := testenv.NewLedgerDatabase(t)
	t.Setenv(config.EnvFileVar, "")
	t.Setenv("IRU_LEDGER_DRIVER", "postgres")
	t.Setenv("IRU_LEDGER_DSN", ldb.OwnerDSN)
	t.Setenv("IRU_LEDGER_APP_ROLE", ldb.AppRole)
	for run := 1; run <= 2; run++ { // idempotent
		root := newRoot()
		var out bytes.Buffer
		root.SetArgs([]string{"ledger", "migrate"})
		root.SetOut(&out)
		root.SetErr(&out)
		if err := root.ExecuteContext(ctx); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out.String())
		}
	}

	conn, err := pgx.Connect(ctx, ldb.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM ledger_entries").Scan(&n); err != nil {
		t.Fatalf("the app role cannot read the ledger: %v", err)
	}
	for _, q := range []string{
		"UPDATE ledger_entries SET actor = 'mallory'",
		"DELETE FROM ledger_entries",
		"TRUNCATE ledger_entries",
		"ALTER TABLE ledger_entries DISABLE TRIGGER ALL",
		"DROP TABLE ledger_checkpoints",
	} {
		if _, err := conn.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "must be owner") && !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("as the app role, %q: %v, want permission denied", q, err)
		}
	}
	var ins, upd bool
	if err := conn.QueryRow(ctx, "SELECT has_table_privilege('ledger_entries', 'INSERT'), has_table_privilege('ledger_entries', 'UPDATE')").Scan(&ins, &upd); err != nil || !ins || upd {
		t.Errorf("app role INSERT=%v UPDATE=%v (%v), want true/false", ins, upd, err)
	}

	t.Run("refuses the sqlite driver", func(t *testing.T) {
		t.Setenv("IRU_LEDGER_DRIVER", "sqlite")
		root := newRoot()
		root.SetArgs([]string{"ledger", "migrate"})
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		if err := root.ExecuteContext(ctx); exitCode(err) != 2 {
			t.Fatalf("exit %d (%v), want 2", exitCode(err), err)
		}
	})
}
