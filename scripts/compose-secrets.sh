#!/usr/bin/env bash
# Writes the compose stack's secrets into deploy/secrets/ (mode 0600, folders
# 0700) and the passwords the images that cannot read files need into .env,
# keeping any that exist. Every secret is random, except the Proxmox VE token
# secret, which is your token's: set PVE_TOKEN_SECRET (or pass --lab to use
# the lab simulator's documented token with --profile lab).
#
# Certificates (replace them with your PKI's; same file names):
#   postgres_ca, postgres_tls_cert/key   PostgreSQL's server certificate (CN postgres)
#   temporal-pki/                        internal/pki's layout, as starter cluster makes it:
#     ca.pem, frontend.pem (frontend.temporal.iru), internode.pem (internode.temporal.iru),
#     worker.pem, api.pem, operator.pem, ui.pem (client certificates), each with <name>-key.pem
#   api_tls_cert/key                     the API server's (self-signed)
set -euo pipefail
lab=false
[[ "${1:-}" == "--lab" ]] && lab=true
cd "$(dirname "$0")/.."
dir=${IRU_SECRETS_OUT:-deploy/secrets}
pki="$dir/temporal-pki"
mkdir -p "$dir" "$pki"
chmod 0700 "$dir" "$pki"
umask 077
rand() { head -c 24 /dev/urandom | base64 | tr -d '/+=' ; }
put() { [[ -s "$dir/$1" ]] || printf '%s' "$2" > "$dir/$1"; }

# PostgreSQL: the superuser, and one role per user (deploy/postgres/initdb.d).
put postgres_password "$(rand)"
put pg_temporal_password "$(rand)"
put pg_keycloak_password "$(rand)"
put pg_ledger_owner_password "$(rand)"
put pg_ledger_app_password "$(rand)"
tls="sslmode=verify-full&sslrootcert=/run/secrets/postgres_ca"
put ledger_owner_dsn "postgres://iru_ledger_owner:$(cat "$dir/pg_ledger_owner_password")@postgres:5432/iru_ledger?$tls"
put ledger_app_dsn "postgres://iru_ledger_app:$(cat "$dir/pg_ledger_app_password")@postgres:5432/iru_ledger?$tls"
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
# Keycloak clients, imported into the realm through IRU_KC_*_SECRET (.env).
put keycloak_worker_secret "$(rand)"
put keycloak_api_secret "$(rand)"
put keycloak_operator_secret "$(rand)"
# MinIO: its root user, and the platform's S3 user (deploy/minio/setup.sh).
put minio_root_password "$(rand)"
put minio_evidence_secret "$(rand)"

# ca DIR NAME: a self-signed ECDSA P-256 CA in DIR/NAME.pem, DIR/NAME-key.pem.
ca() {
  [[ -s "$1/$2.pem" ]] && return
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=IRU Responder $2" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$1/$2-key.pem" -out "$1/$2.pem" 2>/dev/null
}
# leaf CA_CERT CA_KEY OUT_CERT OUT_KEY CN EKU [SAN]: a 90-day leaf signed by the CA.
leaf() {
  [[ -s "$3" ]] && return
  local ext
  ext=$(mktemp)
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' "$6" > "$ext"
  [[ -n "${7:-}" ]] && printf 'subjectAltName=%s\n' "$7" >> "$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$5" \
    -keyout "$4" 2>/dev/null |
    openssl x509 -req -CA "$1" -CAkey "$2" -CAcreateserial -days 90 -extfile "$ext" -out "$3" 2>/dev/null
  rm -f "$ext"
}

# PostgreSQL's server certificate, from its own CA.
ca "$dir" postgres-ca
cp "$dir/postgres-ca.pem" "$dir/postgres_ca"
leaf "$dir/postgres-ca.pem" "$dir/postgres-ca-key.pem" "$dir/postgres_tls_cert" "$dir/postgres_tls_key" \
  postgres serverAuth "DNS:postgres,DNS:localhost,IP:127.0.0.1"

# Temporal: internal/pki's layout.
ca "$pki" ca
leaf "$pki/ca.pem" "$pki/ca-key.pem" "$pki/frontend.pem" "$pki/frontend-key.pem" frontend.temporal.iru serverAuth \
  "DNS:frontend.temporal.iru,DNS:temporal,DNS:localhost,IP:127.0.0.1"
leaf "$pki/ca.pem" "$pki/ca-key.pem" "$pki/internode.pem" "$pki/internode-key.pem" internode.temporal.iru serverAuth,clientAuth \
  "DNS:internode.temporal.iru,DNS:temporal,DNS:localhost,IP:127.0.0.1,IP:172.30.0.10"
for name in worker api operator ui; do
  leaf "$pki/ca.pem" "$pki/ca-key.pem" "$pki/$name.pem" "$pki/$name-key.pem" "$name.iru" clientAuth
done

if [[ ! -s "$dir/api_tls_cert" ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 \
    -subj "/CN=iru-api" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/api_tls_key" -out "$dir/api_tls_cert" 2>/dev/null
fi
chmod 0600 "$dir"/* "$pki"/* 2>/dev/null || true
chmod 0700 "$pki"

# .env: what Temporal's server and SQL tool, Keycloak and the Web UI read
# from the environment only. Each value goes only to the services that use it.
envfile=${IRU_ENV_OUT:-.env}
touch "$envfile"
chmod 0600 "$envfile"
env_put() { grep -q "^$1=" "$envfile" || printf '%s=%s\n' "$1" "$2" >> "$envfile"; }
env_put TEMPORAL_DB_PASSWORD "$(cat "$dir/pg_temporal_password")"
env_put KEYCLOAK_DB_PASSWORD "$(cat "$dir/pg_keycloak_password")"
env_put KEYCLOAK_ADMIN_PASSWORD "$(rand)"
env_put IRU_KC_WORKER_SECRET "$(cat "$dir/keycloak_worker_secret")"
env_put IRU_KC_API_SECRET "$(cat "$dir/keycloak_api_secret")"
env_put IRU_KC_OPERATOR_SECRET "$(cat "$dir/keycloak_operator_secret")"
env_put IRU_KC_TEMPORAL_UI_SECRET "$(rand)"
echo "secrets in $dir, environment in $envfile"
