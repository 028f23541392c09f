// Command starter is the IRU Responder operator CLI and API server.
//
//	starter serve     the API server
//	starter selftest  run the end-to-end self-test workflow (alias: trigger)
//	starter version   print the build version
//
// The local stack's commands (up, cluster, lab), which link the lab's
// simulators and the demo scenario, are only in builds with the localstack
// tag (make up); see localstack.go.
//
// Configuration comes from environment variables; see the README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starter:", err)
		os.Exit(exitCode(err))
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "starter",
		Short:         "IRU Responder: operator CLI and API server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range commands {
		root.AddCommand(c())
	}
	for _, c := range localStackCommands {
		root.AddCommand(c())
	}
	return root
}

// commands are the subcommands of every build, in the order help lists
// them. Adding a command is adding its constructor here.
var commands = []func() *cobra.Command{
	newServeCmd,
	newSelfTestCmd,
	newIncidentsCmd, newIncidentCmd,
	newAuditCmd,
	newEvidenceCmd,
	newLedgerCmd,
	newLoginCmd,
	newKeysCmd,
	newIntakeCmd,
	newRulesCmd,
	newDrillsCmd, newDrillCmd,
	newPreflightCmd,
	newCodecServerCmd,
	newDevServerCmd,
	newConfigCmd,
	newVersionCmd,
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}
