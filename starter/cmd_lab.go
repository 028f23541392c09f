//go:build localstack

package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/localstack"
)

func newLabCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run the lab: simulated Proxmox VE and Keycloak with fixed lab credentials",
		Long: `lab starts the Proxmox VE and Keycloak simulators on their usual ports, prints
their URLs and lab credentials, and writes the platform's configuration for them
to $IRU_STATE_DIR/lab.env (load it with IRU_ENV_FILE). Lab credentials are fixed
and public: never use them for anything but the lab.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg config.LabOnly
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			l, envFile, err := localstack.StartLab(cmd.Context(), cfg.StateDir, cfg.Lab)
			if err != nil {
				return err
			}
			defer l.Close()
			fmt.Fprint(cmd.OutOrStdout(), l.Credentials())
			fmt.Fprintf(cmd.OutOrStdout(), "Platform configuration for the lab: %s (IRU_ENV_FILE=%s)\nPress Ctrl-C to stop.\n", envFile, envFile)
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "totp USER",
		Short: "Print a lab user's current one-time code (from the documented lab TOTP seed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			code := keycloak.TOTPCode(args[0], time.Now())
			if code == "" {
				return &exitError{code: 2, err: fmt.Errorf("lab: %s has no TOTP seed (only %s)", args[0], strings.Join(labTOTPUsers(), ", "))}
			}
			fmt.Fprintln(cmd.OutOrStdout(), code)
			return nil
		},
	})
	return cmd
}

func labTOTPUsers() []string {
	var out []string
	for u := range keycloak.LabTOTPSeeds {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}
