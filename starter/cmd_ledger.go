package main

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/ledger"
)

func newLedgerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Administer the audit ledger's PostgreSQL schema",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "migrate",
		Short: "Create or update the ledger schema in PostgreSQL, as its owner (idempotent)",
		Long: `migrate connects with IRU_LEDGER_DSN, which must name the owner of the
ledger's database (compose: the ledger-migrate job, with the owner's DSN),
creates or updates the append-only ledger tables and their trigger, and
grants IRU_LEDGER_APP_ROLE (the role the worker and the API server log in
with) SELECT and INSERT only. Safe to run again; concurrent runs serialise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg ledger.Config
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			if cfg.Driver != ledger.DriverPostgres {
				return &exitError{code: 2, err: errors.New("ledger migrate: IRU_LEDGER_DRIVER must be postgres (the sqlite ledger migrates itself)")}
			}
			pool, err := pgxpool.New(cmd.Context(), cfg.DSN)
			if err != nil {
				return fmt.Errorf("ledger migrate: connect: %w", err)
			}
			defer pool.Close()
			if err := ledger.MigratePostgres(cmd.Context(), pool, cfg.AppRole); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ledger schema ready; %s may SELECT and INSERT only\n", cfg.AppRole)
			return nil
		},
	})
	return cmd
}
