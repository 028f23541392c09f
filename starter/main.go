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
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/apiclient"
	"github.com/iru-responder/responder/internal/gctune"
)

func main() {
	gctune.Apply()
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
	newPlaybookCmd,
	newDrillsCmd, newDrillCmd,
	newControlsCmd,
	newPreflightCmd,
	newCodecServerCmd,
	newDevServerCmd,
	newConfigCmd,
	newVersionCmd,
}

// Exit statuses of the responder commands.
const (
	// exitRefused: the incident workflow's validator (or the incident's
	// state) refused the request: wrong role, four-eyes, not pending,
	// already decided, closed.
	exitRefused = 3
	// exitAuth: not logged in, the session expired, or the token lacks a
	// role the route needs.
	exitAuth = 4
)

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var e *exitError
	switch {
	case errors.As(err, &e):
		return e.code
	case errors.Is(err, apiclient.ErrAuth):
		return exitAuth
	case errors.Is(err, apiclient.ErrRefused):
		return exitRefused
	}
	return 1
}
