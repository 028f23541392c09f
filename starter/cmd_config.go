package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/apiclient"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/internal/workerhost"
)

// configSections lists every configuration struct of the binaries, by
// section; `starter config` prints them and a test keeps the README's
// reference equal to that output.
func configSections() []struct {
	Title string
	Cfgs  []any
} {
	return []struct {
		Title string
		Cfgs  []any
	}{
		{"Temporal, logging, worker, API server", []any{&config.Worker{}, &config.Server{}}},
		{"State shared by several API servers (PostgreSQL)", []any{&sharedstate.Config{}}},
		{"Worker: stores, Proxmox VE, Keycloak, probes, notifications, playbooks", []any{&workerhost.Config{}}},
		{"API server: TLS, detector intake, responder API, access log", []any{&serveConfig{}}},
		{"Responder CLI", []any{&apiclient.Config{}}},
		{"Routing rules check (starter rules test)", []any{&rulesConfig{}}},
		{"Local stack (`starter up`, `starter devserver`) and lab", []any{&config.Up{}}},
		{"Temporal cluster (`starter cluster`)", []any{&config.Cluster{}}},
		{"HSM keys", []any{&keys.Config{}}},
		{"Payload codec and codec server", []any{&codec.Config{}}},
		{"Audit ledger", []any{&ledger.Config{}}},
		{"Evidence locker", []any{&evidence.Config{}}},
	}
}

// configReference renders the configuration reference as Markdown.
func configReference() (string, error) {
	var b strings.Builder
	seen := map[string]bool{}
	for _, sec := range configSections() {
		var fields []config.Field
		for _, c := range sec.Cfgs {
			fs, err := config.Describe(c)
			if err != nil {
				return "", err
			}
			for _, f := range fs {
				if !seen[f.Name] {
					seen[f.Name] = true
					fields = append(fields, f)
				}
			}
		}
		fmt.Fprintf(&b, "### %s\n\n%s\n", sec.Title, config.MarkdownTable(fields))
	}
	fmt.Fprintf(&b, "Any variable may also come from the env file named by `%s`; variables set in the environment win.\n", config.EnvFileVar)
	return b.String(), nil
}

func newConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the configuration reference (every variable, default and meaning) as Markdown",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ref, err := configReference()
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), ref)
			return err
		},
	}
}
