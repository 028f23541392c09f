#!/usr/bin/env bash
# The project's whole test suite, as CI runs it: formatting, vet,
# staticcheck, workflowcheck, then every test with the race detector,
# including the integration tests on a real Temporal dev server, then the
# end-to-end and worker-crash suites once more on the real Temporal cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
scripts/tools.sh
export IRU_TEMPORAL_CLI="$PWD/.tools/bin/temporal"
export IRU_TEMPORAL_SERVER_BIN="$PWD/.tools/bin/temporal-server"
export IRU_TEMPORAL_SQL_TOOL="$PWD/.tools/bin/temporal-sql-tool"
# Every test keeps its state in temporary folders (removed at the end); the
# cluster's databases get random names and are dropped. Every listener the
# tests start is on 127.0.0.1 (test/cluster_test.go checks the cluster's).
TMPDIR=$(mktemp -d -t iru-test-XXXXXX)
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))
if [[ -n "$bad" ]]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
.tools/bin/staticcheck ./...
echo "== workflowcheck"
.tools/bin/workflowcheck ./workflows/...
echo "== go test -race"
go test -race -count=1 -timeout 25m ./...
echo "== the end-to-end, forged-decision, worker-crash and scale-out suites again, on the real Temporal cluster (IRU_TEST_TARGET=cluster)"
IRU_TEST_TARGET=cluster go test -race -count=1 -timeout 20m -run 'EndToEnd|TestForgedDecisions' ./test/
IRU_TEST_TARGET=cluster go test -race -count=1 -timeout 20m -run 'TestWorkerCrashAtActivityBoundaries|TestScaleOut' ./test/resilience/
