#!/bin/sh
# Creates the namespace and registers the platform's search attributes
# (the names declared in workflows/names.go), as the operator: the client
# certificate of the operator (mTLS, required by the frontend) and a
# client-credentials token of iru-operator (permission temporal-system:admin
# in its `permissions` claim; Temporal authorizes every call). Idempotent.
# `starter cluster` does the same in Go (internal/cluster).
#
# Environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE [default],
#   TEMPORAL_TLS_CA, TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY,
#   TEMPORAL_TLS_SERVER_NAME [frontend.temporal.iru]  (read by the temporal CLI itself),
#   KEYCLOAK_TOKEN_URL (the realm's /protocol/openid-connect/token),
#   OPERATOR_CLIENT_SECRET_FILE (iru-operator's secret, a mounted secret).
set -eu
: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_TLS_CA:?}" "${TEMPORAL_TLS_CERT:?}" "${TEMPORAL_TLS_KEY:?}"
: "${KEYCLOAK_TOKEN_URL:?}" "${OPERATOR_CLIENT_SECRET_FILE:?}"
export TEMPORAL_TLS_SERVER_NAME="${TEMPORAL_TLS_SERVER_NAME:-frontend.temporal.iru}"
ns="${TEMPORAL_NAMESPACE:-default}"
token() {
  curl -fsS -d grant_type=client_credentials -d client_id=iru-operator \
    --data-urlencode "client_secret@$OPERATOR_CLIENT_SECRET_FILE" "$KEYCLOAK_TOKEN_URL" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}
until TEMPORAL_API_KEY="$(token)" && [ -n "$TEMPORAL_API_KEY" ] && export TEMPORAL_API_KEY &&
  temporal operator cluster health >/dev/null 2>&1; do sleep 2; done
temporal operator namespace describe -n "$ns" >/dev/null 2>&1 ||
  temporal operator namespace create -n "$ns" --retention 90d
for sa in IruSeverity=Keyword IruPhase=Keyword IruPlaybook=Keyword IruAsset=Keyword IruDrill=Bool; do
  temporal operator search-attribute create -n "$ns" --name "${sa%%=*}" --type "${sa#*=}" >/dev/null 2>&1 || true
done
