// Package test holds the integration, end-to-end and resilience suites.
// They run against a real Temporal dev server started from the pinned CLI
// (see internal/testenv) and, where needed, the lab simulators.
package test

import (
	"testing"

	"github.com/iru-responder/responder/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
