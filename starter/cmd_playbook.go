package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/playbooks"
)

func newPlaybookCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "playbook",
		Short: "Validate, show and describe playbooks",
	}
	c.AddCommand(newPlaybookValidateCmd(), newPlaybookShowCmd(), newPlaybookSchemaCmd())
	return c
}

func newPlaybookValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check playbook files or folders (default: the embedded playbooks); file:line errors, exit status 1 on any",
		RunE: func(cmd *cobra.Command, paths []string) error {
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var problems []error
			if len(paths) == 0 {
				set, err := playbooks.Embedded()
				if err != nil {
					problems = append(problems, err)
				} else {
					reportValid(out, set)
				}
			}
			for _, p := range paths {
				set, err := loadPath(p)
				if err != nil {
					problems = append(problems, err)
					continue
				}
				reportValid(out, set)
			}
			if len(problems) == 0 {
				return nil
			}
			n := 0
			for _, e := range flatten(errors.Join(problems...)) {
				fmt.Fprintln(errOut, e)
				n++
			}
			return &exitError{code: 1, err: fmt.Errorf("playbook validate: %d problem(s)", n)}
		},
	}
}

// loadPath loads one playbook file, or every playbook of a folder; errors
// name the file by its path.
func loadPath(p string) (*playbooks.Set, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("playbook validate: %w", err)
	}
	dir, only := p, ""
	if !fi.IsDir() {
		dir, only = filepath.Dir(p), filepath.Base(p)
	}
	var set *playbooks.Set
	if only == "" {
		set, err = playbooks.LoadDir(dir)
	} else {
		var src []byte
		if src, err = os.ReadFile(p); err == nil {
			set, err = playbooks.FromFile(only, src)
		}
	}
	if err == nil {
		return set, nil
	}
	var located []error
	for _, e := range flatten(err) {
		if pe, ok := errors.AsType[*playbooks.Error](e); ok {
			c := *pe
			c.File = filepath.Join(dir, pe.File)
			e = &c
		}
		located = append(located, e)
	}
	return nil, errors.Join(located...)
}

// flatten lists the errors joined in err.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func reportValid(w io.Writer, set *playbooks.Set) {
	for _, name := range set.Names() {
		for _, pb := range set.Versions(name) {
			fmt.Fprintf(w, "ok  %s  %s %s, %d steps\n", pb.File, pb.Name, pb.Version, pb.StepCount())
		}
	}
}

func newPlaybookShowCmd() *cobra.Command {
	var dir, version string
	var mermaid bool
	c := &cobra.Command{
		Use:   "show NAME",
		Short: "Print a playbook's phases, steps, approvals and compensations (--mermaid: its flow as a Mermaid chart)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := playbookSet(dir)
			if err != nil {
				return err
			}
			pb, err := set.Get(args[0], version)
			if err != nil {
				return fmt.Errorf("playbook show: %w (playbooks: %s)", err, strings.Join(set.Names(), ", "))
			}
			if mermaid {
				_, err := io.WriteString(cmd.OutOrStdout(), pb.Mermaid())
				return err
			}
			return describePlaybook(cmd.OutOrStdout(), pb)
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "load the playbooks of this folder instead of the embedded ones")
	c.Flags().StringVar(&version, "version", "", "playbook version (default: the highest)")
	c.Flags().BoolVar(&mermaid, "mermaid", false, "print the flow as a Mermaid flowchart")
	return c
}

func playbookSet(dir string) (*playbooks.Set, error) {
	if dir == "" {
		return playbooks.Embedded()
	}
	return loadPath(dir)
}

// describePlaybook prints a playbook for people: per phase, its steps (a
// parallel group indented), with their conditions, approvals and
// compensations.
func describePlaybook(w io.Writer, pb *playbooks.Playbook) error {
	fmt.Fprintf(w, "%s %s (severity %s)%s\n", pb.Name, pb.Version, pb.SeverityDefault, map[bool]string{true: ", drill"}[pb.Drill])
	fmt.Fprintf(w, "%s\n", pb.Description)
	fmt.Fprintf(w, "escalation: %s\n", strings.Join(pb.Escalation, " → "))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, ph := range pb.Phases {
		fmt.Fprintf(tw, "\n%s\n", ph.Name)
		if len(ph.Entries) == 0 {
			fmt.Fprintln(tw, "  (no steps)")
		}
		for _, e := range ph.Entries {
			indent := "  "
			if e.Parallel != nil {
				fmt.Fprintln(tw, "  in parallel:")
				indent = "    "
			}
			for _, s := range e.Steps() {
				fmt.Fprintf(tw, "%s%s\t%s\t%s\n", indent, s.ID, s.Action, strings.Join(stepNotes(s), "; "))
			}
		}
	}
	return tw.Flush()
}

// stepNotes are a step's guards and policies, in words.
func stepNotes(s playbooks.Step) []string {
	var notes []string
	if s.When != "" {
		notes = append(notes, "when "+s.When)
	}
	if a := s.Approval; a != nil {
		n := fmt.Sprintf("approval by %s (quorum %d, timeout %s, then %s)", strings.Join(a.Roles, " or "), a.Quorum, a.Timeout, a.OnTimeout)
		notes = append(notes, n)
	}
	if s.ApprovalWaived != "" {
		notes = append(notes, "approval waived: "+s.ApprovalWaived)
	}
	if s.Risk == playbooks.RiskHigh {
		notes = append(notes, "high risk (approver's second factor)")
	}
	if s.OnFailure != playbooks.OnFailureAbort {
		notes = append(notes, "on failure "+s.OnFailure)
	}
	if c := s.Compensation; c != nil {
		notes = append(notes, "undone by "+c.Action)
	}
	if s.Compensates != "" {
		notes = append(notes, "lifts "+s.Compensates)
	}
	return notes
}

func newPlaybookSchemaCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of playbook files (for editors; playbooks/playbook.schema.json)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := playbooks.Schema()
			if err != nil {
				return err
			}
			if out != "" {
				return os.WriteFile(out, b, 0o644)
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of standard output")
	return c
}
