//go:build localstack

package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/localstack"
)

// clusterConfig configures `starter cluster`: `starter up`'s settings and
// the cluster's.
type clusterConfig struct {
	Up      localstack.Config
	Cluster config.Cluster
}

// Validate implements config.Validator.
func (c *clusterConfig) Validate() error {
	return errors.Join(c.Up.Validate(), c.Cluster.Validate(c.Up.Lab.Enabled))
}

func newClusterCmd() *cobra.Command {
	var exitWhenDone, noDemo bool
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Start the local stack on a real Temporal cluster (PostgreSQL, mTLS, Keycloak-fed authorization) instead of the dev server",
		Long: `cluster starts what up starts, with the production topology of Temporal in
place of the dev server: the pinned Temporal server on the local PostgreSQL
(persistence and visibility databases created and migrated with the pinned
SQL tool, idempotently), TLS with required client certificates on the
frontend and between the services, and authorization by Temporal itself
from the Keycloak realm's keys and the tokens' permissions claim
(deploy/temporal/config/iru.yaml, the file docker-compose.yml uses).

Certificates come from IRU_CLUSTER_PKI_DIR, or from a local CA created in
IRU_STATE_DIR/cluster/pki on first start (keys 0600). The namespace and the
search attributes are registered with the operator's token (iru-operator).
The worker and the API server present their own client certificates and
client-credentials tokens (iru-worker, iru-api; renewed before expiry).
There is no Web UI in this mode.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg clusterConfig
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			return localstack.Run(cmd.Context(), cfg.Up, &cfg.Cluster, stackHooks(), cmd.OutOrStdout(), localstack.RunOptions{ExitWhenDone: exitWhenDone, NoDemo: noDemo})
		},
	}
	cmd.Flags().BoolVar(&exitWhenDone, "exit-when-done", false, "stop the stack after the scenario's report; exit non-zero if a step failed")
	cmd.Flags().BoolVar(&noDemo, "no-demo", false, "do not play the scenario (a compromised container) against the lab")
	return cmd
}
