package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/activities/housekeeping"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/internal/stores"
	"github.com/iru-responder/responder/workflows"
)

// cliIdentity is the identity the CLI records in the custody log: the
// operating system user, as system:cli:<user>.
func cliIdentity() string { return "system:cli:" + osUser() }

func newEvidenceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "evidence", Short: "List, read and verify an incident's evidence; run the retention sweep"}

	var listJSON bool
	list := &cobra.Command{
		Use:   "list INCIDENT",
		Short: "List the incident's evidence objects",
		Args:  cobra.ExactArgs(1),
		RunE: withStores(func(cmd *cobra.Command, st *stores.Stores, args []string) error {
			return evidenceList(cmd.Context(), st.Evidence, args[0], listJSON, cmd.OutOrStdout())
		}),
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")

	var output, reason string
	get := &cobra.Command{
		Use:   "get REF -o FILE --reason TEXT",
		Short: "Decrypt one object into a file; the read is recorded in the custody log with system:cli:<os user> and the reason",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" || strings.TrimSpace(reason) == "" {
				return &exitError{code: 2, err: errors.New("evidence get: -o FILE and --reason are required (the reason is recorded in the custody log)")}
			}
			st, closeAll, err := openStores(cmd.Context())
			if err != nil {
				return err
			}
			defer closeAll()
			return evidenceGet(cmd.Context(), st.Evidence, evidence.Ref(args[0]), output, evidence.Reader{Identity: cliIdentity(), Reason: reason}, cmd.OutOrStdout())
		},
	}
	get.Flags().StringVarP(&output, "output", "o", "", "file to write the content to (created 0600; written only when the content verifies)")
	get.Flags().StringVar(&reason, "reason", "", "why you read it (recorded)")

	var verifyJSON bool
	verify := &cobra.Command{
		Use:   "verify INCIDENT",
		Short: "Check the custody log and re-hash every object against the manifest (exit status 1 on any mismatch)",
		Args:  cobra.ExactArgs(1),
		RunE: withStores(func(cmd *cobra.Command, st *stores.Stores, args []string) error {
			return evidenceVerify(cmd.Context(), st.Evidence, args[0], verifyJSON, cmd.OutOrStdout())
		}),
	}
	verify.Flags().BoolVar(&verifyJSON, "json", false, "print the report as JSON")
	cmd.AddCommand(list, get, verify, newEvidenceSweepCmd())
	return cmd
}

func newEvidenceSweepCmd() *cobra.Command {
	var (
		dryRun  bool
		asOf    string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sweep [--dry-run [--as-of TIME]]",
		Short: "Destroy the evidence whose retention ended, recording each destruction in the audit ledger; --dry-run lists what would go",
		Long: "Without --dry-run, runs the retention sweep on the worker now (the worker is the evidence locker's only writer;\n" +
			"the schedule " + workflows.SweepEvidenceScheduleID + " runs it daily): each expired object's data key is shredded, its\n" +
			"ciphertext removed, and one evidence.destroyed entry appended to the day's audit chain (access:<day>).\n" +
			"With --dry-run, reads the locker and lists what a sweep would destroy now (or at --as-of); nothing changes.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dryRun {
				if asOf != "" {
					return &exitError{code: 2, err: errors.New("evidence sweep: --as-of goes with --dry-run (a sweep destroys only what has expired now)")}
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				return keysDial(ctx, func(ctx context.Context, c client.Client) error {
					run, err := schedules.RunSweep(ctx, c, workflows.TaskQueue, housekeeping.SweepEvidenceInput{})
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "workflow %s\n", run.WorkflowID)
					printSweep(cmd.OutOrStdout(), run.Result)
					return nil
				})
			}
			at := time.Now()
			if asOf != "" {
				var err error
				if at, err = time.Parse(time.RFC3339, asOf); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("evidence sweep: --as-of %q: want RFC 3339 (2027-01-31T00:00:00Z)", asOf)}
				}
			}
			st, closeAll, err := openStores(cmd.Context())
			if err != nil {
				return err
			}
			defer closeAll()
			return evidenceSweepDryRun(cmd.Context(), st.Evidence, at, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be destroyed and change nothing")
	cmd.Flags().StringVar(&asOf, "as-of", "", "with --dry-run: list what would have expired at this time (RFC 3339) instead of now")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up waiting for the sweep after this long")
	return cmd
}

// evidenceSweepDryRun prints what a sweep at `at` would destroy.
func evidenceSweepDryRun(ctx context.Context, l *evidence.Locker, at time.Time, out io.Writer) error {
	objs, err := l.Expired(ctx, at)
	if err != nil {
		return err
	}
	res := housekeeping.SweepEvidenceResult{DryRun: true, Count: len(objs)}
	for _, o := range objs {
		res.Objects = append(res.Objects, housekeeping.SweptObject{Ref: string(o.Ref), Name: o.Name, Class: string(o.Class), RetainUntil: o.RetainUntil})
	}
	fmt.Fprintf(out, "dry run at %s: nothing changed\n", at.UTC().Format(time.RFC3339))
	printSweep(out, res)
	return nil
}

func printSweep(w io.Writer, r housekeeping.SweepEvidenceResult) {
	verb := "destroyed"
	if r.DryRun {
		verb = "would destroy"
	}
	for _, o := range r.Objects {
		fmt.Fprintf(w, "  %s %s\n    %s  %s  retention ended %s", verb, o.Ref, o.Name, o.Class, o.RetainUntil.UTC().Format(time.RFC3339))
		if o.LedgerChain != "" {
			fmt.Fprintf(w, "  ledger %s seq %d", o.LedgerChain, o.LedgerSeq)
		}
		fmt.Fprintln(w)
	}
	if n := r.Count - len(r.Objects); n > 0 {
		fmt.Fprintf(w, "  … and %d more (every one is in the audit ledger)\n", n)
	}
	fmt.Fprintf(w, "%d object(s) %s\n", r.Count, verb)
}

func evidenceList(ctx context.Context, l *evidence.Locker, incident string, asJSON bool, out io.Writer) error {
	objs, err := l.List(ctx, incident)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(objs)
	}
	if len(objs) == 0 {
		fmt.Fprintf(out, "no evidence for incident %s\n", incident)
		return nil
	}
	for _, o := range objs {
		fmt.Fprintf(out, "%s\n  %s  %s  %d bytes  %s  collected %s by %s from %s\n",
			o.Ref, o.Name, o.Class, o.Size, o.MediaType, o.CollectedAt.UTC().Format(time.RFC3339), o.CollectedBy, o.Source)
	}
	return nil
}

// evidenceGet writes the object to path; the file appears only when the
// whole content verified against its reference.
func evidenceGet(ctx context.Context, l *evidence.Locker, ref evidence.Ref, path string, who evidence.Reader, out io.Writer) error {
	rc, meta, err := l.Get(ctx, ref, who)
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()
	var n int64
	err = fsutil.WriteFileFunc(path, 0o600, func(w io.Writer) error {
		var err error
		n, err = io.Copy(w, rc)
		if err != nil {
			return fmt.Errorf("read %s: %w", ref, err)
		}
		return nil
	})
	if errors.Is(err, evidence.ErrIntegrity) {
		return &exitError{code: 1, err: err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s (%d bytes, sha256 %s verified); read recorded as %s: %s\n", path, n, meta.SHA256, who.Identity, who.Reason)
	return nil
}

func evidenceVerify(ctx context.Context, l *evidence.Locker, incident string, asJSON bool, out io.Writer) error {
	rep, err := l.Verify(ctx, incident)
	if err != nil && !errors.Is(err, evidence.ErrIntegrity) {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	if len(rep.Problems) > 0 {
		if !asJSON {
			fmt.Fprintf(out, "MISMATCH: incident %s: %d problem(s)\n", incident, len(rep.Problems))
			for _, p := range rep.Problems {
				where := string(p.Ref)
				if where == "" {
					where = fmt.Sprintf("custody log line %d", p.Line)
				}
				fmt.Fprintf(out, "  %s: %s\n", where, p.Detail)
			}
		}
		return &exitError{code: 1, err: fmt.Errorf("evidence of incident %s does not verify: %d problem(s)", incident, len(rep.Problems))}
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if !asJSON {
		fmt.Fprintf(out, "ok: incident %s: %d custody events, %d objects, %d bytes re-hashed; custody head %s\n",
			incident, rep.Events, rep.Objects, rep.Bytes, rep.Head)
	}
	return nil
}
