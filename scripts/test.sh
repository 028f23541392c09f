#!/usr/bin/env bash
# The project's whole test suite, as CI runs it: formatting, vet,
# staticcheck, workflowcheck, then every test with the race detector,
# including the integration tests on a real Temporal dev server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
scripts/tools.sh
export IRU_TEMPORAL_CLI="$PWD/.tools/bin/temporal"

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
