package drillreport

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/iru-responder/responder/internal/report"
)

// Markdown renders a drill report for people.
func Markdown(rep Report) string {
	var b strings.Builder
	verdict := "PASSED"
	if !rep.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "# Drill %s: %s\n\n", rep.Drill, verdict)
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "| %s | %s |\n", k, mdCell(v))
		}
	}
	row("Playbook", rep.Playbook)
	row("Target", rep.Target)
	row("Mode", rep.Mode)
	row("Triggered by", rep.TriggeredBy)
	row("Incident", rep.IncidentID)
	row("Incident workflow", rep.IncidentWorkflowID)
	row("Started", formatTime(rep.StartedAt))
	row("Finished", formatTime(rep.FinishedAt))
	row("Incident state", strings.TrimSpace(rep.State+" "+parens(rep.Reason)))

	b.WriteString("\n## Objectives\n\n| Objective | Target | Measured | Result |\n|---|---|---|---|\n")
	for _, o := range rep.Objectives {
		measured, result := "not reached", "FAIL"
		if o.Reached {
			measured = o.Measured.String()
		}
		if o.Pass {
			result = "pass"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s: %s |\n", o.Name, o.Within, measured, result, mdCell(o.Detail))
	}

	b.WriteString("\n## Phases\n\n| Phase | Start | End | Duration |\n|---|---|---|---|\n")
	if len(rep.Phases) == 0 {
		b.WriteString("| (unknown: the incident status could not be read) | | | |\n")
	}
	for _, p := range rep.Phases {
		if !p.Reached {
			fmt.Fprintf(&b, "| %s | not reached | | |\n", p.Name)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", p.Name, formatTime(p.Start), formatTime(p.End), p.Duration)
	}

	b.WriteString("\n## Approvals\n\n")
	if len(rep.AutoApproved) == 0 {
		b.WriteString("The drill approved no step.\n")
	}
	for _, a := range rep.AutoApproved {
		if a.Accepted {
			fmt.Fprintf(&b, "- %s approved by %s at %s\n", a.StepID, ApproverSubject, formatTime(a.At))
		} else {
			fmt.Fprintf(&b, "- %s: approval by %s NOT accepted: %s\n", a.StepID, ApproverSubject, mdCell(a.Rejection))
		}
	}
	for _, s := range rep.WaitedForPeople {
		fmt.Fprintf(&b, "- %s waited for a person (not in auto_approve)\n", s)
	}
	list(&b, "Failures", rep.Failures)
	list(&b, "Notes", rep.Notes)
	return b.String()
}

func list(w io.Writer, title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## %s\n\n", title)
	for _, s := range items {
		fmt.Fprintf(w, "- %s\n", mdCell(s))
	}
}

func parens(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// mdCell keeps a value on one table row.
// mdCell makes text from the workflow (reasons, errors, details) inert
// Markdown, with the incident report's escaping.
func mdCell(s string) string { return report.Text(s) }
