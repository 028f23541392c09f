//go:build !localstack

package main

import "github.com/spf13/cobra"

// localStackCommands is empty in production builds: they contain no lab
// simulator and no demo scenario (make up builds with -tags localstack).
var localStackCommands []func() *cobra.Command
