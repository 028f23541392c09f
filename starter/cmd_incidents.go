package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/internal/apiclient"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/workflows"
)

// apiCommand loads the CLI configuration and an API client, then runs fn.
func apiCommand(fn func(ctx context.Context, c *apiclient.Client, out io.Writer, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		var cfg apiclient.Config
		if err := config.Load(&cfg); err != nil {
			return &exitError{code: 2, err: err}
		}
		c, err := apiclient.New(cmd.Context(), &cfg)
		if err != nil {
			return err
		}
		return fn(cmd.Context(), c, cmd.OutOrStdout(), args)
	}
}

func printJSON(out io.Writer, raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		_, err = out.Write(raw)
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newIncidentsCmd() *cobra.Command {
	var (
		asJSON, open, closed      bool
		severity, asset, playbook string
		phase, drill, pageToken   string
		limit                     int
	)
	cmd := &cobra.Command{
		Use:   "incidents",
		Short: "List and search incidents (responder API)",
		Args:  cobra.NoArgs,
		RunE: apiCommand(func(ctx context.Context, c *apiclient.Client, out io.Writer, _ []string) error {
			q := url.Values{}
			switch {
			case open && closed:
				return &exitError{code: 2, err: fmt.Errorf("--open and --closed exclude each other")}
			case open:
				q.Set("state", "open")
			case closed:
				q.Set("state", "closed")
			}
			for k, v := range map[string]string{"severity": severity, "asset": asset, "playbook": playbook, "phase": phase, "drill": drill, "page_token": pageToken} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var l api.IncidentList
			raw, err := c.Do(ctx, "GET", "/api/v1/incidents", q, nil, "", &l)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, raw)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSEVERITY\tPHASE\tPLAYBOOK\tASSET\tSTATE\tSTARTED")
			for _, i := range l.Incidents {
				state := "open"
				if !i.Open {
					state = strings.ToLower(i.Execution)
				}
				if i.Drill {
					state += " (drill)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, dash(i.Severity), dash(i.Phase), dash(i.Playbook), dash(i.Asset), state, ago(i.StartedAt))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(l.Incidents) == 0 {
				fmt.Fprintln(out, "(no incidents)")
			}
			if l.NextPageToken != "" {
				fmt.Fprintf(out, "more: --page-token %s\n", l.NextPageToken)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	f.BoolVar(&open, "open", false, "only open incidents")
	f.BoolVar(&closed, "closed", false, "only closed incidents")
	f.StringVar(&severity, "severity", "", "only this severity (critical, high, medium, low, info)")
	f.StringVar(&asset, "asset", "", "only this asset")
	f.StringVar(&playbook, "playbook", "", "only this playbook")
	f.StringVar(&phase, "phase", "", "only incidents in this phase")
	f.StringVar(&drill, "drill", "", "true: only drills; false: no drills")
	f.IntVar(&limit, "limit", 0, "at most this many (API default 50, at most 10000)")
	f.StringVar(&pageToken, "page-token", "", "the next page of a previous listing")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago renders t for people: "5m ago (15:04)" or a date.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	if d < 24*time.Hour && d >= 0 {
		return fmt.Sprintf("%s ago", d)
	}
	return t.Local().Format("2006-01-02 15:04")
}

func newIncidentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "incident",
		Short: "Show and act on one incident (responder API)",
		Long: `Show and act on one incident. ID is the incident's id as starter incidents
lists it (its correlation key). Refusals of the incident workflow (wrong role,
four-eyes, step not pending, already decided, incident closed) exit with
status 3; authentication problems exit with status 4.`,
	}
	cmd.AddCommand(newIncidentShowCmd(), newIncidentDecisionCmd("approve"), newIncidentDecisionCmd("deny"),
		newIncidentActionCmd("abort", "abort", "Abort the incident (ir-lead or ir-admin): compensations run", true),
		newIncidentActionCmd("escalate", "escalate", "Escalate the incident to the next tier", false),
		newIncidentActionCmd("ack", "acknowledge", "Acknowledge the incident (you are on it)", false),
		newIncidentRerouteCmd(), newIncidentNoteCmd(), newIncidentReportCmd(), newIncidentEvidenceCmd())
	return cmd
}

func newIncidentShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show an incident: steps, pending approvals, timeline",
		Args:  cobra.ExactArgs(1),
		RunE: apiCommand(func(ctx context.Context, c *apiclient.Client, out io.Writer, args []string) error {
			var v api.IncidentView
			raw, err := c.Do(ctx, "GET", apiclient.IncidentPath(args[0]), nil, nil, "", &v)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, raw)
			}
			return printIncident(out, v)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	return cmd
}

// printIncident renders an incident for people.
func printIncident(out io.Writer, v api.IncidentView) error {
	st := v.Status
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	state := st.State
	if st.Reason != "" {
		state += ": " + st.Reason
	}
	for _, kv := range [][2]string{
		{"ID", v.ID}, {"Incident", st.IncidentID}, {"Playbook", st.Playbook + " " + st.PlaybookVersion}, {"Asset", st.Asset},
		{"Severity", st.Severity}, {"Phase", st.Phase}, {"State", state}, {"Opened", st.OpenedAt.Local().Format(time.RFC3339) + " by " + dash(st.OpenedBy)},
		{"Alerts", fmt.Sprintf("%d distinct, %d received", len(st.Alerts), st.AlertsReceived)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	for _, a := range st.Alerts {
		if !a.ResolvedAt.IsZero() {
			fmt.Fprintf(tw, "Resolved:\t%s (%s) at %s\n", a.Rule, a.Source, a.ResolvedAt.Local().Format(time.RFC3339))
		}
	}
	if !st.AllAlertsResolvedAt.IsZero() {
		fmt.Fprintf(tw, "All alerts resolved:\t%s\n", st.AllAlertsResolvedAt.Local().Format(time.RFC3339))
	}
	for _, r := range st.Related {
		how := "open on the asset when this one opened"
		switch r.How {
		case workflows.RelatedReported:
			how = "opened on the asset later"
		case workflows.RelatedRerouted:
			how = "re-routed (unknown-asset triage and the incident its alerts went to)"
		}
		name := r.ID
		if r.IncidentID != "" {
			name = r.IncidentID + " " + r.ID
		}
		fmt.Fprintf(tw, "Related:\t%s (%s), %s\n", name, dash(r.Playbook), how)
	}
	if st.Drill {
		fmt.Fprintf(tw, "Drill:\tyes\n")
	}
	if !st.Metrics.AcknowledgedAt.IsZero() {
		fmt.Fprintf(tw, "Acknowledged:\tafter %s\n", time.Duration(st.Metrics.TimeToAcknowledgeSeconds*float64(time.Second)).Round(time.Second))
	}
	if st.EscalationLevel > 0 {
		fmt.Fprintf(tw, "Escalation:\tlevel %d\n", st.EscalationLevel)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "STEP\tPHASE\tACTION\tSTATUS\tAPPROVAL")
	var pending []api.StepView
	for _, s := range st.Steps {
		appr := "-"
		if a := s.Approval; a != nil {
			appr = fmt.Sprintf("%s %d/%d", strings.Join(a.Roles, "|"), len(a.Approvals), a.Quorum)
			if a.Outcome != "" {
				appr += " " + a.Outcome
			}
		}
		status := s.Status
		if s.Error != "" {
			status += ": " + s.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Phase, s.Action, status, appr)
		if s.Status == workflows.StepWaitingApproval {
			pending = append(pending, s)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range pending {
		fmt.Fprintf(out, "\nWAITING FOR APPROVAL: %s (%s) needs %s, deadline %s\n  starter incident approve %s %s --reason ...\n",
			s.ID, s.Action, strings.Join(s.Approval.Roles, " or "), s.Approval.Deadline.Local().Format("15:04:05"), v.ID, s.ID)
	}
	if n := len(st.Timeline); n > 0 {
		fmt.Fprintln(out, "\nTimeline (latest 10):")
		for _, e := range st.Timeline[max(0, n-10):] {
			line := fmt.Sprintf("  %s  %-10s %s", e.At.Local().Format("15:04:05"), e.Actor, e.What)
			if e.Reason != "" {
				line += " (" + e.Reason + ")"
			}
			fmt.Fprintln(out, line)
		}
	}
	return nil
}

func newIncidentDecisionCmd(verb string) *cobra.Command {
	var (
		reason string
		asJSON bool
	)
	short := "Approve a step waiting for approval"
	if verb == "deny" {
		short = "Deny a step waiting for approval (the incident aborts)"
	}
	cmd := &cobra.Command{
		Use:   verb + " ID STEP",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: apiCommand(func(ctx context.Context, c *apiclient.Client, out io.Writer, args []string) error {
			var res struct {
				Result api.DecisionResultView `json:"result"`
			}
			raw, err := c.Do(ctx, "POST", apiclient.IncidentPath(args[0], "steps", args[1], verb), nil, map[string]string{"reason": reason}, "", &res)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, raw)
			}
			r := res.Result
			if verb == "deny" {
				fmt.Fprintf(out, "%s: denied %s\n", args[0], r.StepID)
				return nil
			}
			fmt.Fprintf(out, "%s: approved %s (%d of %d approvals)\n", args[0], r.StepID, r.Approvals, r.Quorum)
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the ledger)")
	if verb == "deny" {
		_ = cmd.MarkFlagRequired("reason")
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	return cmd
}

// newIncidentActionCmd is abort, escalate and ack: POST /{route} with a reason.
func newIncidentActionCmd(verb, route, short string, reasonRequired bool) *cobra.Command {
	var (
		reason string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: apiCommand(func(ctx context.Context, c *apiclient.Client, out io.Writer, args []string) error {
			var res struct {
				Status string          `json:"status"`
				Result json.RawMessage `json:"result"`
			}
			raw, err := c.Do(ctx, "POST", apiclient.IncidentPath(args[0], route), nil, map[string]string{"reason": reason}, "", &res)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, raw)
			}
			switch route {
			case "abort":
				fmt.Fprintf(out, "%s: abort requested; compensations run, then the post-incident phase\n", args[0])
			case "escalate":
				var r api.EscalationView
				_ = json.Unmarshal(res.Result, &r)
				fmt.Fprintf(out, "%s: escalated to %s (level %d)\n", args[0], r.Tier, r.Level)
			default:
				var r api.AcknowledgementView
				_ = json.Unmarshal(res.Result, &r)
				fmt.Fprintf(out, "%s: acknowledged (first acknowledgement %s)\n", args[0], r.AcknowledgedAt.Local().Format(time.RFC3339))
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the ledger)")
	if reasonRequired {
		_ = cmd.MarkFlagRequired("reason")
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	return cmd
}

func newIncidentNoteCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "note ID TEXT",
		Short: "Add a note to the incident (stored in the evidence locker); TEXT - reads stdin",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			text := args[1]
			if text == "-" {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
				if err != nil {
					return fmt.Errorf("note: read stdin: %w", err)
				}
				text = string(b)
			}
			return apiCommand(func(ctx context.Context, c *apiclient.Client, out io.Writer, _ []string) error {
				var res struct {
					Ref  string `json:"ref"`
					Name string `json:"name"`
				}
				raw, err := c.Do(ctx, "POST", apiclient.IncidentPath(args[0], "notes"), nil, map[string]string{"text": text}, "", &res)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(out, raw)
				}
				fmt.Fprintf(out, "%s: note stored as %s (%s)\n", args[0], res.Name, res.Ref)
				return nil
			})(cmd, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	return cmd
}

func newIncidentReportCmd() *cobra.Command {
	var format, output string
	cmd := &cobra.Command{
		Use:   "report ID",
		Short: "Fetch the post-incident report (Markdown or JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: apiCommand(func(ctx context.Context, c *apiclient.Client, out io.Writer, args []string) error {
			accept := "text/markdown"
			switch format {
			case "markdown", "md":
				format = "markdown"
			case "json":
				accept = "application/json"
			default:
				return &exitError{code: 2, err: fmt.Errorf("--format %q: want markdown or json", format)}
			}
			raw, err := c.Do(ctx, "GET", apiclient.IncidentPath(args[0], "report"), url.Values{"format": {format}}, nil, accept, nil)
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				_, err = out.Write(raw)
				return err
			}
			if err := os.WriteFile(output, raw, 0o640); err != nil {
				return fmt.Errorf("report: %w", err)
			}
			fmt.Fprintf(out, "%s: report written to %s (%d bytes)\n", args[0], output, len(raw))
			return nil
		}),
	}
	cmd.Flags().StringVar(&format, "format", "markdown", "markdown or json")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

func newIncidentEvidenceCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "evidence ID",
		Short: "List the incident's evidence (manifest and custody log)",
		Args:  cobra.ExactArgs(1),
		RunE: apiCommand(func(ctx context.Context, c *apiclient.Client, out io.Writer, args []string) error {
			var res struct {
				IncidentID string `json:"incident_id"`
				Manifest   struct {
					Objects []struct {
						Ref         string    `json:"ref"`
						Name        string    `json:"name"`
						Size        int64     `json:"size"`
						CollectedBy string    `json:"collected_by"`
						CollectedAt time.Time `json:"collected_at"`
						Deleted     bool      `json:"deleted"`
					} `json:"objects"`
					Head string `json:"head"`
				} `json:"manifest"`
			}
			raw, err := c.Do(ctx, "GET", apiclient.IncidentPath(args[0], "evidence"), nil, nil, "", &res)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, raw)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIZE\tCOLLECTED BY\tCOLLECTED\tREF")
			for _, o := range res.Manifest.Objects {
				name := o.Name
				if o.Deleted {
					name += " (deleted)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", name, o.Size, o.CollectedBy, o.CollectedAt.Local().Format(time.RFC3339), o.Ref)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "incident %s, custody head %s\n", res.IncidentID, res.Manifest.Head)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	return cmd
}
