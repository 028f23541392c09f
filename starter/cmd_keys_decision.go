package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/keys"
)

// decisionKeyConfig is the configuration of commands that only need the HSM.
type decisionKeyConfig struct {
	Keys keys.Config
}

// Validate implements config.Validator.
func (c *decisionKeyConfig) Validate() error { return c.Keys.Validate() }

func newKeysDecisionKeyCmd() *cobra.Command {
	var notBefore, notAfter string
	cmd := &cobra.Command{
		Use:   "decision-key",
		Short: "Print the HSM's decision public key as PEM, for the workers' IRU_DECISION_KEYS_FILE",
		Long: `decision-key prints the public half of the API server's decision key (it signs
every responder decision; the private half never leaves the HSM) as a PEM block with
optional Not-Before/Not-After headers. Append it to the file named by
IRU_DECISION_KEYS_FILE on the workers when they do not share the API server's HSM
token; during a rotation keep the old key with a Not-After, then send the incidents
the decision_keys signal (the API server also does so when a workflow answers
"unknown key").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg decisionKeyConfig
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			var nb, na time.Time
			for _, f := range []struct {
				v string
				t *time.Time
				n string
			}{{notBefore, &nb, "--not-before"}, {notAfter, &na, "--not-after"}} {
				if f.v == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339, f.v)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("%s: %w", f.n, err)}
				}
				*f.t = t
			}
			km, err := keys.Open(cfg.Keys)
			if err != nil {
				return err
			}
			defer func() { _ = km.Close() }()
			k := km.DecisionKey(nb)
			k.NotAfter = na
			_, err = cmd.OutOrStdout().Write(k.EncodePEM())
			return err
		},
	}
	cmd.Flags().StringVar(&notBefore, "not-before", "", "start of the key's validity (RFC 3339); empty: always")
	cmd.Flags().StringVar(&notAfter, "not-after", "", "end of the key's validity (RFC 3339); empty: no end")
	return cmd
}
