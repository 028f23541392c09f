package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/devserver"
	"github.com/iru-responder/responder/workflows"
)

func newDevServerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "devserver",
		Short: "Run the pinned Temporal dev server alone (SQLite state, Web UI, search attributes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg config.Up
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			dev, err := devserver.Start(cmd.Context(), devserver.Options{
				Binary:           cfg.TemporalCLI,
				DBFile:           filepath.Join(cfg.StateDir, "temporal.db"),
				Port:             cfg.FrontendPort,
				UI:               true,
				UIPort:           cfg.UIPort,
				SearchAttributes: workflows.SearchAttributeFlags(),
				Log:              os.Stderr,
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Temporal frontend %s (namespace %s)\nTemporal Web UI   %s\nState             %s\nPress Ctrl-C to stop.\n",
				dev.Address(), dev.Namespace(), dev.UIURL(), filepath.Join(cfg.StateDir, "temporal.db"))
			<-cmd.Context().Done()
			return dev.Stop()
		},
	}
}
