package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/stores"
)

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
	st, _, closeAll, err := openStoresKeys(ctx)
	return st, closeAll, err
}

// openStoresKeys is [openStores] that also returns the key manager.
func openStoresKeys(ctx context.Context) (*stores.Stores, *keys.Manager, func(), error) {
	var cfg storesConfig
	if err := config.Load(&cfg); err != nil {
		return nil, nil, nil, &exitError{code: 2, err: err}
	}
	km, err := keys.Open(cfg.Keys)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := stores.Open(ctx, cfg.Stores, km)
	if err != nil {
		_ = km.Close()
		return nil, nil, nil, err
	}
	return st, km, func() { _ = st.Close(); _ = km.Close() }, nil
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
	var (
		asJSON   bool
		keysFile string
	)
	verify := &cobra.Command{
		Use:   "verify INCIDENT",
		Short: "Recompute the incident's hash chain, check its signed checkpoints and re-verify every decision statement (exit status 1 when broken)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, km, closeAll, err := openStoresKeys(cmd.Context())
			if err != nil {
				return err
			}
			defer closeAll()
			ks, err := auditDecisionKeys(km, keysFile)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			return auditVerify(cmd.Context(), st, ks, args[0], asJSON, cmd.OutOrStdout())
		},
	}
	verify.Flags().BoolVar(&asJSON, "json", false, "print the verification report as JSON")
	verify.Flags().StringVar(&keysFile, "decision-keys", "", "PEM file of further decision public keys (rotated-out API server keys); the HSM's decision key is always used")

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

// auditDecisionKeys are the keys that verify stored decision statements.
func auditDecisionKeys(km *keys.Manager, file string) (decision.KeySet, error) {
	var ks decision.KeySet
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return ks, fmt.Errorf("--decision-keys: %w", err)
		}
		if ks, err = decision.ParsePEM(b); err != nil {
			return ks, fmt.Errorf("--decision-keys %s: %w", file, err)
		}
	}
	k := km.DecisionKey(time.Time{})
	if _, ok := ks.Lookup(k.ID); !ok {
		ks.Keys = append(ks.Keys, k)
	}
	return ks, nil
}

// StatementProblem is the first decision statement of an incident's
// ledger that does not verify.
type StatementProblem struct {
	Seq    int64  `json:"seq"`
	Action string `json:"action"`
	Detail string `json:"detail"`
}

// statementReport is what `audit verify --json` prints.
type statementReport struct {
	ledger.Report
	Statements       int               `json:"statements"`
	StatementProblem *StatementProblem `json:"statement_problem,omitempty"`
}

// verifyStatements re-verifies every decision statement stored in the
// incident's ledger: the signature (a key valid when it was issued), the
// canonical encoding, and that it names the entry's actor. It returns the
// count and the first bad one.
func verifyStatements(ctx context.Context, l *ledger.Ledger, ks decision.KeySet, incident string) (int, *StatementProblem, error) {
	n := 0
	var bad *StatementProblem
	err := l.Store().Entries(ctx, incident, func(e ledger.Entry) error {
		if bad != nil {
			return nil
		}
		if !e.Decision.HasStatement() {
			return nil
		}
		s := decision.Signed{KeyID: e.Decision.StatementKeyID, Sig: e.Decision.StatementSig, Payload: e.Decision.StatementPayload}
		n++
		fail := func(format string, a ...any) {
			bad = &StatementProblem{Seq: e.Seq, Action: e.Action, Detail: fmt.Sprintf(format, a...)}
		}
		unsigned, err := decision.Decode(s.Payload)
		if err != nil {
			fail("%v", err)
			return nil
		}
		st, err := ks.Verify(s, unsigned.IssuedAt)
		switch {
		case err != nil:
			fail("%v", err)
		case st.Subject != e.Actor:
			fail("statement by %s recorded as %s", st.Subject, e.Actor)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return n, bad, err
	}
	return n, bad, nil
}

// auditVerify verifies the incident's chain with the HSM signing key and
// its decision statements with the decision keys ks.
func auditVerify(ctx context.Context, st *stores.Stores, ks decision.KeySet, incident string, asJSON bool, out io.Writer) error {
	rep, err := st.Ledger.Verify(ctx, incident, st.Signer)
	if err != nil && !errors.Is(err, ledger.ErrBroken) {
		return err
	}
	full := statementReport{Report: rep}
	if full.Statements, full.StatementProblem, err = verifyStatements(ctx, st.Ledger, ks, incident); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(full); err != nil {
			return err
		}
	}
	if p := full.StatementProblem; p != nil {
		if !asJSON {
			fmt.Fprintf(out, "BAD STATEMENT: incident %s: first bad decision statement: seq %d (%s): %s\n", incident, p.Seq, p.Action, p.Detail)
		}
		if rep.Problem == nil {
			return &exitError{code: 1, err: fmt.Errorf("decision statement of entry %d of incident %s does not verify", p.Seq, incident)}
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
		fmt.Fprintf(out, "ok: incident %s: %d entries, head seq %d hash %s; %d checkpoints, signed up to seq %d; %d decision statements verified\n",
			incident, rep.Entries, rep.HeadSeq, rep.HeadHash, rep.Checkpoints, rep.CheckpointSeq, full.Statements)
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
	return fsutil.WriteFileFunc(path, 0o600, func(w io.Writer) error { return l.Export(ctx, incident, w) })
}
