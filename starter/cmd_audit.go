package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/stores"
)

func init() { commands = append(commands, newAuditCmd) }

// storesConfig configures the commands that open the ledger and the
// evidence locker with the HSM keys (audit, evidence), like the worker.
type storesConfig struct {
	Keys   keys.Config
	Stores stores.Config
}

// Validate implements config.Validator.
func (c *storesConfig) Validate() error { return errors.Join(c.Keys.Validate(), c.Stores.Validate()) }

// openStores loads storesConfig from the environment and opens the HSM and
// the stores; the caller calls the returned close function.
func openStores(ctx context.Context) (*stores.Stores, func(), error) {
	var cfg storesConfig
	if err := config.Load(&cfg); err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	km, err := keys.Open(cfg.Keys)
	if err != nil {
		return nil, nil, err
	}
	st, err := stores.Open(ctx, cfg.Stores, km)
	if err != nil {
		_ = km.Close()
		return nil, nil, err
	}
	return st, func() { _ = st.Close(); _ = km.Close() }, nil
}

// withStores runs fn with the stores (HSM, ledger, evidence) open.
func withStores(fn func(cmd *cobra.Command, st *stores.Stores, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		st, closeAll, err := openStores(cmd.Context())
		if err != nil {
			return err
		}
		defer closeAll()
		return fn(cmd, st, args)
	}
}

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and export an incident's audit ledger"}
	var asJSON bool
	verify := &cobra.Command{
		Use:   "verify INCIDENT",
		Short: "Recompute the incident's hash chain and check its signed checkpoints (exit status 1 when broken)",
		Args:  cobra.ExactArgs(1),
		RunE: withStores(func(cmd *cobra.Command, st *stores.Stores, args []string) error {
			return auditVerify(cmd.Context(), st, args[0], asJSON, cmd.OutOrStdout())
		}),
	}
	verify.Flags().BoolVar(&asJSON, "json", false, "print the verification report as JSON")

	var output string
	export := &cobra.Command{
		Use:   "export INCIDENT",
		Short: "Export the incident's ledger entries and checkpoints as JSON Lines",
		Args:  cobra.ExactArgs(1),
		RunE: withStores(func(cmd *cobra.Command, st *stores.Stores, args []string) error {
			return auditExport(cmd.Context(), st.Ledger, args[0], output, cmd.OutOrStdout())
		}),
	}
	export.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	cmd.AddCommand(verify, export)
	return cmd
}

// auditVerify verifies the incident's chain with the HSM signing key.
func auditVerify(ctx context.Context, st *stores.Stores, incident string, asJSON bool, out io.Writer) error {
	rep, err := st.Ledger.Verify(ctx, incident, st.Signer)
	if err != nil && !errors.Is(err, ledger.ErrBroken) {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	switch {
	case rep.Problem != nil:
		if !asJSON {
			fmt.Fprintf(out, "BROKEN: incident %s: first broken entry: seq %d (%s): %s\n", incident, rep.Problem.Seq, rep.Problem.Kind, rep.Problem.Detail)
		}
		return &exitError{code: 1, err: fmt.Errorf("audit ledger of incident %s is broken at entry %d (%s)", incident, rep.Problem.Seq, rep.Problem.Kind)}
	case rep.Entries == 0:
		return &exitError{code: 1, err: fmt.Errorf("no audit ledger entries for incident %s", incident)}
	}
	if !asJSON {
		fmt.Fprintf(out, "ok: incident %s: %d entries, head seq %d hash %s; %d checkpoints, signed up to seq %d\n",
			incident, rep.Entries, rep.HeadSeq, rep.HeadHash, rep.Checkpoints, rep.CheckpointSeq)
		if rep.CheckpointSeq < rep.HeadSeq {
			fmt.Fprintf(out, "note: entries %d to %d are chained but not yet covered by a signed checkpoint\n", rep.CheckpointSeq+1, rep.HeadSeq)
		}
	}
	return nil
}

// auditExport writes the export to path (atomically) or to out.
func auditExport(ctx context.Context, l *ledger.Ledger, incident, path string, out io.Writer) error {
	if path == "" || path == "-" {
		return l.Export(ctx, incident, out)
	}
	return writeFileAtomic(path, 0o600, func(w io.Writer) error { return l.Export(ctx, incident, w) })
}

// writeFileAtomic writes path through a temporary file in its folder,
// renamed into place only when write succeeded.
func writeFileAtomic(path string, mode os.FileMode, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // no-op after the rename
	if err := write(f); err != nil {
		_ = f.Close()
		return err
	}
	if err := errors.Join(f.Chmod(mode), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
