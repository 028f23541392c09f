// Package yamlfile reads a YAML document node by node for a validating
// loader (the controls and drills files): it collects every error with the
// file and line it is about, so that a user fixes a file in one pass.
package yamlfile

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is an error at a line of a file.
type Error struct {
	File string
	Line int
	Msg  string
}

// Error implements error as "file:line: message".
func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Reader collects the errors found reading the nodes of File.
type Reader struct {
	File string
	Errs []error
}

// Errorf records an error at n's line (0 when n is nil).
func (r *Reader) Errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	r.Errs = append(r.Errs, &Error{File: r.File, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Fields returns the key → value nodes of a mapping, reporting a node that
// is not a mapping, unknown keys (allowed lists the known ones; none: the
// mapping must be empty) and keys given twice.
func (r *Reader) Fields(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		r.Errorf(n, "%s must be a mapping", what)
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch _, dup := out[k.Value]; {
		case !slices.Contains(allowed, k.Value):
			if len(allowed) == 0 {
				r.Errorf(k, "%s: unknown field %q (this check takes no parameters)", what, k.Value)
			} else {
				r.Errorf(k, "%s: unknown field %q (allowed: %s)", what, k.Value, strings.Join(allowed, ", "))
			}
		case dup:
			r.Errorf(k, "%s: field %q given twice", what, k.Value)
		default:
			out[k.Value] = v
		}
	}
	return out
}

// Str returns a scalar's value ("" for a nil node), reporting a node that
// is not a single value.
func (r *Reader) Str(n *yaml.Node, what string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		r.Errorf(n, "%s must be a single value", what)
		return ""
	}
	return n.Value
}

// List returns a sequence's items (nil for a nil node), reporting a node
// that is not a list.
func (r *Reader) List(n *yaml.Node, what string) []*yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		r.Errorf(n, "%s must be a list", what)
		return nil
	}
	return n.Content
}

// Duration returns a positive duration (0 for a nil node), reporting
// anything else; examples complete the message ("like 60s, 10m or 168h").
func (r *Reader) Duration(n *yaml.Node, what, examples string) time.Duration {
	if n == nil {
		return 0
	}
	s := r.Str(n, what)
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		r.Errorf(n, "%s: %q is not a positive duration like %s", what, s, examples)
		return 0
	}
	return d
}
