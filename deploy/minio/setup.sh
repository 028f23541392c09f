#!/bin/sh
# One-shot setup of the evidence store (docker compose service minio-setup):
# the bucket with Object Lock, and the platform's S3 user with the policy of
# deploy/minio/evidence-policy.json (no s3:BypassGovernanceRetention, no
# bucket or lock configuration). Idempotent: it runs at every `up`.
set -eu
root_pw=$(cat /run/secrets/minio_root_password)
user_secret=$(cat /run/secrets/minio_evidence_secret)
until mc alias set iru http://minio:9000 iru-root "$root_pw" >/dev/null 2>&1; do sleep 2; done
mc mb --ignore-existing --with-lock iru/iru-evidence
mc admin policy create iru iru-evidence /etc/iru/evidence-policy.json
mc admin user add iru iru-evidence "$user_secret"
mc admin policy attach iru iru-evidence --user iru-evidence >/dev/null 2>&1 || true
mc admin policy entities iru --user iru-evidence
