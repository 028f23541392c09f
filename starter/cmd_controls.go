package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/activities"
	controlsact "github.com/iru-responder/responder/activities/controls"
	"github.com/iru-responder/responder/controls"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/workerhost"
)

// defaultControlsResults is where `starter controls check` keeps the last
// results, which `starter controls report` reads.
const defaultControlsResults = ".iru/controls/results.json"

// controlsResults is the results file: the controls file's digest and the
// last result of each control checked.
type controlsResults struct {
	File    string
	Digest  string
	Results []activities.ControlCheckResult
}

func newControlsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "controls", Short: "The hardening guide's controls: list them, check them now against live state, write the compliance matrix"}
	var file string
	cmd.PersistentFlags().StringVar(&file, "file", "", "controls file (default: IRU_CONTROLS_FILE, else the embedded controls/controls.yaml)")
	load := func() (*controls.File, error) {
		if file == "" {
			file = os.Getenv("IRU_CONTROLS_FILE")
		}
		f, err := controls.Load(file)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		return f, nil
	}

	var listJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the controls: id, check, severity, the guide's section, what is checked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := load()
			if err != nil {
				return err
			}
			return controlsList(f, listJSON, cmd.OutOrStdout())
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")

	var checkJSON bool
	var results string
	check := &cobra.Command{
		Use:   "check [ID...]",
		Short: "Run the controls' checks now against the configured Proxmox VE, Keycloak, ledger, HSM and API server (exit status 1 when one fails)",
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := load()
			if err != nil {
				return err
			}
			res, err := controlsRun(cmd.Context(), f, args, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if results != "" {
				if err := saveControlsResults(results, f, res); err != nil {
					return err
				}
			}
			if err := controlsPrint(res, checkJSON, cmd.OutOrStdout()); err != nil {
				return err
			}
			for _, r := range res {
				if r.Status == activities.ControlFail {
					return &exitError{code: 1, err: errors.New("controls: a control failed")}
				}
			}
			return nil
		},
	}
	check.Flags().BoolVar(&checkJSON, "json", false, "print the results as JSON")
	check.Flags().StringVar(&results, "results", defaultControlsResults, "file (0600) where the results are kept for `controls report` (\"\": not kept)")

	var reportResults, outDir string
	var run bool
	report := &cobra.Command{
		Use:   "report",
		Short: "Write the compliance matrix (Markdown and JSON): each control, its section, its last result with its evidence hash, its SOC 2 / ISO 27001 clauses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := load()
			if err != nil {
				return err
			}
			var res []activities.ControlCheckResult
			if run {
				if res, err = controlsRun(cmd.Context(), f, nil, cmd.ErrOrStderr()); err != nil {
					return err
				}
				if err := saveControlsResults(reportResults, f, res); err != nil {
					return err
				}
			} else {
				b, err := os.ReadFile(reportResults)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
				if err == nil {
					var saved controlsResults
					if err := json.Unmarshal(b, &saved); err != nil {
						return fmt.Errorf("controls report: %s: %w", reportResults, err)
					}
					res = saved.Results
				}
			}
			m, err := buildMatrix(f, res)
			if err != nil {
				return err
			}
			return writeMatrix(m, outDir, cmd.OutOrStdout())
		},
	}
	report.Flags().StringVar(&reportResults, "results", defaultControlsResults, "results file written by `controls check`")
	report.Flags().StringVar(&outDir, "out", ".iru/controls", "folder receiving compliance-matrix.md and compliance-matrix.json")
	report.Flags().BoolVar(&run, "run", false, "run every check now first (and keep the results)")

	cmd.AddCommand(list, check, report)
	return cmd
}

// controlsList prints the controls.
func controlsList(f *controls.File, asJSON bool, out io.Writer) error {
	if asJSON {
		var sums []activities.ControlSummary
		for _, c := range f.Controls {
			sums = append(sums, c.Summary())
		}
		return writeJSON(out, activities.ControlsListResult{Controls: sums, Digest: f.Digest})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCHECK\tSEVERITY\tSECTION\tTITLE")
	for _, c := range f.Controls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Check, c.Severity, c.Section, c.Title)
	}
	return tw.Flush()
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// controlsRun opens the worker's dependencies from the environment (the
// worker's configuration) and runs the selected controls. Temporal is
// optional: without it, the checks that read what ran (retention sweep,
// drills) report unknown.
func controlsRun(ctx context.Context, f *controls.File, ids []string, warn io.Writer) ([]activities.ControlCheckResult, error) {
	sel, err := f.Select(ids)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	var cfg workerhost.Config
	if err := config.Load(&cfg); err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	h, err := workerhost.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var c client.Client
	if tc, closeClient, err := dialClient(ctx); err != nil {
		fmt.Fprintf(warn, "controls: Temporal not reachable (%v); the checks of what ran will be unknown\n", err)
	} else {
		defer closeClient()
		c = tc
	}
	acts := h.Controls(c)
	acts.File = f
	var out []activities.ControlCheckResult
	for _, ctl := range sel {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		r, err := acts.Run(cctx, ctl)
		cancel()
		if err != nil {
			// A state that could not be read is unknown, never a pass.
			r = activities.ControlCheckResult{Control: ctl.Summary(), Status: activities.ControlUnknown, CheckedAt: time.Now().UTC(),
				Findings: []activities.ControlFinding{{Target: ctl.Check, Setting: "read", Observed: err.Error(), Expected: "the state could be read"}}}
		}
		out = append(out, r)
	}
	return out, nil
}

func saveControlsResults(path string, f *controls.File, res []activities.ControlCheckResult) error {
	b, err := json.MarshalIndent(controlsResults{File: f.Name, Digest: f.Digest, Results: res}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return fsutil.WriteFile(path, append(b, '\n'), 0o600)
}

// controlsPrint prints results as a table (each finding under its control) or JSON.
func controlsPrint(res []activities.ControlCheckResult, asJSON bool, out io.Writer) error {
	if asJSON {
		return writeJSON(out, res)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tTARGETS\tFINDINGS\tTITLE")
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", r.Control.ID, strings.ToUpper(r.Status), r.Targets, len(r.Findings), r.Control.Title)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range res {
		for _, fd := range r.Findings {
			fix := ""
			if fd.Fix != "" {
				fix = fmt.Sprintf(" [fix: %s %s]", fd.Fix, paramsText(fd.FixParams))
			}
			fmt.Fprintf(out, "%s %s: %s %s: %s; expected %s%s\n", strings.ToUpper(r.Status), r.Control.ID, fd.Target, fd.Setting, fd.Observed, fd.Expected, fix)
		}
	}
	return nil
}

func paramsText(p map[string]string) string {
	b, _ := json.Marshal(p)
	return string(b)
}

// matrixRow is one control of the compliance matrix.
type matrixRow struct {
	ID, Section, Title, Check, Severity string
	// Status is the last result's status ("not checked" without one).
	Status    string
	CheckedAt time.Time `json:",omitzero"`
	// EvidenceHash is the SHA-256 of the last result's canonical JSON.
	EvidenceHash string `json:",omitempty"`
	Findings     int
	Frameworks   []string `json:",omitempty"`
}

// matrix is the compliance matrix.
type matrix struct {
	ControlsFile string
	Digest       string
	Rows         []matrixRow
	// Clauses is the mapping table: clause → what it asks.
	Clauses []controls.Framework
}

// buildMatrix joins the controls with their last results.
func buildMatrix(f *controls.File, res []activities.ControlCheckResult) (matrix, error) {
	m := matrix{ControlsFile: f.Name, Digest: f.Digest, Clauses: f.Frameworks}
	last := map[string]activities.ControlCheckResult{}
	for _, r := range res {
		if cur, ok := last[r.Control.ID]; !ok || r.CheckedAt.After(cur.CheckedAt) {
			last[r.Control.ID] = r
		}
	}
	for _, c := range f.Controls {
		row := matrixRow{ID: c.ID, Section: c.Section, Title: c.Title, Check: c.Check, Severity: c.Severity, Status: "not checked", Frameworks: c.Frameworks}
		if r, ok := last[c.ID]; ok {
			h, err := controlsact.EvidenceHash(r)
			if err != nil {
				return matrix{}, err
			}
			row.Status, row.CheckedAt, row.EvidenceHash, row.Findings = r.Status, r.CheckedAt, h, len(r.Findings)
		}
		m.Rows = append(m.Rows, row)
	}
	return m, nil
}

// markdown renders the matrix.
func (m matrix) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Compliance matrix\n\nControls file `%s` (sha256 %s).\n\n", m.ControlsFile, m.Digest)
	b.WriteString("| control | guide section | status | checked at | evidence sha256 | SOC 2 / ISO 27001 |\n|---|---|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
	for _, r := range m.Rows {
		at := ""
		if !r.CheckedAt.IsZero() {
			at = r.CheckedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(&b, "| %s: %s | %s | %s | %s | %s | %s |\n", r.ID, cell(r.Title), cell(r.Section), r.Status, at, r.EvidenceHash, cell(strings.Join(r.Frameworks, ", ")))
	}
	b.WriteString("\n## Clauses\n\n| clause | what it asks |\n|---|---|\n")
	for _, c := range m.Clauses {
		fmt.Fprintf(&b, "| %s | %s |\n", cell(c.Clause), cell(c.Text))
	}
	return b.String()
}

// writeMatrix writes compliance-matrix.md and .json into dir.
func writeMatrix(m matrix, dir string, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	md, jp := filepath.Join(dir, "compliance-matrix.md"), filepath.Join(dir, "compliance-matrix.json")
	if err := fsutil.WriteFile(md, []byte(m.markdown()), 0o600); err != nil {
		return err
	}
	if err := fsutil.WriteFile(jp, append(js, '\n'), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s and %s\n", md, jp)
	return nil
}
