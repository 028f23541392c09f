#!/bin/sh
# Creates or upgrades the Temporal schemas in PostgreSQL (idempotent).
set -eu
export SQL_PASSWORD="$(cat /run/secrets/postgres_password)"
for db in temporal temporal_visibility; do
  dir=/etc/temporal/schema/postgresql/v12/temporal/versioned
  [ "$db" = temporal_visibility ] && dir=/etc/temporal/schema/postgresql/v12/visibility/versioned
  temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u iru --db "$db" setup-schema -v 0.0 || true
  temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u iru --db "$db" update-schema -d "$dir"
done
