//go:build localstack

package localstack

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/lab"
)

// StartLab starts the simulators and writes lab.env into stateDir. It
// returns the lab and the path of lab.env.
func StartLab(ctx context.Context, stateDir string, cfg config.Lab) (*lab.Lab, string, error) {
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
	return fsutil.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}
