//go:build localstack

package main

import "github.com/spf13/cobra"

// localStackCommands are the commands that run the platform on this
// machine against the lab: the whole local stack on the dev server or on
// a real Temporal cluster, and the lab alone.
var localStackCommands = []func() *cobra.Command{newUpCmd, newClusterCmd, newLabCmd}
