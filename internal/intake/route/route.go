// Package route decides which playbook an alert runs and which incident it
// joins. A YAML rules file lists ordered rules (the first match wins) that
// match on the detector, the rule name (exact or regular expression),
// labels, a minimum severity and asset tags, with a default playbook; see
// default_rules.yaml, the rules shipped with the platform. Every decision
// carries the reason, so operators can test rules against an alert.
package route

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/internal/intake/parse"
	"github.com/iru-responder/responder/internal/severity"
)

//go:embed default_rules.yaml
var defaultRules []byte

// DefaultRulesYAML returns the rules file shipped with the platform.
func DefaultRulesYAML() []byte { return slices.Clone(defaultRules) }

// Default returns the parsed shipped rules.
func Default() (*Rules, error) { return Parse(defaultRules) }

// Input is what routing looks at: the parsed alert and its mapped asset.
type Input struct {
	Source    string
	Rule      string
	Severity  string
	Labels    map[string]string
	Asset     string
	AssetTags []string
}

// Decision is the outcome of [Rules.Route].
type Decision struct {
	// Playbook is the playbook the incident runs.
	Playbook string
	// RuleName is the matching rule ("" for the default playbook).
	RuleName string
	// Reason explains the match in words.
	Reason string
	// Skipped says, for each earlier rule, why it did not match.
	Skipped []string
	// CorrelateBy lists the parts of the correlation key.
	CorrelateBy []string
}

// Key is the correlation key of in under d: the CorrelateBy parts joined
// with ":"; by default playbook + ":" + canonical asset. The incident's
// workflow id is workflows.IncidentWorkflowID(key).
func (d Decision) Key(in Input) string {
	parts := make([]string, 0, len(d.CorrelateBy))
	for _, p := range d.CorrelateBy {
		switch p {
		case PartPlaybook:
			parts = append(parts, d.Playbook)
		case PartAsset:
			parts = append(parts, in.Asset)
		case PartRule:
			parts = append(parts, in.Rule)
		case PartSource:
			parts = append(parts, in.Source)
		default:
			parts = append(parts, in.Labels[strings.TrimPrefix(p, PartLabelPrefix)])
		}
	}
	return strings.Join(parts, ":")
}

// Correlation key parts.
const (
	PartPlaybook    = "playbook"
	PartAsset       = "asset"
	PartRule        = "rule"
	PartSource      = "source"
	PartLabelPrefix = "label:"
)

// DefaultCorrelateBy is the correlation key of a rule that sets none.
var DefaultCorrelateBy = []string{PartPlaybook, PartAsset}

// File is the YAML rules file.
type File struct {
	// DefaultPlaybook runs when no rule matches.
	DefaultPlaybook string `yaml:"default_playbook"`
	// DefaultCorrelateBy is the key of the default playbook's incidents.
	DefaultCorrelateBy []string `yaml:"default_correlate_by"`
	Rules              []Rule   `yaml:"rules"`
}

// Rule is one routing rule; every condition set must hold.
type Rule struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Match       Match    `yaml:"match"`
	Playbook    string   `yaml:"playbook"`
	CorrelateBy []string `yaml:"correlate_by"`
}

// Match holds a rule's conditions.
type Match struct {
	// Sources: the alert's detector is one of these.
	Sources []string `yaml:"sources"`
	// Rule: the rule name equals this.
	Rule string `yaml:"rule"`
	// RuleRegex: the rule name matches this regular expression.
	RuleRegex string `yaml:"rule_regex"`
	// Labels: each label equals the value.
	Labels map[string]string `yaml:"labels"`
	// LabelRegex: each label is present and matches the expression.
	LabelRegex map[string]string `yaml:"label_regex"`
	// LabelAtLeast: each label is a number at least the value (thresholds).
	LabelAtLeast map[string]float64 `yaml:"label_at_least"`
	// MinSeverity: the severity is at least this.
	MinSeverity string `yaml:"min_severity"`
	// AssetTags: the mapped asset carries all these tags.
	AssetTags []string `yaml:"asset_tags"`
}

// Rules are parsed, validated rules.
type Rules struct {
	file  File
	rules []compiled
}

type compiled struct {
	Rule
	ruleRe  *regexp.Regexp
	labelRe map[string]*regexp.Regexp
	// keys, labelReKeys and atLeastKeys are the sorted label names of
	// Labels, LabelRegex and LabelAtLeast, checked in that order for
	// stable reasons.
	keys, labelReKeys, atLeastKeys []string
}

var playbookName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Load reads and parses a rules file.
func Load(path string) (*Rules, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("route: read rules: %w", err)
	}
	return Parse(b)
}

// Parse parses and validates a rules file. Unknown keys are errors.
func Parse(data []byte) (*Rules, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("route: parse rules: %w", err)
	}
	if !playbookName.MatchString(f.DefaultPlaybook) {
		return nil, fmt.Errorf("route: default_playbook %q: want a name like container-compromise", f.DefaultPlaybook)
	}
	if len(f.DefaultCorrelateBy) == 0 {
		f.DefaultCorrelateBy = DefaultCorrelateBy
	}
	if err := checkParts(f.DefaultCorrelateBy); err != nil {
		return nil, fmt.Errorf("route: default_correlate_by: %w", err)
	}
	rs := &Rules{file: f}
	seen := map[string]bool{}
	for i, r := range f.Rules {
		c, err := compile(r)
		if err != nil {
			return nil, fmt.Errorf("route: rule %d (%q): %w", i+1, r.Name, err)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("route: rule %d: duplicate name %q", i+1, r.Name)
		}
		seen[r.Name] = true
		rs.rules = append(rs.rules, c)
	}
	return rs, nil
}

func compile(r Rule) (compiled, error) {
	c := compiled{Rule: r, labelRe: map[string]*regexp.Regexp{}}
	if strings.TrimSpace(r.Name) == "" {
		return c, errors.New("name is required")
	}
	if !playbookName.MatchString(r.Playbook) {
		return c, fmt.Errorf("playbook %q: want a name like container-compromise", r.Playbook)
	}
	m := r.Match
	for _, s := range m.Sources {
		if _, err := parse.ForFormat(s); err != nil {
			return c, fmt.Errorf("sources: unknown source %q", s)
		}
	}
	if m.Rule != "" && m.RuleRegex != "" {
		return c, errors.New("set rule or rule_regex, not both")
	}
	if m.RuleRegex != "" {
		re, err := regexp.Compile(m.RuleRegex)
		if err != nil {
			return c, fmt.Errorf("rule_regex: %w", err)
		}
		c.ruleRe = re
	}
	for k, expr := range m.LabelRegex {
		re, err := regexp.Compile(expr)
		if err != nil {
			return c, fmt.Errorf("label_regex %s: %w", k, err)
		}
		c.labelRe[k] = re
	}
	if m.MinSeverity != "" && severity.Rank(m.MinSeverity) < 0 {
		return c, fmt.Errorf("min_severity %q: want critical, high, medium, low or info", m.MinSeverity)
	}
	if len(c.CorrelateBy) == 0 {
		c.CorrelateBy = DefaultCorrelateBy
	}
	if err := checkParts(c.CorrelateBy); err != nil {
		return c, fmt.Errorf("correlate_by: %w", err)
	}
	c.keys = slices.Sorted(maps.Keys(m.Labels))
	c.labelReKeys = slices.Sorted(maps.Keys(m.LabelRegex))
	c.atLeastKeys = slices.Sorted(maps.Keys(m.LabelAtLeast))
	return c, nil
}

func checkParts(parts []string) error {
	for _, p := range parts {
		switch {
		case p == PartPlaybook, p == PartAsset, p == PartRule, p == PartSource:
		case strings.HasPrefix(p, PartLabelPrefix) && len(p) > len(PartLabelPrefix):
		default:
			return fmt.Errorf("unknown key part %q (want playbook, asset, rule, source or label:NAME)", p)
		}
	}
	return nil
}

// File returns the rules as parsed (with defaults filled in).
func (rs *Rules) File() File { return rs.file }

// Route returns the playbook for in: the first rule whose conditions all
// hold, or the default playbook, with the reasons in words (Reason,
// Skipped). The intake, which does not keep the words, uses [Rules.Choose].
func (rs *Rules) Route(in Input) Decision { return rs.route(in, true) }

// Choose is [Rules.Route] without the words: the same playbook, rule and
// correlation, with Reason and Skipped empty. Building the words cost the
// intake a tenth of its processor time per alert.
func (rs *Rules) Choose(in Input) Decision { return rs.route(in, false) }

func (rs *Rules) route(in Input, explain bool) Decision {
	var skipped []string
	for _, r := range rs.rules {
		why, ok := r.match(in, explain)
		if ok {
			d := Decision{Playbook: r.Playbook, RuleName: r.Name, Skipped: skipped, CorrelateBy: r.CorrelateBy}
			if explain {
				d.Reason = fmt.Sprintf("rule %q matched: %s", r.Name, why)
			}
			return d
		}
		if explain {
			skipped = append(skipped, fmt.Sprintf("rule %q: %s", r.Name, why))
		}
	}
	d := Decision{Playbook: rs.file.DefaultPlaybook, Skipped: skipped, CorrelateBy: rs.file.DefaultCorrelateBy}
	if explain {
		d.Reason = "no rule matched; default playbook"
	}
	return d
}

// match reports whether in meets all conditions; with explain, why lists
// the conditions met, or names the first one that failed (without, why
// is empty).
func (r *compiled) match(in Input, explain bool) (why string, ok bool) {
	m := r.Match
	var met []string
	// no and yes build the words only when they are asked for.
	no := func(format string, args ...any) (string, bool) {
		if !explain {
			return "", false
		}
		return fmt.Sprintf(format, args...), false
	}
	yes := func(format string, args ...any) {
		if explain {
			met = append(met, fmt.Sprintf(format, args...))
		}
	}
	if len(m.Sources) > 0 {
		if !slices.Contains(m.Sources, in.Source) {
			return no("source %q not in %v", in.Source, m.Sources)
		}
		yes("source %s", in.Source)
	}
	if m.Rule != "" {
		if in.Rule != m.Rule {
			return no("rule name %q is not %q", in.Rule, m.Rule)
		}
		yes("rule name is %q", m.Rule)
	}
	if r.ruleRe != nil {
		if !r.ruleRe.MatchString(in.Rule) {
			return no("rule name %q does not match /%s/", in.Rule, m.RuleRegex)
		}
		yes("rule name matches /%s/", m.RuleRegex)
	}
	for _, k := range r.keys {
		if v, ok := in.Labels[k]; !ok || v != m.Labels[k] {
			return no("label %s is not %q", k, m.Labels[k])
		}
		yes("label %s=%q", k, m.Labels[k])
	}
	for _, k := range r.labelReKeys {
		v, ok := in.Labels[k]
		if !ok || !r.labelRe[k].MatchString(v) {
			return no("label %s does not match /%s/", k, m.LabelRegex[k])
		}
		yes("label %s matches /%s/", k, m.LabelRegex[k])
	}
	for _, k := range r.atLeastKeys {
		min := m.LabelAtLeast[k]
		n, err := strconv.ParseFloat(strings.TrimSpace(in.Labels[k]), 64)
		if err != nil || n < min {
			return no("label %s=%q is not at least %g", k, in.Labels[k], min)
		}
		yes("label %s=%s at least %g", k, in.Labels[k], min)
	}
	if m.MinSeverity != "" {
		if severity.Rank(in.Severity) < severity.Rank(m.MinSeverity) {
			return no("severity %s below %s", in.Severity, m.MinSeverity)
		}
		yes("severity %s at least %s", in.Severity, m.MinSeverity)
	}
	for _, tag := range m.AssetTags {
		if !slices.Contains(in.AssetTags, tag) {
			return no("asset %q lacks tag %q", in.Asset, tag)
		}
		yes("asset tag %s", tag)
	}
	if !explain {
		return "", true
	}
	if len(met) == 0 {
		return "no conditions", true
	}
	return strings.Join(met, ", "), true
}
