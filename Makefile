# IRU Responder. The two commands of the README:
#   make up     the whole platform on this machine, on embedded defaults
#   make test   every check and test, as CI runs them
.PHONY: up test services tools build dev-server lint bench bench-profile clean

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/iru-responder/responder/internal/version.Version=$(VERSION)

up: services tools build
	bin/starter up $(UP_FLAGS)

test:
	scripts/test.sh

# OS packages (SoftHSM2, PostgreSQL) and the local PostgreSQL, when missing.
services:
	scripts/services.sh

tools:
	scripts/tools.sh

build:
	go build -ldflags "$(LDFLAGS)" -o bin/ ./worker ./starter

# The dev server alone (SQLite state in .iru/, Web UI, search attributes).
dev-server: tools build
	bin/starter devserver

lint: tools
	gofmt -l $$(git ls-files '*.go')
	go vet ./...
	.tools/bin/staticcheck ./...
	.tools/bin/workflowcheck ./workflows/...

# Every benchmark several times, summarised by benchstat; rewrites the tables
# of docs/PERFORMANCE.md (see scripts/bench.sh for the knobs).
bench: tools
	scripts/bench.sh

# CPU and allocation profiles of each platform benchmark, in .bench/profiles.
bench-profile: tools
	PROFILE=1 scripts/bench.sh

clean:
	rm -rf bin .iru .bench
