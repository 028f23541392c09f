#!/usr/bin/env bash
# Writes the compose stack's secrets into deploy/secrets/ (mode 0600) and
# .env, keeping any that exist. Every secret is random, except the Proxmox
# VE token secret, which is your token's: set PVE_TOKEN_SECRET (or pass
# --lab to use the lab simulator's documented token with --profile lab).
# Replace the self-signed TLS certificate with a real one.
set -euo pipefail
lab=false
[[ "${1:-}" == "--lab" ]] && lab=true
cd "$(dirname "$0")/.."
dir=${IRU_SECRETS_OUT:-deploy/secrets}
mkdir -p "$dir"
umask 077
rand() { head -c 24 /dev/urandom | base64 | tr -d '/+=' ; }
put() { [[ -s "$dir/$1" ]] || printf '%s' "$2" > "$dir/$1"; }

put postgres_password "$(rand)"
put ledger_dsn "postgres://iru:$(cat "$dir/postgres_password")@postgres:5432/iru?sslmode=disable"
put hsm_pin "$(rand)"
put hsm_so_pin "$(rand)"
if $lab; then
  put pve_token_secret "3f6c0d3e-8d0a-4b8e-9a52-6f1d2c7b9e10" # the lab simulator's documented token
elif [[ -n "${PVE_TOKEN_SECRET:-}" ]]; then
  put pve_token_secret "$PVE_TOKEN_SECRET"
elif [[ ! -s "$dir/pve_token_secret" ]]; then
  echo "compose-secrets: set PVE_TOKEN_SECRET to your Proxmox VE API token's secret (or --lab for the simulator)" >&2
  exit 2
fi
put keycloak_worker_secret "$(rand)" # imported into the realm through IRU_KC_WORKER_SECRET
put keycloak_operator_secret "$(rand)" # imported through IRU_KC_OPERATOR_SECRET (cluster setup client)
if [[ ! -s "$dir/api_tls_cert" ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 \
    -subj "/CN=iru-api" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/api_tls_key" -out "$dir/api_tls_cert" 2>/dev/null
fi
envfile=${IRU_ENV_OUT:-.env}
if [[ ! -s "$envfile" ]]; then
  printf 'POSTGRES_PASSWORD=%s\nKEYCLOAK_ADMIN_PASSWORD=%s\nIRU_KC_WORKER_SECRET=%s\nIRU_KC_API_SECRET=%s\n' \
    "$(cat "$dir/postgres_password")" "$(rand)" "$(cat "$dir/keycloak_worker_secret")" "$(rand)" > "$envfile"
fi
grep -q '^IRU_KC_OPERATOR_SECRET=' "$envfile" ||
  printf 'IRU_KC_OPERATOR_SECRET=%s\n' "$(cat "$dir/keycloak_operator_secret")" >> "$envfile"
echo "secrets in $dir, environment in $envfile"
