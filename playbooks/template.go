package playbooks

import (
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
)

// Data is what step templates see. Templates use text/template syntax with
// missingkey=error: {{ .Asset }}, {{ .Labels.instance }},
// {{ index .Labels "some-label" }}, {{ .Steps.<step>.<output> }}.
type Data struct {
	IncidentID string
	Asset      string
	Severity   string
	Playbook   string
	Drill      bool
	// OpenedAt is when the incident was opened (RFC 3339, UTC).
	OpenedAt string
	// Labels are the labels of the first alert.
	Labels map[string]string
	// Alert is the first alert.
	Alert AlertData
	// Steps are the outputs of the steps that succeeded so far, by step id.
	// A skipped or failed step has no entry, so a reference to it fails.
	Steps map[string]map[string]string
}

// AlertData is the part of an alert templates may use.
type AlertData struct {
	Rule        string
	Source      string
	Fingerprint string
	Summary     string
}

// topFields are the [Data] fields a template may reference, with the number
// of further identifiers each takes (-1: none or via index).
var topFields = map[string]int{
	"IncidentID": 0, "Asset": 0, "Severity": 0, "Playbook": 0, "Drill": 0, "OpenedAt": 0,
	"Labels": 1, "Alert": 1, "Steps": 2,
}

var alertFields = map[string]bool{"Rule": true, "Source": true, "Fingerprint": true, "Summary": true}

func parseTemplate(text string) (*template.Template, error) {
	return template.New("t").Option("missingkey=error").Parse(text)
}

// Render executes a template against data. It is deterministic: the same
// text and data always give the same string.
func Render(text string, data Data) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := parseTemplate(text)
	if err != nil {
		return "", fmt.Errorf("parse template %q: %w", text, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render template %q: %w", text, err)
	}
	return b.String(), nil
}

// RenderBool renders a `when` condition, which must give "true" or "false".
func RenderBool(text string, data Data) (bool, error) {
	s, err := Render(text, data)
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(s) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("condition %q rendered %q, want true or false", text, s)
}

// stepRef is a reference to {{ .Steps.<Step>.<Output> }}.
type stepRef struct{ Step, Output string }

// checkTemplate parses text and checks every field reference statically.
// It returns the step outputs the template refers to.
func checkTemplate(text string) ([]stepRef, error) {
	t, err := parseTemplate(text)
	if err != nil {
		return nil, fmt.Errorf("bad template: %w", err)
	}
	var refs []stepRef
	var walk func(n parse.Node) error
	checkIdents := func(idents []string) error {
		if len(idents) == 0 {
			return nil
		}
		n, ok := topFields[idents[0]]
		if !ok {
			return fmt.Errorf("unknown template field .%s (have .IncidentID, .Asset, .Severity, .Playbook, .Drill, .OpenedAt, .Labels, .Alert, .Steps)", idents[0])
		}
		rest := idents[1:]
		switch idents[0] {
		case "Labels":
			if len(rest) > 1 {
				return fmt.Errorf("bad reference .%s: labels are one level", strings.Join(idents, "."))
			}
		case "Alert":
			if len(rest) != 1 || !alertFields[rest[0]] {
				return fmt.Errorf("bad reference .%s: want .Alert.Rule, .Source, .Fingerprint or .Summary", strings.Join(idents, "."))
			}
		case "Steps":
			if len(rest) != n {
				return fmt.Errorf("bad reference .%s: want .Steps.<step>.<output>", strings.Join(idents, "."))
			}
			refs = append(refs, stepRef{Step: rest[0], Output: rest[1]})
		default:
			if len(rest) != 0 {
				return fmt.Errorf("bad reference .%s: .%s has no fields", strings.Join(idents, "."), idents[0])
			}
		}
		return nil
	}
	walk = func(n parse.Node) error {
		switch n := n.(type) {
		case nil:
			return nil
		case *parse.ListNode:
			if n == nil {
				return nil
			}
			for _, c := range n.Nodes {
				if err := walk(c); err != nil {
					return err
				}
			}
		case *parse.ActionNode:
			return walk(n.Pipe)
		case *parse.IfNode:
			if err := walk(n.Pipe); err != nil {
				return err
			}
			if err := walk(n.List); err != nil {
				return err
			}
			return walk(n.ElseList)
		case *parse.PipeNode:
			if n == nil {
				return nil
			}
			if len(n.Decl) > 0 {
				return fmt.Errorf("variables are not allowed in playbook templates")
			}
			for _, c := range n.Cmds {
				if err := walk(c); err != nil {
					return err
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				if err := walk(a); err != nil {
					return err
				}
			}
		case *parse.FieldNode:
			return checkIdents(n.Ident)
		case *parse.VariableNode:
			if len(n.Ident) > 0 && n.Ident[0] == "$" {
				return checkIdents(n.Ident[1:])
			}
			return fmt.Errorf("variables are not allowed in playbook templates")
		case *parse.DotNode:
			return fmt.Errorf("bare {{ . }} is not allowed; reference a field")
		case *parse.ChainNode:
			return fmt.Errorf("chained field access is not allowed")
		case *parse.TextNode, *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.IdentifierNode, *parse.NilNode:
			return nil
		default:
			return fmt.Errorf("%s is not allowed in playbook templates (only fields, functions and if/else)", n)
		}
		return nil
	}
	if err := walk(t.Root); err != nil {
		return nil, err
	}
	return refs, nil
}
