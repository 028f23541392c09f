package playbooks

import (
	"cmp"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/severity"
)

//go:embed *.yaml
var embedded embed.FS

// ErrNotFound is returned by [Set.Get] for an unknown playbook or version.
var ErrNotFound = errors.New("playbooks: playbook not found")

// Error is one validation error, located in a playbook file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Set is a validated collection of playbooks, by name and version.
type Set struct {
	byName map[string][]*Playbook // versions sorted ascending
}

// Embedded loads the playbooks shipped in the binary.
func Embedded() (*Set, error) { return Load(embedded) }

// EmbeddedFS is the folder of the embedded playbook files (what
// [Embedded] loads), for tools that read them one by one.
func EmbeddedFS() fs.FS { return embedded }

// LoadDir loads the playbooks (*.yaml, *.yml) of a folder.
func LoadDir(dir string) (*Set, error) { return Load(os.DirFS(dir)) }

// Load loads and validates every *.yaml and *.yml file at the root of fsys.
// It reports every problem found, each as an [*Error] (joined).
func Load(fsys fs.FS) (*Set, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read playbook folder: %w", err)
	}
	set := &Set{byName: map[string][]*Playbook{}}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || (path.Ext(name) != ".yaml" && path.Ext(name) != ".yml") {
			continue
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("read playbook %s: %w", name, err))
			continue
		}
		pb, perrs := Parse(name, b)
		if len(perrs) > 0 {
			errs = append(errs, perrs...)
			continue
		}
		for _, other := range set.byName[pb.Name] {
			if other.Version == pb.Version {
				errs = append(errs, &Error{File: name, Line: 1, Msg: fmt.Sprintf("playbook %s version %s also defined in %s", pb.Name, pb.Version, other.File)})
			}
		}
		set.byName[pb.Name] = append(set.byName[pb.Name], pb)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, vs := range set.byName {
		slices.SortFunc(vs, func(a, b *Playbook) int { return compareVersions(a.Version, b.Version) })
	}
	return set, nil
}

// Get returns playbook name at version; version "" is the highest version.
func (s *Set) Get(name, version string) (*Playbook, error) {
	vs := s.byName[name]
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if version == "" {
		return vs[len(vs)-1], nil
	}
	for _, p := range vs {
		if p.Version == version {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: %q version %q", ErrNotFound, name, version)
}

// FromFile parses and validates one playbook file as a set of one. file
// names it in errors.
func FromFile(file string, src []byte) (*Set, error) {
	pb, errs := Parse(file, src)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Set{byName: map[string][]*Playbook{pb.Name: {pb}}}, nil
}

// Versions returns the versions of playbook name, lowest first.
func (s *Set) Versions(name string) []*Playbook { return slices.Clone(s.byName[name]) }

// Names returns the playbook names, sorted.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.byName))
	for n := range s.byName {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// compareVersions orders dotted versions numerically where they are numbers.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		ai, aerr := strconv.Atoi(as[i])
		bi, berr := strconv.Atoi(bs[i])
		if aerr == nil && berr == nil {
			if c := cmp.Compare(ai, bi); c != 0 {
				return c
			}
			continue
		}
		if c := strings.Compare(as[i], bs[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(as), len(bs))
}

var (
	idRE   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

// parser collects the errors of one file.
type parser struct {
	file string
	errs []error
	pb   *Playbook
	// seen maps step ids to their line.
	seen map[string]int
	// avail are the steps (id → action) whose outputs later steps may use.
	avail map[string]activities.Action
	// compensable are the steps with a compensation, for `compensates`.
	compensable map[string]bool
	// selfAction is the action of the step whose compensation is checked.
	selfAction string
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Byte budgets of a playbook: a resolved playbook is recorded in every
// incident's history and carried across continue-as-new, so it must stay
// small next to the server's payload limits (the shipped ones are 3 to 4
// KB of YAML).
const (
	// MaxPlaybookBytes bounds a playbook file.
	MaxPlaybookBytes = 64 << 10
	// MaxPlaybookEncodedBytes bounds a parsed playbook encoded as JSON
	// (YAML anchors can make it larger than its file).
	MaxPlaybookEncodedBytes = 96 << 10
)

// Parse parses and validates one playbook file. file names it in errors.
func Parse(file string, src []byte) (*Playbook, []error) {
	p := &parser{file: file, seen: map[string]int{}, avail: map[string]activities.Action{}, compensable: map[string]bool{}}
	if len(src) > MaxPlaybookBytes {
		return nil, []error{&Error{File: file, Msg: fmt.Sprintf("playbook is %d bytes, over its budget of %d bytes", len(src), MaxPlaybookBytes)}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, []error{&Error{File: file, Line: 0, Msg: fmt.Sprintf("parse yaml: %v", err)}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		p.errorf(&doc, "a playbook is a YAML mapping")
		return nil, p.errs
	}
	p.playbook(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if b, err := json.Marshal(p.pb); err != nil || len(b) > MaxPlaybookEncodedBytes {
		return nil, []error{&Error{File: file, Msg: fmt.Sprintf("playbook is %d bytes encoded, over its budget of %d bytes", len(b), MaxPlaybookEncodedBytes)}}
	}
	return p.pb, nil
}

// fields returns the key → value nodes of a mapping, reporting unknown and
// duplicate keys. The allowed keys are those of the schema (schema.go).
func (p *parser) fields(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(allowed, k.Value) {
			p.errorf(k, "unknown field %q in %s (allowed: %s)", k.Value, what, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.errorf(k, "field %q given twice in %s", k.Value, what)
			continue
		}
		out[k.Value] = v
	}
	return out
}

func (p *parser) str(n *yaml.Node, what string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be a scalar", what)
		return ""
	}
	return n.Value
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	if n == nil {
		return false
	}
	b, err := strconv.ParseBool(p.str(n, what))
	if err != nil {
		p.errorf(n, "%s must be true or false", what)
	}
	return b
}

func (p *parser) integer(n *yaml.Node, what string, lo, hi int) int {
	if n == nil {
		return 0
	}
	i, err := strconv.Atoi(p.str(n, what))
	if err != nil || i < lo || i > hi {
		p.errorf(n, "%s must be an integer in [%d, %d]", what, lo, hi)
	}
	return i
}

func (p *parser) duration(n *yaml.Node, what string) time.Duration {
	if n == nil {
		return 0
	}
	d, err := time.ParseDuration(p.str(n, what))
	if err != nil || d <= 0 {
		p.errorf(n, "%s must be a positive duration like 30s, 15m or 4h", what)
	}
	return d
}

func (p *parser) strings(n *yaml.Node, what string) []string {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list", what)
		return nil
	}
	var out []string
	for _, c := range n.Content {
		if s := p.str(c, what); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) stringMap(n *yaml.Node, what string) (map[string]string, map[string]*yaml.Node) {
	out, nodes := map[string]string{}, map[string]*yaml.Node{}
	if n == nil {
		return out, nodes
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return out, nodes
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := out[k.Value]; dup {
			p.errorf(k, "%s: %q given twice", what, k.Value)
		}
		out[k.Value] = p.str(v, what+"."+k.Value)
		nodes[k.Value] = v
	}
	return out, nodes
}

func (p *parser) playbook(n *yaml.Node) {
	f := p.fields(n, "playbook", names(playbookFields)...)
	pb := &Playbook{File: p.file}
	p.pb = pb
	pb.Name = p.str(f["name"], "name")
	if !nameRE.MatchString(pb.Name) {
		p.errorf(cmp.Or(f["name"], n), "name %q must be lowercase letters, digits and dashes", pb.Name)
	}
	pb.Version = p.str(f["version"], "version")
	if pb.Version == "" {
		p.errorf(cmp.Or(f["version"], n), "version is required")
	}
	pb.Description = p.str(f["description"], "description")
	if pb.Description == "" {
		p.errorf(cmp.Or(f["description"], n), "description is required")
	}
	pb.SeverityDefault = p.str(f["severity_default"], "severity_default")
	if !severity.Valid(pb.SeverityDefault) {
		p.errorf(cmp.Or(f["severity_default"], n), "severity_default %q must be critical, high, medium, low or info", pb.SeverityDefault)
	}
	pb.Drill = p.boolean(f["drill"], "drill")
	pb.Escalation = p.strings(f["escalation"], "escalation")
	if len(pb.Escalation) == 0 {
		pb.Escalation = slices.Clone(DefaultEscalation)
	}
	ph := f["phases"]
	if ph == nil {
		p.errorf(n, "phases are required")
		return
	}
	if ph.Kind != yaml.MappingNode {
		p.errorf(ph, "phases must be a mapping of the six phases in order")
		return
	}
	next := 0
	for i := 0; i+1 < len(ph.Content); i += 2 {
		k, v := ph.Content[i], ph.Content[i+1]
		idx := slices.Index(Phases, k.Value)
		switch {
		case idx < 0:
			p.errorf(k, "unknown phase %q (phases: %s)", k.Value, strings.Join(Phases, ", "))
			continue
		case idx < next:
			p.errorf(k, "phase %q out of order (order: %s)", k.Value, strings.Join(Phases, ", "))
			continue
		}
		for ; next < idx; next++ {
			p.errorf(k, "phase %q missing before %q", Phases[next], k.Value)
			pb.Phases = append(pb.Phases, Phase{Name: Phases[next]})
		}
		pb.Phases = append(pb.Phases, p.phase(k.Value, v))
		next = idx + 1
	}
	for ; next < len(Phases); next++ {
		p.errorf(ph, "phase %q missing", Phases[next])
	}
}

func (p *parser) phase(name string, n *yaml.Node) Phase {
	ph := Phase{Name: name}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return ph
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "phase %s must be a list of steps", name)
		return ph
	}
	for _, c := range n.Content {
		if c.Kind == yaml.MappingNode && len(c.Content) == 2 && c.Content[0].Value == "parallel" {
			ph.Entries = append(ph.Entries, p.parallel(c.Content[1]))
			continue
		}
		s := p.step(c, nil)
		p.publish(s)
		ph.Entries = append(ph.Entries, Entry{Step: &s})
	}
	return ph
}

func (p *parser) parallel(n *yaml.Node) Entry {
	if n.Kind != yaml.SequenceNode || len(n.Content) < 2 {
		p.errorf(n, "parallel must list at least two steps")
		return Entry{}
	}
	var group []Step
	siblings := map[string]bool{}
	for _, c := range n.Content {
		if c.Kind == yaml.MappingNode && len(c.Content) == 2 && c.Content[0].Value == "parallel" {
			p.errorf(c, "parallel groups cannot be nested")
			continue
		}
		s := p.step(c, siblings)
		siblings[s.ID] = true
		group = append(group, s)
	}
	// Outputs of a group become visible only after the whole group.
	for _, s := range group {
		p.publish(s)
	}
	return Entry{Parallel: group}
}

// publish makes a step's outputs and compensation visible to later steps.
func (p *parser) publish(s Step) {
	if a, err := activities.Lookup(s.Action); err == nil && s.ID != "" {
		p.avail[s.ID] = a
	}
	if s.Compensation != nil {
		p.compensable[s.ID] = true
	}
}

func (p *parser) step(n *yaml.Node, siblings map[string]bool) Step {
	f := p.fields(n, "step", names(stepFields)...)
	s := Step{Line: n.Line}
	s.ID = p.str(f["id"], "id")
	switch {
	case !idRE.MatchString(s.ID):
		p.errorf(cmp.Or(f["id"], n), "step id %q must match %s", s.ID, idRE)
	case p.seen[s.ID] != 0:
		p.errorf(f["id"], "step id %q reused (first at line %d)", s.ID, p.seen[s.ID])
	default:
		p.seen[s.ID] = n.Line
	}
	s.Action = p.str(f["action"], "action")
	act, err := activities.Lookup(s.Action)
	if err != nil || act.Internal {
		p.errorf(cmp.Or(f["action"], n), "step %s: unknown action %q", s.ID, s.Action)
		return s
	}
	params, pnodes := p.stringMap(f["params"], "params")
	s.Params = p.params(s.ID, act, params, pnodes, cmp.Or(f["params"], n), siblings, "")
	if w := f["when"]; w != nil {
		s.When = p.str(w, "when")
		p.template(w, s.ID, s.When, siblings, "")
	}
	if a := f["approval"]; a != nil {
		s.Approval = p.approval(s.ID, a)
	}
	s.ApprovalWaived = p.str(f["approval_waived"], "approval_waived")
	if r := f["risk"]; r != nil {
		s.Risk = p.str(r, "risk")
		switch {
		case !slices.Contains([]string{RiskNormal, RiskHigh}, s.Risk):
			p.errorf(r, "step %s: risk %q must be %s or %s", s.ID, s.Risk, RiskNormal, RiskHigh)
		case s.Risk == RiskHigh && s.Approval == nil:
			p.errorf(r, "step %s: risk high needs an approval (the approver's second factor is what it asks for)", s.ID)
		}
	}
	if act.Destructive && s.Approval == nil && s.ApprovalWaived == "" && !p.pb.Drill {
		p.errorf(n, "step %s: destructive action %s needs an approval (or approval_waived: <reason>)", s.ID, s.Action)
	}
	s.Timeout = p.duration(f["timeout"], "timeout")
	if r := f["retry"]; r != nil {
		rf := p.fields(r, "retry", names(retryFields)...)
		s.Retry = &Retry{
			MaxAttempts:     int32(p.integer(rf["max_attempts"], "max_attempts", 1, 20)),
			InitialInterval: p.duration(rf["initial_interval"], "initial_interval"),
			MaximumInterval: p.duration(rf["maximum_interval"], "maximum_interval"),
		}
	}
	s.OnFailure = cmp.Or(p.str(f["on_failure"], "on_failure"), OnFailureAbort)
	if !slices.Contains([]string{OnFailureAbort, OnFailureContinue, OnFailureEscalate}, s.OnFailure) {
		p.errorf(f["on_failure"], "step %s: on_failure %q must be abort, continue or escalate", s.ID, s.OnFailure)
	}
	s.Compensation = p.compensation(s, act, f["compensation"], siblings)
	if c := f["compensates"]; c != nil {
		s.Compensates = p.str(c, "compensates")
		if !p.compensable[s.Compensates] {
			p.errorf(c, "step %s: compensates %q, which is not an earlier step with a compensation", s.ID, s.Compensates)
		}
	}
	return s
}

// params checks the given parameters by decoding them into the action's
// params struct (see [activities.Action.CheckParams]) and completes them
// with the declared defaults. Templates are checked here and decoded after
// the workflow renders them. self is the step whose own outputs may be
// referenced (compensations only).
func (p *parser) params(id string, act activities.Action, given map[string]string, nodes map[string]*yaml.Node, at *yaml.Node, siblings map[string]bool, self string) map[string]string {
	out := map[string]string{}
	for _, k := range slices.Sorted(mapsKeys(given)) {
		if _, ok := act.Param(k); ok {
			out[k] = given[k]
			if activities.Template(given[k]) {
				p.template(nodes[k], id, given[k], siblings, self)
			}
		}
	}
	for _, e := range act.CheckParams(given) {
		switch {
		case e.Unknown:
			p.errorf(nodes[e.Name], "step %s: action %s has no parameter %q", id, act.Name, e.Name)
		case e.Missing:
			p.errorf(at, "step %s: action %s needs parameter %q", id, act.Name, e.Name)
		case e.Name != "":
			p.errorf(nodes[e.Name], "step %s: %v", id, e.Err)
		default:
			p.errorf(at, "step %s: %s: %v", id, act.Name, e.Err)
		}
	}
	for _, pd := range act.Params {
		if _, ok := out[pd.Name]; !ok && pd.Default != "" {
			out[pd.Name] = pd.Default
		}
	}
	return out
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// template checks a template's syntax and its step references: the step must
// have run before (not a sibling in the same parallel group) and its action
// must declare the output.
func (p *parser) template(n *yaml.Node, id, text string, siblings map[string]bool, self string) {
	refs, err := checkTemplate(text)
	if err != nil {
		p.errorf(n, "step %s: %v", id, err)
		return
	}
	for _, r := range refs {
		a, ok := p.avail[r.Step]
		if self != "" && r.Step == self {
			var lerr error
			a, lerr = activities.Lookup(p.selfAction)
			ok = lerr == nil
		}
		switch {
		case siblings[r.Step]:
			p.errorf(n, "step %s: .Steps.%s.%s refers to a step of the same parallel group", id, r.Step, r.Output)
		case !ok:
			p.errorf(n, "step %s: .Steps.%s.%s refers to no earlier step", id, r.Step, r.Output)
		case !a.HasOutput(r.Output):
			p.errorf(n, "step %s: .Steps.%s.%s: action %s has no output %q (has: %s)", id, r.Step, r.Output, a.Name, r.Output, strings.Join(a.Outputs, ", "))
		}
	}
}

func (p *parser) approval(id string, n *yaml.Node) *Approval {
	f := p.fields(n, "approval", names(approvalFields)...)
	a := &Approval{
		Roles:          p.strings(f["roles"], "roles"),
		Quorum:         1,
		Timeout:        time.Hour,
		OnTimeout:      cmp.Or(p.str(f["on_timeout"], "on_timeout"), TimeoutEscalate),
		DrillOnly:      p.boolean(f["drill_only"], "drill_only"),
		MaxEscalations: 3,
	}
	if len(a.Roles) == 0 {
		p.errorf(n, "step %s: approval without roles", id)
	}
	if q := f["quorum"]; q != nil {
		a.Quorum = p.integer(q, "quorum", 1, 10)
	}
	if t := f["timeout"]; t != nil {
		a.Timeout = p.duration(t, "approval timeout")
	}
	if m := f["max_escalations"]; m != nil {
		a.MaxEscalations = p.integer(m, "max_escalations", 0, 10)
	}
	switch a.OnTimeout {
	case TimeoutEscalate, TimeoutDeny:
	case TimeoutAutoApprove:
		if !a.DrillOnly && !p.pb.Drill {
			p.errorf(f["on_timeout"], "step %s: on_timeout auto_approve needs drill_only: true (or a drill playbook)", id)
		}
	default:
		p.errorf(f["on_timeout"], "step %s: on_timeout %q must be escalate, deny or auto_approve", id, a.OnTimeout)
	}
	return a
}

func (p *parser) compensation(s Step, act activities.Action, n *yaml.Node, siblings map[string]bool) *Compensation {
	p.selfAction = s.Action
	if n == nil {
		if act.Compensation == "" {
			return nil
		}
		comp, _ := activities.Lookup(act.Compensation)
		c := &Compensation{Action: comp.Name, Params: map[string]string{}}
		for _, pd := range comp.Params {
			if v, ok := s.Params[pd.Name]; ok {
				c.Params[pd.Name] = v
			}
		}
		return c
	}
	if n.Kind == yaml.ScalarNode && n.Value == "none" {
		return nil
	}
	f := p.fields(n, "compensation", names(compensationFields)...)
	name := p.str(f["action"], "compensation action")
	comp, err := activities.Lookup(name)
	if err != nil || comp.Internal {
		p.errorf(cmp.Or(f["action"], n), "step %s: compensation %q is not an action", s.ID, name)
		return nil
	}
	given, nodes := p.stringMap(f["params"], "compensation params")
	// Parameters not given are taken from the forward step, by name.
	for _, pd := range comp.Params {
		if _, ok := given[pd.Name]; !ok {
			if v, ok := s.Params[pd.Name]; ok {
				given[pd.Name] = v
				nodes[pd.Name] = n
			}
		}
	}
	return &Compensation{Action: comp.Name, Params: p.params(s.ID, comp, given, nodes, n, siblings, s.ID)}
}
