#!/usr/bin/env bash
# The project's whole test suite, as CI runs it: formatting, vet,
# staticcheck, errcheck, workflowcheck (`scripts/test.sh lint` stops
# there), then every test with the race detector: the unit tests (a plain
# `go test ./...` runs them: quick, they need nothing), then the packages
# with tests tagged integration (the Temporal dev server, the real cluster,
# the lab), with the tag, so each test runs once; then the end-to-end and
# worker-crash suites once more on the real Temporal cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh
export IRU_TEMPORAL_CLI="$PWD/.tools/bin/temporal"
export IRU_TEMPORAL_SERVER_BIN="$PWD/.tools/bin/temporal-server"
export IRU_TEMPORAL_SQL_TOOL="$PWD/.tools/bin/temporal-sql-tool"

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))
if [[ -n "$bad" ]]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi
# Every build variant: production, the local stack's starter, the tests
# tagged integration.
for tags in "" localstack integration localstack,integration; do
  echo "== go vet (tags: ${tags:-none})"
  go vet -tags "$tags" ./...
  echo "== staticcheck (tags: ${tags:-none})"
  .tools/bin/staticcheck -tags "$tags" ./...
  echo "== errcheck (tags: ${tags:-none})"
  .tools/bin/errcheck -ignoretests -exclude scripts/errcheck.exclude -tags "$tags" ./...
done
echo "== workflowcheck"
.tools/bin/workflowcheck ./workflows/...
if [[ "${1:-}" == lint ]]; then exit 0; fi

scripts/services.sh
# Every test keeps its state in temporary folders (removed at the end); the
# cluster's databases get random names and are dropped. Every listener the
# tests start is on 127.0.0.1 (test/cluster_test.go checks the cluster's).
TMPDIR=$(mktemp -d -t iru-test-XXXXXX)
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

# The packages whose test files differ with the integration tag.
list() { go list -tags "$1" -f '{{.ImportPath}} {{.TestGoFiles}} {{.XTestGoFiles}}' ./...; }
integration=$(comm -13 <(list "" | sort) <(list integration | sort) | cut -d' ' -f1)
unit=$(comm -23 <(go list ./... | sort) <(echo "$integration" | sort))
echo "== go test -race: unit tests"
# shellcheck disable=SC2086
go test -race -count=1 -timeout 25m $unit
echo "== go test -race -tags integration,localstack: the packages with integration tests (and the starter's local stack)"
# shellcheck disable=SC2086
go test -race -count=1 -timeout 25m -tags integration,localstack $integration
echo "== the tests that measure what production builds hold, without the race detector (its instrumentation enlarges every frame)"
go test -count=1 -timeout 5m -tags integration -run 'TestWaitingIncidentStack' ./test/
echo "== the end-to-end, forged-decision, worker-crash and scale-out suites and the benchmarks' smoke test again, on the real Temporal cluster (IRU_TEST_TARGET=cluster)"
IRU_TEST_TARGET=cluster go test -tags integration,localstack -race -count=1 -timeout 20m -run 'EndToEnd|TestForgedDecisions' ./test/
IRU_TEST_TARGET=cluster go test -tags integration,localstack -race -count=1 -timeout 20m -run 'TestWorkerCrashAtActivityBoundaries|TestScaleOut' ./test/resilience/
IRU_TEST_TARGET=cluster go test -tags integration -race -count=1 -timeout 10m -run 'TestBenchmarksSmoke' ./test/bench/
