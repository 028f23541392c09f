package playbooks

import (
	"fmt"
	"strings"
)

// Mermaid returns the playbook's flow as a Mermaid flowchart: one subgraph
// per phase, steps in order (a parallel group in its own subgraph),
// approval gates as hexagons, and each step's compensation as a dashed
// edge to the action that undoes it.
func (p *Playbook) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	var prev []string // the steps the next entry follows
	var comps []string
	for _, ph := range p.Phases {
		fmt.Fprintf(&b, "  subgraph p_%s [%s]\n", ph.Name, ph.Name)
		var edges []string
		if len(ph.Entries) == 0 {
			id := "p_" + ph.Name + "_empty"
			fmt.Fprintf(&b, "    %s[\"no steps\"]\n", id)
			if len(prev) > 0 {
				edges = append(edges, fmt.Sprintf("  %s --> %s", strings.Join(prev, " & "), id))
			}
			prev = []string{id}
		}
		for i, e := range ph.Entries {
			steps := e.Steps()
			indent := "    "
			if e.Parallel != nil {
				fmt.Fprintf(&b, "    subgraph p_%s_%d [parallel]\n", ph.Name, i+1)
				indent = "      "
			}
			var ids []string
			for _, s := range steps {
				b.WriteString(indent + mermaidNode(s) + "\n")
				ids = append(ids, "s_"+s.ID)
				if s.Compensation != nil {
					comps = append(comps, fmt.Sprintf("  s_%s -.->|undo| c_%s([%q])", s.ID, s.ID, s.Compensation.Action))
				}
			}
			if e.Parallel != nil {
				b.WriteString("    end\n")
			}
			if len(prev) > 0 {
				edges = append(edges, fmt.Sprintf("  %s --> %s", strings.Join(prev, " & "), strings.Join(ids, " & ")))
			}
			prev = ids
		}
		b.WriteString("  end\n")
		for _, e := range edges {
			b.WriteString(e + "\n")
		}
	}
	for _, c := range comps {
		b.WriteString(c + "\n")
	}
	return b.String()
}

// mermaidNode is a step's node: its id, action and what guards it.
func mermaidNode(s Step) string {
	lines := []string{"<b>" + s.ID + "</b>", s.Action}
	if s.When != "" {
		lines = append(lines, "if its condition holds")
	}
	if a := s.Approval; a != nil {
		lines = append(lines, fmt.Sprintf("approval: %s ×%d", strings.Join(a.Roles, " or "), a.Quorum))
	}
	if s.Risk == RiskHigh {
		lines = append(lines, "high risk: second factor")
	}
	if s.OnFailure != OnFailureAbort {
		lines = append(lines, "on failure: "+s.OnFailure)
	}
	if s.Compensates != "" {
		lines = append(lines, "lifts "+s.Compensates)
	}
	label := strings.ReplaceAll(strings.Join(lines, "<br/>"), `"`, "#quot;")
	if s.Approval != nil {
		return fmt.Sprintf("s_%s{{\"%s\"}}", s.ID, label)
	}
	return fmt.Sprintf("s_%s[\"%s\"]", s.ID, label)
}
