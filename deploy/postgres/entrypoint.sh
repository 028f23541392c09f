#!/bin/sh
# Starts PostgreSQL with TLS: the server refuses a key file it does not own
# or that others can read, and a compose secret keeps the host file's owner
# and mode, so the key is copied to the private run folder first.
set -eu
install -m 0600 /run/secrets/postgres_tls_key /var/run/postgresql/server.key
exec docker-entrypoint.sh "$@"
