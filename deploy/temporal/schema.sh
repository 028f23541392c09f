#!/bin/sh
# Creates or upgrades the Temporal schemas in PostgreSQL (idempotent), from
# the schema embedded in the SQL tool itself (so always the tool's, and the
# server's, version). `starter cluster` does the same (internal/cluster).
set -eu
export SQL_PASSWORD="$(cat /run/secrets/postgres_password)"
for db in temporal temporal_visibility; do
  schema=postgresql/v12/temporal
  [ "$db" = temporal_visibility ] && schema=postgresql/v12/visibility
  temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u iru --db "$db" create-database
  temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u iru --db "$db" setup-schema -v 0.0
  temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u iru --db "$db" update-schema --schema-name "$schema"
done
