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

	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/stores"
)

func init() { commands = append(commands, newEvidenceCmd) }

// cliIdentity is the identity the CLI records in the custody log: the
// operating system user, as system:cli:<user>.
func cliIdentity() string { return "system:cli:" + osUser() }

func newEvidenceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "evidence", Short: "List, read and verify an incident's evidence"}

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
	cmd.AddCommand(list, get, verify)
	return cmd
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
	err = writeFileAtomic(path, 0o600, func(w io.Writer) error {
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
