# IRU Responder. The two commands of the README:
#   make up     the whole platform on this machine, on embedded defaults
#   make test   every check and test, as CI runs them
.PHONY: up test services tools build build-local dev-server lint bench bench-profile clean

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/iru-responder/responder/internal/version.Version=$(VERSION)

up: services tools build-local
	bin/starter up $(UP_FLAGS)

test:
	scripts/test.sh

# OS packages (SoftHSM2, PostgreSQL) and the local PostgreSQL, when missing.
services:
	scripts/services.sh

tools:
	scripts/tools.sh

# The production binaries: no lab simulator, no demo scenario.
build:
	go build -ldflags "$(LDFLAGS)" -o bin/ ./worker ./starter

# The binaries of the local stack: the starter with the localstack tag
# (starter up, starter cluster, starter lab).
build-local:
	go build -tags localstack -ldflags "$(LDFLAGS)" -o bin/ ./worker ./starter

# The dev server alone (SQLite state in .iru/, Web UI, search attributes).
dev-server: tools build
	bin/starter devserver

# The static checks of make test, without the tests.
lint: tools
	scripts/test.sh lint

# Every benchmark several times, summarised by benchstat; rewrites the tables
# of docs/PERFORMANCE.md (see scripts/bench.sh for the knobs).
bench: tools
	scripts/bench.sh

# CPU and allocation profiles of each platform benchmark, in .bench/profiles.
bench-profile: tools
	PROFILE=1 scripts/bench.sh

clean:
	rm -rf bin .iru .bench
