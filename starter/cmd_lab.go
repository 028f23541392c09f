package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/lab"
)

func init() { commands = append(commands, newLabCmd) }

func newLabCmd() *cobra.Command {
	return &cobra.Command{
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
			l, envFile, err := startLab(cmd.Context(), cfg.StateDir, cfg.Lab)
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
}

// startLab starts the simulators and writes lab.env into stateDir.
func startLab(ctx context.Context, stateDir string, cfg config.Lab) (*lab.Lab, string, error) {
	l, err := lab.Start(ctx, lab.Options{
		PVEAddr:         cfg.PVEAddr,
		KeycloakAddr:    cfg.KeycloakAddr,
		PVETaskDuration: cfg.TaskDuration,
		StateDir:        stateDir,
	})
	if err != nil {
		return nil, "", err
	}
	envFile := filepath.Join(stateDir, "lab.env")
	if err := writeEnvFile(envFile, l.Env()); err != nil {
		l.Close()
		return nil, "", err
	}
	return l, envFile, nil
}

func writeEnvFile(path string, lines []string) error {
	return writeFile0600(path, strings.Join(lines, "\n")+"\n")
}

func writeFile0600(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
