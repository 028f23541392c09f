package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/intake"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/workflows"
)

// deadLetterSource names the dead-letter queue: the spool directory, given
// directly or through the intake configuration file.
type deadLetterSource struct {
	spoolDir, intakeConfig string
}

func (s *deadLetterSource) flags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&s.spoolDir, "spool-dir", "", "the intake's spool directory (its dead-letters folder is read)")
	cmd.PersistentFlags().StringVar(&s.intakeConfig, "intake-config", "", "the intake configuration file (its spool_dir is used)")
}

func (s *deadLetterSource) open() (*spool.DeadLetters, error) {
	dir := s.spoolDir
	if dir == "" && s.intakeConfig != "" {
		cfg, err := intake.LoadConfig(s.intakeConfig)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		dir = cfg.SpoolDir
	}
	if dir == "" {
		return nil, &exitError{code: 2, err: errors.New("intake dead-letters: give --spool-dir DIR or --intake-config FILE")}
	}
	return spool.OpenDeadLetters(dir, 0)
}

func newIntakeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "intake", Short: "Operate the detector intake"}
	dl := &cobra.Command{
		Use:   "dead-letters",
		Short: "Alerts Temporal refused for good (they no longer block the spool): list, show, replay, drop",
	}
	var src deadLetterSource
	src.flags(dl)

	var listJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the dead letters, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := src.open()
			if err != nil {
				return err
			}
			return deadLettersList(q, listJSON, cmd.OutOrStdout())
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Print one dead letter with its spooled record",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := src.open()
			if err != nil {
				return err
			}
			return deadLetterShow(q, args[0], cmd.OutOrStdout())
		},
	}

	var taskQueue string
	replay := &cobra.Command{
		Use:   "replay ID",
		Short: "Deliver a dead letter to its incident again (after the cause was fixed); it is dropped once delivered",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := src.open()
			if err != nil {
				return err
			}
			c, closeAll, err := dialClient(cmd.Context())
			if err != nil {
				return err
			}
			defer closeAll()
			return deadLetterReplay(cmd.Context(), q, forward.TemporalSignaler{Client: c}, taskQueue, args[0], cmd.OutOrStdout())
		},
	}
	replay.Flags().StringVar(&taskQueue, "task-queue", workflows.TaskQueue, "task queue of the incident workflows")

	drop := &cobra.Command{
		Use:   "drop ID",
		Short: "Delete a dead letter for good",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := src.open()
			if err != nil {
				return err
			}
			if err := q.Drop(args[0]); err != nil {
				return deadLetterErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dropped %s\n", args[0])
			return nil
		},
	}
	dl.AddCommand(list, show, replay, drop)
	cmd.AddCommand(dl)
	return cmd
}

// deadLetterErr gives an unknown id exit status 3.
func deadLetterErr(err error) error {
	if errors.Is(err, spool.ErrNoDeadLetter) {
		return &exitError{code: 3, err: err}
	}
	return err
}

func deadLettersList(q *spool.DeadLetters, asJSON bool, out io.Writer) error {
	dls, err := q.List()
	if err != nil {
		return err
	}
	if asJSON {
		if dls == nil {
			dls = []spool.DeadLetter{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(dls)
	}
	if len(dls) == 0 {
		fmt.Fprintln(out, "no dead letters")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tDETECTOR\tKEY\tREASON")
	for _, d := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.At.Format(time.RFC3339), d.Owner, clip(d.Key, 48), clip(d.Reason, 80))
	}
	return tw.Flush()
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// deadLetterView is what show prints: the dead letter with its record
// decoded when it decodes.
type deadLetterView struct {
	spool.DeadLetter
	Record *forward.Record `json:"record,omitempty"`
	Bytes  int             `json:"record_bytes"`
}

func deadLetterShow(q *spool.DeadLetters, id string, out io.Writer) error {
	d, err := q.Get(id)
	if err != nil {
		return deadLetterErr(err)
	}
	v := deadLetterView{DeadLetter: d, Bytes: len(d.Data)}
	if r, err := forward.UnmarshalRecord(d.Data); err == nil {
		v.Record = &r
		v.Data = nil
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func deadLetterReplay(ctx context.Context, q *spool.DeadLetters, sig forward.Signaler, taskQueue, id string, out io.Writer) error {
	d, err := q.Get(id)
	if err != nil {
		return deadLetterErr(err)
	}
	r, err := forward.UnmarshalRecord(d.Data)
	if err != nil {
		return fmt.Errorf("dead letter %s cannot be replayed (drop it): %w", id, err)
	}
	if err := forward.Deliver(ctx, sig, taskQueue, []forward.Record{r}); err != nil {
		return fmt.Errorf("replay %s: %w (the dead letter is kept)", id, err)
	}
	if err := q.Drop(id); err != nil {
		return fmt.Errorf("replayed %s but could not drop it: %w", id, err)
	}
	fmt.Fprintf(out, "replayed %s to %s; dropped\n", id, workflows.IncidentWorkflowID(r.Key))
	return nil
}
