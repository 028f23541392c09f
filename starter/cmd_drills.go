package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities/drillreport"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/drills"
	"github.com/iru-responder/responder/internal/logging"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// Schedule policies of every drill schedule.
const (
	// drillCatchupWindow is how late a missed drill may still start (after
	// a server outage); older runs are skipped.
	drillCatchupWindow = 10 * time.Minute
	// drillRunMargin is added to a drill's incident timeout to bound the
	// drill workflow itself (report, approvals).
	drillRunMargin = 15 * time.Minute
)

// drillSource is where the drill and playbook definitions come from.
type drillSource struct {
	file      string
	playbooks string
}

func (s *drillSource) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.file, "file", "", "drills file (default: the embedded drills/drills.yaml)")
	cmd.Flags().StringVar(&s.playbooks, "playbooks", "", "playbooks folder to check the drills against (default: the embedded playbooks)")
}

// load reads and validates the drills against the playbooks.
func (s *drillSource) load() (*drills.File, error) {
	var set *playbooks.Set
	var err error
	if s.playbooks != "" {
		set, err = playbooks.LoadDir(s.playbooks)
	} else {
		set, err = playbooks.Embedded()
	}
	if err != nil {
		return nil, fmt.Errorf("playbooks: %w", err)
	}
	if s.file == "" {
		return drills.Embedded(set)
	}
	return drills.Load(s.file, set)
}

// dialClient loads the client configuration and dials Temporal with the
// payload codec. The caller calls the returned close function.
func dialClient(ctx context.Context) (client.Client, func(), error) {
	var cfg clientConfig
	if err := config.Load(&cfg); err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	c, prot, err := dial(ctx, cfg.Temporal, cfg.Protection, logging.New(io.Discard, cfg.Log, "starter"))
	if err != nil {
		return nil, nil, err
	}
	return c, func() { c.Close(); _ = prot.Close() }, nil
}

func newDrillsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drills",
		Short: "Manage the scheduled incident-response drills (Temporal Schedules drill:<name>)",
	}
	var src drillSource
	var prune, dryRun bool
	sync := &cobra.Command{
		Use:   "sync",
		Short: "Create, update and delete the drill schedules to match the drills file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := src.load()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			c, closeAll, err := dialClient(cmd.Context())
			if err != nil {
				return err
			}
			defer closeAll()
			_, err = syncDrills(cmd.Context(), c, f, syncOptions{Prune: prune, DryRun: dryRun}, cmd.OutOrStdout())
			return err
		},
	}
	src.flags(sync)
	sync.Flags().BoolVar(&prune, "prune", true, "delete drill schedules that are not in the file")
	sync.Flags().BoolVar(&dryRun, "dry-run", false, "print what would change and change nothing")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the drill schedules on the server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, closeAll, err := dialClient(cmd.Context())
			if err != nil {
				return err
			}
			defer closeAll()
			return listDrills(cmd.Context(), c, asJSON, cmd.OutOrStdout())
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(sync, list)
	return cmd
}

func newDrillCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "drill", Short: "Run one drill"}
	var (
		src     drillSource
		noWait  bool
		asJSON  bool
		timeout time.Duration
	)
	run := &cobra.Command{
		Use:   "run NAME",
		Short: "Run a drill now, wait for it and print its report (exit status 1 when it did not pass)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := src.load()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			def, ok := f.Get(args[0])
			if !ok {
				return &exitError{code: 2, err: fmt.Errorf("no drill %q in %s (have %s)", args[0], f.Name, strings.Join(f.Names(), ", "))}
			}
			ctx := cmd.Context()
			if !noWait {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			c, closeAll, err := dialClient(ctx)
			if err != nil {
				return err
			}
			defer closeAll()
			return runDrillNow(ctx, c, def, "system:cli:"+osUser(), !noWait, asJSON, cmd.OutOrStdout())
		},
	}
	src.flags(run)
	run.Flags().BoolVar(&noWait, "no-wait", false, "start the drill and print its workflow id without waiting")
	run.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	run.Flags().DurationVar(&timeout, "timeout", 2*time.Hour, "give up waiting after this long")
	cmd.AddCommand(run)
	return cmd
}

// osUser is the operating system user running the CLI.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

// syncOptions tune syncDrills.
type syncOptions struct {
	// Prune deletes drill schedules that are not in the file.
	Prune bool
	// DryRun reports the changes without making them.
	DryRun bool
}

// syncChange is what sync did to one schedule.
type syncChange struct {
	ID     string
	Change string // created, updated, unchanged, deleted
}

// specNote is the schedule note that records which definition a schedule
// was made from, so an unchanged drill is not updated.
func specNote(f *drills.File, d drills.Definition) (string, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("encode drill %s: %w", d.Name, err)
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("synced from %s by starter drills sync; spec sha256:%s", f.Name, hex.EncodeToString(sum[:8])), nil
}

// drillSchedule returns the schedule parts of a drill.
func drillSchedule(d drills.Definition) (client.ScheduleSpec, *client.ScheduleWorkflowAction, client.SchedulePolicies) {
	spec := client.ScheduleSpec{CronExpressions: slices.Clone(d.Schedule.Cron), Jitter: d.Schedule.Jitter, TimeZoneName: d.Schedule.Timezone}
	if d.Schedule.Interval > 0 {
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: d.Schedule.Interval}}
	}
	timeout := d.Timeout
	if timeout == 0 {
		timeout = workflows.DefaultDrillTimeout
	}
	id := workflows.DrillScheduleID(d.Name)
	action := &client.ScheduleWorkflowAction{
		ID: id, Workflow: workflows.DrillWorkflow, Args: []any{d.Input("schedule:" + id)}, TaskQueue: workflows.TaskQueue,
		WorkflowExecutionTimeout: timeout + drillRunMargin,
		TypedSearchAttributes:    temporal.NewSearchAttributes(workflows.DrillKey.ValueSet(true)),
		StaticSummary:            fmt.Sprintf("drill %s: %s on %s (%s)", d.Name, d.Playbook, d.Target, d.Mode),
	}
	return spec, action, client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: drillCatchupWindow}
}

// syncDrills makes the server's drill schedules match f: one schedule per
// drill (created or updated), and, with Prune, no drill schedule that f
// does not name. It prints one line per schedule.
func syncDrills(ctx context.Context, c client.Client, f *drills.File, o syncOptions, out io.Writer) ([]syncChange, error) {
	sc := c.ScheduleClient()
	var changes []syncChange
	report := func(id, change string) {
		changes = append(changes, syncChange{ID: id, Change: change})
		prefix := ""
		if o.DryRun && change != "unchanged" {
			prefix = "would be "
		}
		fmt.Fprintf(out, "%-40s %s%s\n", id, prefix, change)
	}
	for _, d := range f.Drills {
		id := workflows.DrillScheduleID(d.Name)
		note, err := specNote(f, d)
		if err != nil {
			return changes, err
		}
		spec, action, policy := drillSchedule(d)
		h := sc.GetHandle(ctx, id)
		desc, err := h.Describe(ctx)
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			if !o.DryRun {
				_, err = sc.Create(ctx, client.ScheduleOptions{
					ID: id, Spec: spec, Action: action, Overlap: policy.Overlap, CatchupWindow: policy.CatchupWindow,
					Note: note, Paused: d.Paused,
					Memo:                  map[string]any{"Drill": true, "DrillName": d.Name},
					TypedSearchAttributes: temporal.NewSearchAttributes(workflows.DrillKey.ValueSet(true)),
				})
				if err != nil {
					return changes, fmt.Errorf("create schedule %s: %w", id, err)
				}
			}
			report(id, "created")
		case err != nil:
			return changes, fmt.Errorf("describe schedule %s: %w", id, err)
		case desc.Schedule.State != nil && desc.Schedule.State.Note == note && desc.Schedule.State.Paused == d.Paused:
			report(id, "unchanged")
		default:
			if !o.DryRun {
				err := h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
					s := in.Description.Schedule
					s.Spec, s.Action, s.Policy = &spec, action, &policy
					s.State = &client.ScheduleState{Note: note, Paused: d.Paused}
					sa := temporal.NewSearchAttributes(workflows.DrillKey.ValueSet(true))
					return &client.ScheduleUpdate{Schedule: &s, TypedSearchAttributes: &sa}, nil
				}})
				if err != nil {
					return changes, fmt.Errorf("update schedule %s: %w", id, err)
				}
			}
			report(id, "updated")
		}
	}
	if !o.Prune {
		return changes, nil
	}
	ids, err := drillScheduleIDs(ctx, c)
	if err != nil {
		return changes, err
	}
	for _, id := range ids {
		name := strings.TrimPrefix(id, workflows.DrillSchedulePrefix)
		if _, ok := f.Get(name); ok {
			continue
		}
		if !o.DryRun {
			if err := sc.GetHandle(ctx, id).Delete(ctx); err != nil && !isNotFound(err) {
				return changes, fmt.Errorf("delete schedule %s: %w", id, err)
			}
		}
		report(id, "deleted")
	}
	return changes, nil
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// drillScheduleIDs lists the ids of the drill schedules on the server
// (from visibility, so a schedule created a moment ago may be missing).
func drillScheduleIDs(ctx context.Context, c client.Client) ([]string, error) {
	it, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	var ids []string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		if strings.HasPrefix(e.ID, workflows.DrillSchedulePrefix) {
			ids = append(ids, e.ID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// drillListing is one drill schedule as `drills list` prints it.
type drillListing struct {
	ID         string
	Paused     bool
	Note       string      `json:",omitempty"`
	NextRuns   []time.Time `json:",omitempty"`
	LastRun    time.Time   `json:",omitzero"`
	LastRunID  string      `json:",omitempty"`
	Running    []string    `json:",omitempty"`
	Cron       []string    `json:",omitempty"`
	Intervals  []string    `json:",omitempty"`
	NumActions int
}

func listDrills(ctx context.Context, c client.Client, asJSON bool, out io.Writer) error {
	ids, err := drillScheduleIDs(ctx, c)
	if err != nil {
		return err
	}
	var rows []drillListing
	for _, id := range ids {
		desc, err := c.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
		if isNotFound(err) {
			continue // deleted since it was listed
		}
		if err != nil {
			return fmt.Errorf("describe schedule %s: %w", id, err)
		}
		r := drillListing{ID: id, NextRuns: desc.Info.NextActionTimes, NumActions: desc.Info.NumActions}
		if st := desc.Schedule.State; st != nil {
			r.Paused, r.Note = st.Paused, st.Note
		}
		if sp := desc.Schedule.Spec; sp != nil {
			r.Cron = sp.CronExpressions
			for _, iv := range sp.Intervals {
				r.Intervals = append(r.Intervals, iv.Every.String())
			}
		}
		if n := len(desc.Info.RecentActions); n > 0 {
			last := desc.Info.RecentActions[n-1]
			r.LastRun = last.ActualTime
			if last.StartWorkflowResult != nil {
				r.LastRunID = last.StartWorkflowResult.WorkflowID
			}
		}
		for _, w := range desc.Info.RunningWorkflows {
			r.Running = append(r.Running, w.WorkflowID)
		}
		rows = append(rows, r)
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(out, "no drill schedules (run `starter drills sync`)")
		return nil
	}
	for _, r := range rows {
		state := "active"
		if r.Paused {
			state = "paused"
		}
		next := "-"
		if len(r.NextRuns) > 0 {
			next = r.NextRuns[0].UTC().Format(time.RFC3339)
		}
		last := "never"
		if !r.LastRun.IsZero() {
			last = r.LastRun.UTC().Format(time.RFC3339) + " " + r.LastRunID
		}
		fmt.Fprintf(out, "%s  %s  next %s  last %s  runs %d\n", r.ID, state, next, last, r.NumActions)
		if len(r.Running) > 0 {
			fmt.Fprintf(out, "  running: %s\n", strings.Join(r.Running, ", "))
		}
	}
	return nil
}

// runDrillNow starts a drill and, with wait, prints its report; a drill
// that did not pass is exit status 1.
func runDrillNow(ctx context.Context, c client.Client, d drills.Definition, by string, wait, asJSON bool, out io.Writer) error {
	in := d.Input(by)
	timeout := d.Timeout
	if timeout == 0 {
		timeout = workflows.DefaultDrillTimeout
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.DrillRunWorkflowID(d.Name, time.Now().UTC().Format("20060102T150405.000Z")),
		TaskQueue:                workflows.TaskQueue,
		WorkflowExecutionTimeout: timeout + drillRunMargin,
		TypedSearchAttributes:    temporal.NewSearchAttributes(workflows.DrillKey.ValueSet(true)),
	}, workflows.DrillWorkflow, in)
	if err != nil {
		return fmt.Errorf("start drill %s: %w", d.Name, err)
	}
	if !wait {
		fmt.Fprintf(out, "drill %s started: workflow %s run %s\n", d.Name, run.GetID(), run.GetRunID())
		return nil
	}
	var rep drillreport.Report
	if err := run.Get(ctx, &rep); err != nil {
		return fmt.Errorf("drill %s (workflow %s): %w (is a worker running on task queue %q?)", d.Name, run.GetID(), err, workflows.TaskQueue)
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprint(out, drillreport.Markdown(rep))
		if rep.MarkdownRef != "" {
			fmt.Fprintf(out, "\nStored as %s and %s\n", rep.MarkdownRef, rep.JSONRef)
		}
	}
	if !rep.Passed {
		return &exitError{code: 1, err: fmt.Errorf("drill %s did not pass: %s", d.Name, strings.Join(rep.Failures, "; "))}
	}
	return nil
}
