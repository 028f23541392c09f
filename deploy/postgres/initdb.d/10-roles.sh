#!/bin/sh
# Roles and databases of the stack, created once on an empty volume (the
# postgres image runs this as the superuser over the local socket). One role
# per user, each owning or reaching only its own database:
#   temporal          owns temporal and temporal_visibility
#   keycloak          owns keycloak
#   iru_ledger_owner  owns iru_ledger; the ledger-migrate job creates the
#                     schema as this role
#   iru_ledger_app    logs in for the worker and the API server; the
#                     migration grants it INSERT and SELECT only
# Passwords come from the secret files; none is in this file or the image.
set -eu
pw() { sed "s/'/''/g" "/run/secrets/$1"; }
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE temporal LOGIN PASSWORD '$(pw pg_temporal_password)';
CREATE ROLE keycloak LOGIN PASSWORD '$(pw pg_keycloak_password)';
CREATE ROLE iru_ledger_owner LOGIN PASSWORD '$(pw pg_ledger_owner_password)';
CREATE ROLE iru_ledger_app LOGIN PASSWORD '$(pw pg_ledger_app_password)';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
CREATE DATABASE keycloak OWNER keycloak;
CREATE DATABASE iru_ledger OWNER iru_ledger_owner;
REVOKE ALL ON DATABASE temporal, temporal_visibility, keycloak, iru_ledger, postgres FROM PUBLIC;
GRANT CONNECT ON DATABASE iru_ledger TO iru_ledger_app;
SQL
