package ledger

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Config selects and configures the ledger store. Load it with
// internal/config (config.Load(&cfg)); it validates itself.
type Config struct {
	Driver     string `env:"IRU_LEDGER_DRIVER" envDefault:"sqlite" doc:"Ledger store: sqlite (embedded, single host) or postgres."`
	DSN        string `env:"IRU_LEDGER_DSN" secret:"true" doc:"PostgreSQL connection string for the postgres driver (postgres://user@host:5432/db?sslmode=verify-full); the user should be a member of IRU_LEDGER_APP_ROLE only."`
	SQLitePath string `env:"IRU_LEDGER_SQLITE_PATH" envDefault:".iru/ledger.db" doc:"Database file of the sqlite driver."`
	AppRole    string `env:"IRU_LEDGER_APP_ROLE" envDefault:"iru_ledger_app" doc:"PostgreSQL role that MigratePostgres grants INSERT and SELECT (never UPDATE or DELETE) on the ledger tables."`
}

// Drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

var roleRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate checks the configuration; errors name the variable.
func (c *Config) Validate() error {
	var p []error
	switch c.Driver {
	case DriverSQLite:
		if strings.TrimSpace(c.SQLitePath) == "" {
			p = append(p, errors.New("IRU_LEDGER_SQLITE_PATH: must not be empty with IRU_LEDGER_DRIVER=sqlite"))
		}
	case DriverPostgres:
		if c.DSN == "" {
			p = append(p, errors.New("IRU_LEDGER_DSN: required with IRU_LEDGER_DRIVER=postgres"))
		}
	default:
		p = append(p, fmt.Errorf("IRU_LEDGER_DRIVER=%q: want sqlite or postgres", c.Driver))
	}
	if !roleRE.MatchString(c.AppRole) {
		p = append(p, fmt.Errorf("IRU_LEDGER_APP_ROLE=%q: want a lowercase SQL identifier", c.AppRole))
	}
	return errors.Join(p...)
}

// Open opens the configured store. It does not migrate a PostgreSQL
// database (run [MigratePostgres] as the schema owner first); an SQLite file
// is created and migrated on open.
func Open(ctx context.Context, c Config) (Store, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if c.Driver == DriverPostgres {
		return OpenPostgres(ctx, c.DSN)
	}
	return OpenSQLite(ctx, c.SQLitePath)
}
