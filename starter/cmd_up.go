//go:build localstack

package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/drills"
	"github.com/iru-responder/responder/internal/localstack"
)

func newUpCmd() *cobra.Command {
	var exitWhenDone, noDemo bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the local stack (HSM token, codec server, dev server, lab, worker, API server), run the self-test, print where to look",
		Long: `up starts everything IRU Responder needs on this machine, on embedded defaults:
a SoftHSM2 token holding the keys, the codec server, the pinned Temporal dev
server (SQLite state, Web UI wired to the codec server), the lab (simulated
Proxmox VE and Keycloak), the worker and the API server. It runs the
self-test, prints the addresses and keeps the stack up until Ctrl-C. With
--exit-when-done it stops after the self-test and exits non-zero if anything
failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg localstack.Config
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			return localstack.Run(cmd.Context(), cfg, nil, stackHooks(), cmd.OutOrStdout(), localstack.RunOptions{ExitWhenDone: exitWhenDone, NoDemo: noDemo})
		},
	}
	cmd.Flags().BoolVar(&exitWhenDone, "exit-when-done", false, "stop the stack after the scenario's report; exit non-zero if a step failed")
	cmd.Flags().BoolVar(&noDemo, "no-demo", false, "do not play the scenario (a compromised container) against the lab")
	return cmd
}

// stackHooks are the starter's pieces the local stack runs: the API server
// as `starter serve` runs it, the self-test as `starter selftest` runs it,
// and the drill schedules as `starter drills sync` makes them.
func stackHooks() localstack.Hooks {
	return localstack.Hooks{
		APIServer: func(env []string) (localstack.APIServer, error) {
			var cfg serveConfig
			if err := config.LoadFrom(&cfg, env); err != nil {
				return localstack.APIServer{}, err
			}
			return localstack.APIServer{
				Temporal: cfg.Temporal,
				Run: func(ctx context.Context, prot *codec.Protection, log *slog.Logger, ready chan<- string) error {
					return serve(ctx, cfg, prot, log, ready)
				},
			}, nil
		},
		SelfTest: func(ctx context.Context, c client.Client, out io.Writer) (bool, error) {
			res, err := runSelfTest(ctx, c)
			if err != nil {
				return false, err
			}
			printSelfTest(out, res)
			return res.Result.Healthy, nil
		},
		SyncDrills: func(ctx context.Context, c client.Client, f *drills.File) (int, error) {
			changes, err := syncDrills(ctx, c, f, syncOptions{}, io.Discard)
			return len(changes), err
		},
	}
}
