// Package drills loads the drill definitions file (drills/drills.yaml,
// embedded in the binaries; the format is described in drills/README.md)
// and implements the activities of the drill workflow
// ([workflows.Drill]): reading the drill incident's status, approving its
// listed steps, and storing the drill report in the evidence locker.
//
// The file is validated when it is loaded: every error names the file, the
// line and what is wrong, and all errors are reported at once.
package drills

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/internal/yamlfile"

	drillsfile "github.com/iru-responder/responder/drills"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// Limits of a drill definition.
const (
	// MinInterval is the shortest schedule interval.
	MinInterval = time.Minute
	// MaxTimeout bounds a drill's incident.
	MaxTimeout = 24 * time.Hour
)

// Error is one problem of a drills file, at a line.
type Error = yamlfile.Error

// Schedule says when a drill runs: cron expressions and/or an interval (at
// least one of them).
type Schedule struct {
	// Cron are cron expressions (minute hour day-of-month month
	// day-of-week, or @daily, @weekly, …).
	Cron []string `json:",omitempty"`
	// Interval runs the drill every Interval (0: none).
	Interval time.Duration `json:",omitempty"`
	// Jitter delays each run by a random time up to Jitter.
	Jitter time.Duration `json:",omitempty"`
	// Timezone is the IANA time zone of the cron expressions ("": UTC).
	Timezone string `json:",omitempty"`
}

// Definition is one drill of the file.
type Definition struct {
	Name            string
	Description     string `json:",omitempty"`
	Playbook        string
	PlaybookVersion string `json:",omitempty"`
	Target          string
	Schedule        Schedule
	// Mode is workflows.DrillModeLive or workflows.DrillModeDryRun.
	Mode string
	// Objectives are in file order.
	Objectives  []workflows.DrillObjective
	AutoApprove []string          `json:",omitempty"`
	Labels      map[string]string `json:",omitempty"`
	// Timeout bounds the drill's incident (0: workflows.DefaultDrillTimeout).
	Timeout time.Duration `json:",omitempty"`
	// Paused creates the schedule paused.
	Paused bool `json:",omitempty"`
	// Line is the drill's line in the file.
	Line int `json:"-"`
}

// Input returns the drill workflow's input for this definition.
func (d Definition) Input(triggeredBy string) workflows.DrillInput {
	return workflows.DrillInput{
		Name: d.Name, Playbook: d.Playbook, PlaybookVersion: d.PlaybookVersion, Target: d.Target, Mode: d.Mode,
		Objectives: slices.Clone(d.Objectives), AutoApprove: slices.Clone(d.AutoApprove), Labels: d.Labels,
		Timeout: d.Timeout, TriggeredBy: triggeredBy,
	}
}

// File is a loaded, valid drills file.
type File struct {
	// Name is the file name used in errors.
	Name   string
	Drills []Definition
}

// Get returns the drill called name.
func (f *File) Get(name string) (Definition, bool) {
	for _, d := range f.Drills {
		if d.Name == name {
			return d, true
		}
	}
	return Definition{}, false
}

// Names returns the drill names in file order.
func (f *File) Names() []string {
	out := make([]string, 0, len(f.Drills))
	for _, d := range f.Drills {
		out = append(out, d.Name)
	}
	return out
}

// Embedded loads the drills file embedded in the binary and checks it
// against set (nil: no playbook checks).
func Embedded(set *playbooks.Set) (*File, error) {
	return Parse(drillsfile.FileName, drillsfile.File, set)
}

// Load reads and parses the drills file at path (see [Parse]).
func Load(path string, set *playbooks.Set) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("drills: %w", err)
	}
	return Parse(path, src, set)
}

// Parse parses and validates a drills file; name names it in errors. When
// set is not nil, each drill's playbook must be in it, and each
// auto_approve entry must be a step of that playbook that has an approval.
// The error joins every problem found (each an [*Error]).
func Parse(name string, src []byte, set *playbooks.Set) (*File, error) {
	p := &parser{Reader: yamlfile.Reader{File: name}, set: set, names: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, &Error{File: name, Line: yamlErrorLine(err), Msg: fmt.Sprintf("parse yaml: %v", err)}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Error{File: name, Line: 1, Msg: "the file is empty; want a mapping with a drills list"}
	}
	f := p.Fields(doc.Content[0], "the file", "drills")
	list := f["drills"]
	if list == nil {
		p.Errorf(doc.Content[0], "no drills list")
	} else if list.Kind != yaml.SequenceNode {
		p.Errorf(list, "drills must be a list")
	} else {
		for _, n := range list.Content {
			if d, ok := p.drill(n); ok {
				p.out = append(p.out, d)
			}
		}
	}
	if len(p.Errs) > 0 {
		return nil, errors.Join(p.Errs...)
	}
	return &File{Name: name, Drills: p.out}, nil
}

// yamlErrorLine extracts the line from a yaml error ("yaml: line 3: …").
func yamlErrorLine(err error) int {
	s := err.Error()
	if i := strings.Index(s, "line "); i >= 0 {
		rest := s[i+len("line "):]
		if j := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); j > 0 {
			if n, err := strconv.Atoi(rest[:j]); err == nil {
				return n
			}
		}
	}
	return 1
}

type parser struct {
	yamlfile.Reader
	set   *playbooks.Set
	out   []Definition
	names map[string]int
}

func (p *parser) drill(n *yaml.Node) (Definition, bool) {
	before := len(p.Errs)
	label := "drill"
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
				label = fmt.Sprintf("drill %q", n.Content[i+1].Value)
			}
		}
	}
	f := p.Fields(n, label, "name", "description", "playbook", "playbook_version", "target", "schedule", "mode",
		"objectives", "auto_approve", "labels", "timeout", "paused")
	d := Definition{Line: n.Line}
	d.Name = p.Str(f["name"], "name")
	what := "drill"
	switch {
	case f["name"] == nil:
		p.Errorf(n, "drill: no name")
	case !workflows.DrillNameRE.MatchString(d.Name):
		p.Errorf(f["name"], "drill name %q: want lowercase letters, digits and dashes, at most 63, starting with a letter or digit", d.Name)
	default:
		what = fmt.Sprintf("drill %q", d.Name)
		if line, dup := p.names[d.Name]; dup {
			p.Errorf(f["name"], "%s: the name is already used on line %d", what, line)
		}
		p.names[d.Name] = f["name"].Line
	}
	d.Description = p.Str(f["description"], what+": description")
	d.Playbook = p.Str(f["playbook"], what+": playbook")
	d.PlaybookVersion = p.Str(f["playbook_version"], what+": playbook_version")
	d.Target = p.Str(f["target"], what+": target")
	if d.Playbook == "" {
		p.Errorf(n, "%s: no playbook", what)
	}
	if d.Target == "" {
		p.Errorf(n, "%s: no target (the drill asset, for example drill-canary)", what)
	}
	d.Mode = p.Str(f["mode"], what+": mode")
	if d.Mode != workflows.DrillModeLive && d.Mode != workflows.DrillModeDryRun {
		at := f["mode"]
		if at == nil {
			at = n
		}
		p.Errorf(at, "%s: mode %q: want %s or %s", what, d.Mode, workflows.DrillModeLive, workflows.DrillModeDryRun)
	}
	if s := f["schedule"]; s == nil {
		p.Errorf(n, "%s: no schedule", what)
	} else {
		d.Schedule = p.schedule(s, what)
	}
	d.Objectives = p.objectives(f["objectives"], n, what)
	for _, c := range p.List(f["auto_approve"], what+": auto_approve") {
		id := p.Str(c, what+": auto_approve")
		if slices.Contains(d.AutoApprove, id) {
			p.Errorf(c, "%s: auto_approve lists %q twice", what, id)
			continue
		}
		d.AutoApprove = append(d.AutoApprove, id)
	}
	if l := f["labels"]; l != nil {
		lf := p.Fields(l, what+": labels", mapKeys(l)...)
		d.Labels = map[string]string{}
		for k, v := range lf {
			d.Labels[k] = p.Str(v, what+": labels."+k)
		}
	}
	d.Timeout = p.Duration(f["timeout"], what+": timeout", "60s, 10m or 168h")
	if d.Timeout > MaxTimeout {
		p.Errorf(f["timeout"], "%s: timeout %s is over %s", what, d.Timeout, MaxTimeout)
	}
	if v := f["paused"]; v != nil {
		b, err := strconv.ParseBool(p.Str(v, what+": paused"))
		if err != nil {
			p.Errorf(v, "%s: paused must be true or false", what)
		}
		d.Paused = b
	}
	if len(p.Errs) == before && p.set != nil {
		p.checkPlaybook(d, f, what)
	}
	return d, len(p.Errs) == before
}

// mapKeys returns the keys of a mapping node (any key is allowed).
func mapKeys(n *yaml.Node) []string {
	var out []string
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, n.Content[i].Value)
		}
	}
	return out
}

func (p *parser) schedule(n *yaml.Node, what string) Schedule {
	what += ": schedule"
	f := p.Fields(n, what, "cron", "interval", "jitter", "timezone")
	var s Schedule
	for _, c := range p.List(f["cron"], what+": cron") {
		expr := p.Str(c, what+": cron")
		if err := CheckCron(expr); err != nil {
			p.Errorf(c, "%s: cron %q: %v", what, expr, err)
			continue
		}
		s.Cron = append(s.Cron, expr)
	}
	s.Interval = p.Duration(f["interval"], what+": interval", "60s, 10m or 168h")
	if s.Interval != 0 && s.Interval < MinInterval {
		p.Errorf(f["interval"], "%s: interval %s is under %s", what, s.Interval, MinInterval)
	}
	s.Jitter = p.Duration(f["jitter"], what+": jitter", "60s, 10m or 168h")
	s.Timezone = p.Str(f["timezone"], what+": timezone")
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			p.Errorf(f["timezone"], "%s: timezone %q is not an IANA time zone", what, s.Timezone)
		}
	}
	if len(s.Cron) == 0 && s.Interval == 0 && f["cron"] == nil && f["interval"] == nil {
		p.Errorf(n, "%s: want cron expressions and/or an interval", what)
	}
	return s
}

func (p *parser) objectives(n, drill *yaml.Node, what string) []workflows.DrillObjective {
	if n == nil {
		p.Errorf(drill, "%s: no objectives (for example contain_within: 60s)", what)
		return nil
	}
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		p.Errorf(n, "%s: objectives must be a mapping of objective: duration", what)
		return nil
	}
	names := workflows.ObjectiveNames()
	var out []workflows.DrillObjective
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !slices.Contains(names, k.Value):
			p.Errorf(k, "%s: unknown objective %q (want one of %s)", what, k.Value, strings.Join(names, ", "))
			continue
		case seen[k.Value]:
			p.Errorf(k, "%s: objective %q given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		if d := p.Duration(v, what+": "+k.Value, "60s, 10m or 168h"); d > 0 {
			out = append(out, workflows.DrillObjective{Name: k.Value, Within: d})
		}
	}
	return out
}

// checkPlaybook checks the drill against the playbook set.
func (p *parser) checkPlaybook(d Definition, f map[string]*yaml.Node, what string) {
	pb, err := p.set.Get(d.Playbook, d.PlaybookVersion)
	if err != nil {
		p.Errorf(f["playbook"], "%s: playbook %q version %q: %v", what, d.Playbook, d.PlaybookVersion, err)
		return
	}
	for i, id := range d.AutoApprove {
		at := f["auto_approve"].Content[i]
		s, _, ok := pb.Step(id)
		switch {
		case !ok:
			p.Errorf(at, "%s: auto_approve: playbook %s has no step %q", what, pb.Name, id)
		case s.Approval == nil:
			p.Errorf(at, "%s: auto_approve: step %q of playbook %s needs no approval", what, id, pb.Name)
		case s.Approval.Quorum > 1:
			p.Errorf(at, "%s: auto_approve: step %q needs a quorum of %d; the drill is one approver", what, id, s.Approval.Quorum)
		}
	}
}
