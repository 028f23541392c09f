// Package resilience is the resilience suite of IRU Responder: real
// infrastructure (the Temporal dev server from the pinned CLI, the lab
// simulators, SoftHSM, the worker binary) under failure.
//
//   - TestWorkerCrashAtActivityBoundaries kills the worker binary with
//     SIGKILL while incidents are in containment, investigation and
//     recovery, and checks that every incident still resolves with one of
//     each effect and an unbroken ledger.
//   - TestTemporalRestartDuringAlertStorm restarts a dedicated dev server
//     while detectors post alerts: the intake keeps answering 202 and every
//     accepted alert reaches its incident.
//   - TestLabFaults runs incidents against a Proxmox VE that fails, stalls
//     and fails tasks: each incident ends in a final state that says why.
//   - TestSecurity walks every route without credentials, runs a full
//     incident through the intake and the responder API, and checks logs
//     and the Temporal history for secrets and plaintext.
//
// The tests use SoftHSM tokens through SOFTHSM2_CONF and so never run in
// parallel (see package hsmtest).
package resilience

import (
	"testing"

	"github.com/iru-responder/responder/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
