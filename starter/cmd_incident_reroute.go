package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/internal/apiclient"
)

// newIncidentRerouteCmd is `starter incident reroute ID --asset A --reason R`:
// POST /reroute on an unknown-asset triage.
func newIncidentRerouteCmd() *cobra.Command {
	var (
		asset, reason string
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "reroute ID",
		Short: "Re-route an unknown-asset triage to the asset you picked (ir-lead or ir-admin)",
		Long: `Re-route an unknown-asset triage: the asset must resolve in the inventory; the
playbook the rules chose for the triage's alerts opens for that asset with
them (or they join its open incident), the two incidents are linked, and the
triage closes as rerouted. To close a triage without an asset, abort it.`,
		Args: cobra.ExactArgs(1),
		RunE: apiCommand(func(ctx context.Context, c *apiclient.Client, out io.Writer, args []string) error {
			var res api.RerouteAnswer
			raw, err := c.Do(ctx, "POST", apiclient.IncidentPath(args[0], "reroute"), nil, map[string]string{"asset": asset, "reason": reason}, "", &res)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, raw)
			}
			fmt.Fprintf(out, "%s: re-routed to %s; its alerts are in incident %s (%s)\n", args[0], res.Result.Asset, res.Result.ID, res.Result.Playbook)
			return nil
		}),
	}
	cmd.Flags().StringVar(&asset, "asset", "", "the asset the alerts are about (must be in the inventory)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the ledger)")
	_ = cmd.MarkFlagRequired("asset")
	_ = cmd.MarkFlagRequired("reason")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	return cmd
}
