#!/bin/sh
# Creates the iru namespace and registers the platform's search attributes
# (the names declared in workflows/names.go). Idempotent.
set -eu
addr=temporal:7233
until temporal operator cluster health --address "$addr" >/dev/null 2>&1; do sleep 2; done
temporal operator namespace describe --address "$addr" -n iru >/dev/null 2>&1 ||
  temporal operator namespace create --address "$addr" -n iru --retention 90d
for sa in IruSeverity=Keyword IruPhase=Keyword IruPlaybook=Keyword IruAsset=Keyword IruDrill=Bool; do
  temporal operator search-attribute create --address "$addr" -n iru --name "${sa%%=*}" --type "${sa#*=}" >/dev/null 2>&1 || true
done
