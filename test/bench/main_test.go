// Package bench holds the platform benchmarks: time to contain through
// the real intake and workflow against a sequential baseline, and an
// alert storm through the real intake into the real incident workflow.
// Each runs on both Temporal targets of internal/testenv, the package's
// dev server and the real cluster (sub-benchmarks dev and cluster; the
// smoke test runs on IRU_TEST_TARGET), against lab simulators started here (a 100-container PVE inventory and
// Keycloak accounts to match). Figures are in docs/PERFORMANCE.md.
//
//	go test -run '^$' -bench . -benchtime 1x ./test/bench/
//
// Without -bench only TestBenchmarksSmoke runs: each benchmark's body once
// at a tiny size, so CI exercises the code and its checks.
package bench

import (
	"testing"

	"github.com/iru-responder/responder/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
