#!/usr/bin/env bash
# Installs the OS packages the tests need (SoftHSM2 for the PKCS#11 tests,
# Chromium for the console's browser tests)
# and starts the services they use (PostgreSQL on 127.0.0.1:5432) when they
# are not there yet. Safe to run again: it only acts on what is missing.
set -euo pipefail

need_apt=()
command -v softhsm2-util >/dev/null 2>&1 || need_apt+=(softhsm2)
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "services: missing ${need_apt[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "services: apt-get install ${need_apt[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# PostgreSQL: trust auth on 127.0.0.1:5432 with a database named test.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "services: starting PostgreSQL" >&2
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "services: PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null 2>&1 || \
    su postgres -c "psql -c 'create database test'" >/dev/null
fi
