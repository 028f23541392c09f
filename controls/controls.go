// Package controls is the controls file: the IRU Security Hardening
// Guide's controls as data. Each control names the guide's section, what
// is checked (a check kind and its parameters), against which targets
// (containers, realms, keys), the severity and the playbook a failure
// opens (control-drift by default), and the SOC 2 / ISO 27001 clauses it
// supports, from the file's mapping table.
//
// The default file, controls.yaml, is embedded in the binaries; a file
// given by path (IRU_CONTROLS_FILE) replaces it, as IRU_PLAYBOOKS_DIR
// replaces the playbooks. Files are validated when loaded: every problem
// is reported at once, each as "file:line: message" ([Error]).
//
// The format:
//
//	frameworks:            # clause → what it asks (the mapping table)
//	  "SOC2 CC6.6": Logical access security measures against outside threats
//	controls:
//	  - id: net-ingress-ports          # lowercase letters, digits, dashes
//	    section: "1. Network Security" # the guide's section
//	    title: what is checked, in one line
//	    check: pve.ingress             # one of [Kinds]
//	    severity: high                 # info, low, medium, high, critical
//	    playbook: control-drift        # optional; the default
//	    targets: ["tag:dmz"]           # optional; meaning depends on the kind
//	    params: {ports: [443]}         # the kind's parameters ([Params])
//	    frameworks: ["SOC2 CC6.6"]     # keys of the mapping table
package controls

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/internal/yamlfile"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/severity"
)

//go:embed controls.yaml
var embedded []byte

// EmbeddedName is the name the embedded file is reported under.
const EmbeddedName = "controls/controls.yaml"

// DefaultPlaybook is the playbook a failing control opens unless it names another.
const DefaultPlaybook = "control-drift"

// Check kinds.
const (
	// KindPVEDatacenterFirewall: the datacenter firewall's enable option is 1.
	KindPVEDatacenterFirewall = "pve.datacenter_firewall"
	// KindPVEIngress: each target container's firewall is enabled, its
	// inbound policy DROP (or REJECT), and its enabled inbound ACCEPT rules
	// open only Params.Ports from Params.AllowedSources.
	KindPVEIngress = "pve.ingress"
	// KindPVELateral: no enabled ACCEPT rule of a container admits another
	// container's address, unless Params.AllowPairs lists the pair.
	KindPVELateral = "pve.lateral"
	// KindPVEEgress: each target container's outbound policy is DROP (or
	// REJECT) and each of its outbound ACCEPT rules goes only to
	// Params.AllowedDestinations or only to tcp/udp Params.AllowedPorts.
	KindPVEEgress = "pve.egress"
	// KindPVEManagement: no container has an interface address in
	// Params.ManagementCIDRs or on one of Params.ManagementBridges.
	KindPVEManagement = "pve.management"
	// KindKCOTPAdmins: every user holding one of Params.Roles must present
	// a one-time code (required action CONFIGURE_TOTP, or the realm's
	// browser and direct grant flows require OTP of a role they hold).
	KindKCOTPAdmins = "kc.otp_admins"
	// KindKCTokenLifespan: accessTokenLifespan is at most Params.MaxLifespan.
	KindKCTokenLifespan = "kc.token_lifespan"
	// KindKCBruteForce: bruteForceProtected is true.
	KindKCBruteForce = "kc.brute_force"
	// KindKCDirectGrants: no enabled confidential client has
	// directAccessGrantsEnabled.
	KindKCDirectGrants = "kc.direct_grants"
	// KindKCPasswordPolicy: passwordPolicy is set and contains Params.Policies.
	KindKCPasswordPolicy = "kc.password_policy"
	// KindKeysAge: every managed key of Params.Kinds was rotated within
	// Params.MaxAge, by the ledger's key-change records.
	KindKeysAge = "keys.age"
	// KindPlatformKEK: the evidence KEK is non-extractable in the HSM.
	KindPlatformKEK = "platform.kek_non_extractable"
	// KindPlatformTLS13: the API server refuses TLS 1.2 and accepts TLS 1.3.
	KindPlatformTLS13 = "platform.tls13"
	// KindPlatformLedger: the audit chains verify; yesterday's daily chains
	// carry a signed checkpoint.
	KindPlatformLedger = "platform.ledger"
	// KindPlatformRetention: the evidence retention sweep ran within Params.MaxAge.
	KindPlatformRetention = "platform.retention_sweep"
	// KindPlatformDrills: every shipped playbook was drilled within
	// Params.MaxAge with its objectives met.
	KindPlatformDrills = "platform.drills"
)

// Key kinds of [KindKeysAge].
const (
	KeyIntake         = "intake"
	KeyPVEToken       = "pve-token"
	KeyKCClientSecret = "kc-client-secret"
)

// kinds lists each check kind with the parameters it takes.
var kinds = map[string][]string{
	KindPVEDatacenterFirewall: nil,
	KindPVEIngress:            {"ports", "allowed_sources"},
	KindPVELateral:            {"allow_pairs"},
	KindPVEEgress:             {"allowed_destinations", "allowed_ports"},
	KindPVEManagement:         {"management_cidrs", "management_bridges"},
	KindKCOTPAdmins:           {"roles"},
	KindKCTokenLifespan:       {"max_lifespan"},
	KindKCBruteForce:          nil,
	KindKCDirectGrants:        nil,
	KindKCPasswordPolicy:      {"policies"},
	KindKeysAge:               {"max_age", "kinds"},
	KindPlatformKEK:           nil,
	KindPlatformTLS13:         {"addr"},
	KindPlatformLedger:        nil,
	KindPlatformRetention:     {"max_age"},
	KindPlatformDrills:        {"max_age"},
}

// required lists the parameters a kind cannot do without.
var required = map[string][]string{
	KindPVEIngress:        {"ports"},
	KindPVEManagement:     {"management_cidrs"},
	KindKCOTPAdmins:       {"roles"},
	KindKCTokenLifespan:   {"max_lifespan"},
	KindKeysAge:           {"max_age", "kinds"},
	KindPlatformRetention: {"max_age"},
	KindPlatformDrills:    {"max_age"},
}

// Kinds returns the check kinds, sorted.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Pair is one allowed container-to-container path of [KindPVELateral]:
// From ("*": any container) may reach To on Port (0: any port).
type Pair struct {
	From, To string
	Port     int
}

// String returns the pair as written in the file.
func (p Pair) String() string {
	port := "*"
	if p.Port != 0 {
		port = strconv.Itoa(p.Port)
	}
	return p.From + " -> " + p.To + ":" + port
}

// Allows reports whether the pair allows from to reach to on port.
func (p Pair) Allows(from, to string, port int) bool {
	return (p.From == "*" || p.From == from) && p.To == to && (p.Port == 0 || p.Port == port)
}

// Params are the parameters of a check; each kind reads its own (see the
// Kind constants).
type Params struct {
	Ports               []int          `json:",omitempty"`
	AllowedSources      []netip.Prefix `json:",omitempty"`
	AllowPairs          []Pair         `json:",omitempty"`
	AllowedDestinations []netip.Prefix `json:",omitempty"`
	AllowedPorts        []int          `json:",omitempty"`
	ManagementCIDRs     []netip.Prefix `json:",omitempty"`
	ManagementBridges   []string       `json:",omitempty"`
	Roles               []string       `json:",omitempty"`
	MaxLifespan         time.Duration  `json:",omitempty"`
	Policies            []string       `json:",omitempty"`
	MaxAge              time.Duration  `json:",omitempty"`
	KeyKinds            []string       `json:",omitempty"`
	Addr                string         `json:",omitempty"`
}

// Control is one control of the file.
type Control struct {
	ID       string
	Section  string
	Title    string
	Check    string
	Severity string
	Playbook string
	// Targets select what is read; their meaning depends on the kind
	// (containers: names, vmids or tag:T; realms: realm names); empty:
	// the kind's default (every container, the configured realm).
	Targets    []string `json:",omitempty"`
	Params     Params
	Frameworks []string `json:",omitempty"`
	// Line is the control's line in the file.
	Line int `json:"-"`
}

// Summary returns the control as the activities' contract describes it.
func (c Control) Summary() activities.ControlSummary {
	return activities.ControlSummary{ID: c.ID, Section: c.Section, Title: c.Title, Check: c.Check,
		Severity: c.Severity, Playbook: c.Playbook, Frameworks: slices.Clone(c.Frameworks)}
}

// File is a loaded, valid controls file.
type File struct {
	// Name is the file name used in errors.
	Name string
	// Digest is the SHA-256 (hex) of the file's bytes.
	Digest string
	// Frameworks maps each clause to what it asks, in file order.
	Frameworks []Framework
	Controls   []Control
}

// Framework is one row of the mapping table.
type Framework struct {
	Clause, Text string
}

// Get returns the control with id.
func (f *File) Get(id string) (Control, bool) {
	for _, c := range f.Controls {
		if c.ID == id {
			return c, true
		}
	}
	return Control{}, false
}

// Select returns the controls with the given ids in the order given (all
// of them, in file order, when ids is empty); an unknown id is an error.
func (f *File) Select(ids []string) ([]Control, error) {
	if len(ids) == 0 {
		return slices.Clone(f.Controls), nil
	}
	var out []Control
	var unknown []string
	for _, id := range ids {
		c, ok := f.Get(id)
		if !ok {
			unknown = append(unknown, id)
			continue
		}
		out = append(out, c)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("controls: no control %s in %s", strings.Join(unknown, ", "), f.Name)
	}
	return out, nil
}

// ClauseText returns what a clause of the mapping table asks.
func (f *File) ClauseText(clause string) string {
	for _, fw := range f.Frameworks {
		if fw.Clause == clause {
			return fw.Text
		}
	}
	return ""
}

// Error is one problem of a controls file, at a line.
type Error = yamlfile.Error

// Embedded loads the controls file embedded in the binaries.
func Embedded() (*File, error) { return Parse(EmbeddedName, embedded) }

// EmbeddedSource returns the embedded file's bytes.
func EmbeddedSource() []byte { return slices.Clone(embedded) }

// Load reads and validates the controls file at path; "" loads the embedded one.
func Load(path string) (*File, error) {
	if path == "" {
		return Embedded()
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("controls: %w", err)
	}
	return Parse(path, src)
}

// PlaybookLister is the part of a playbook set [File.CheckPlaybooks] needs.
type PlaybookLister interface {
	Names() []string
}

// CheckPlaybooks reports every control whose playbook is not in set.
func (f *File) CheckPlaybooks(set PlaybookLister) error {
	names := set.Names()
	var errs []error
	for _, c := range f.Controls {
		if !slices.Contains(names, c.Playbook) {
			errs = append(errs, &Error{File: f.Name, Line: c.Line, Msg: fmt.Sprintf("control %q: playbook %q is not loaded (have %s)", c.ID, c.Playbook, strings.Join(names, ", "))})
		}
	}
	return errors.Join(errs...)
}

var (
	idRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	playbookRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	pairRE     = regexp.MustCompile(`^\s*(\*|[A-Za-z0-9][A-Za-z0-9.\-]*)\s*->\s*([A-Za-z0-9][A-Za-z0-9.\-]*)\s*:\s*(\*|[0-9]+)\s*$`)
	bridgeRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.\-]{0,15}$`)
	addrRE     = regexp.MustCompile(`^[A-Za-z0-9.\-\[\]:]+:[0-9]+$`)
)

// Parse parses and validates a controls file; name names it in errors.
// The error joins every problem found (each an [*Error]).
func Parse(name string, src []byte) (*File, error) {
	p := &parser{Reader: yamlfile.Reader{File: name}, ids: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, &Error{File: name, Line: yamlErrorLine(err), Msg: fmt.Sprintf("parse yaml: %v", err)}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Error{File: name, Line: 1, Msg: "the file is empty; want a mapping with frameworks and controls"}
	}
	f := p.Fields(doc.Content[0], "the file", "frameworks", "controls")
	out := &File{Name: name}
	if fw := f["frameworks"]; fw != nil {
		if fw.Kind != yaml.MappingNode {
			p.Errorf(fw, "frameworks must be a mapping of clause: description")
		} else {
			for i := 0; i+1 < len(fw.Content); i += 2 {
				k, v := fw.Content[i], fw.Content[i+1]
				text := p.str(v, "frameworks."+k.Value)
				switch {
				case strings.TrimSpace(k.Value) == "":
					p.Errorf(k, "frameworks: empty clause")
				case slices.ContainsFunc(out.Frameworks, func(x Framework) bool { return x.Clause == k.Value }):
					p.Errorf(k, "frameworks: clause %q given twice", k.Value)
				case text == "":
					p.Errorf(v, "frameworks: clause %q has no description", k.Value)
				default:
					out.Frameworks = append(out.Frameworks, Framework{Clause: k.Value, Text: text})
				}
			}
		}
	}
	p.frameworks = out.Frameworks
	switch list := f["controls"]; {
	case list == nil:
		p.Errorf(doc.Content[0], "no controls list")
	case list.Kind != yaml.SequenceNode:
		p.Errorf(list, "controls must be a list")
	case len(list.Content) == 0:
		p.Errorf(list, "controls: the list is empty")
	default:
		for _, n := range list.Content {
			if c, ok := p.control(n); ok {
				out.Controls = append(out.Controls, c)
			}
		}
	}
	if len(p.Errs) > 0 {
		return nil, errors.Join(p.Errs...)
	}
	sum := sha256.Sum256(src)
	out.Digest = hex.EncodeToString(sum[:])
	return out, nil
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
	ids        map[string]int
	frameworks []Framework
}

// str is [yamlfile.Reader.Str] without surrounding spaces.
func (p *parser) str(n *yaml.Node, what string) string { return strings.TrimSpace(p.Str(n, what)) }

// strs reads a list of strings, reporting empty and repeated items.
func (p *parser) strs(n *yaml.Node, what string) []string {
	if n == nil {
		return nil
	}
	var out []string
	for _, c := range p.List(n, what) {
		s := p.str(c, what)
		switch {
		case c.Kind != yaml.ScalarNode:
		case s == "":
			p.Errorf(c, "%s: empty item", what)
		case slices.Contains(out, s):
			p.Errorf(c, "%s: %q listed twice", what, s)
		default:
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) prefixes(n *yaml.Node, what string) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range p.strs(n, what) {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				p.Errorf(n.Content[min(i, len(n.Content)-1)], "%s: %q is not a CIDR or an address", what, s)
				continue
			}
			pf = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, pf.Masked())
	}
	return out
}

func (p *parser) ports(n *yaml.Node, what string) []int {
	var out []int
	for i, s := range p.strs(n, what) {
		port, err := strconv.Atoi(s)
		if err != nil || port < 1 || port > 65535 {
			p.Errorf(n.Content[i], "%s: %q is not a port from 1 to 65535", what, s)
			continue
		}
		out = append(out, port)
	}
	return out
}

func (p *parser) control(n *yaml.Node) (Control, bool) {
	before := len(p.Errs)
	f := p.Fields(n, "control", "id", "section", "title", "check", "severity", "playbook", "targets", "params", "frameworks")
	c := Control{Line: n.Line}
	c.ID = p.str(f["id"], "control id")
	what := "control"
	switch {
	case f["id"] == nil:
		p.Errorf(n, "control: no id")
	case !idRE.MatchString(c.ID):
		p.Errorf(f["id"], "control id %q: want lowercase letters, digits and dashes, at most 63, starting with a letter or digit", c.ID)
	default:
		what = fmt.Sprintf("control %q", c.ID)
		if line, dup := p.ids[c.ID]; dup {
			p.Errorf(f["id"], "%s: the id is already used on line %d", what, line)
		}
		p.ids[c.ID] = f["id"].Line
	}
	c.Section = p.str(f["section"], what+": section")
	if c.Section == "" {
		p.Errorf(n, "%s: no section (the hardening guide's section it comes from)", what)
	}
	c.Title = p.str(f["title"], what+": title")
	if c.Title == "" {
		p.Errorf(n, "%s: no title", what)
	}
	c.Check = p.str(f["check"], what+": check")
	allowedParams, known := kinds[c.Check]
	switch {
	case f["check"] == nil:
		p.Errorf(n, "%s: no check (one of %s)", what, strings.Join(Kinds(), ", "))
	case !known:
		p.Errorf(f["check"], "%s: unknown check kind %q (want one of %s)", what, c.Check, strings.Join(Kinds(), ", "))
	}
	c.Severity = p.str(f["severity"], what+": severity")
	if !severity.Valid(c.Severity) {
		at := f["severity"]
		if at == nil {
			at = n
		}
		p.Errorf(at, "%s: severity %q: want one of %s", what, c.Severity, strings.Join(severity.All(), ", "))
	}
	c.Playbook = DefaultPlaybook
	if pb := f["playbook"]; pb != nil {
		c.Playbook = p.str(pb, what+": playbook")
		if !playbookRE.MatchString(c.Playbook) {
			p.Errorf(pb, "%s: playbook %q: want a playbook name (lowercase letters, digits, dashes); leave it out for %s", what, c.Playbook, DefaultPlaybook)
		}
	}
	c.Targets = p.strs(f["targets"], what+": targets")
	if f["targets"] != nil && len(c.Targets) == 0 && f["targets"].Kind == yaml.SequenceNode {
		p.Errorf(f["targets"], "%s: targets is empty; leave it out for the check's default", what)
	}
	c.Frameworks = p.strs(f["frameworks"], what+": frameworks")
	for i, fw := range c.Frameworks {
		if !slices.ContainsFunc(p.frameworks, func(x Framework) bool { return x.Clause == fw }) {
			p.Errorf(f["frameworks"].Content[min(i, len(f["frameworks"].Content)-1)], "%s: framework clause %q is not in the file's frameworks table", what, fw)
		}
	}
	if known {
		c.Params = p.params(f["params"], n, c.Check, allowedParams, what)
	}
	return c, len(p.Errs) == before
}

func (p *parser) params(n, control *yaml.Node, kind string, allowed []string, what string) Params {
	var out Params
	var f map[string]*yaml.Node
	if n != nil {
		f = p.Fields(n, what+": params of "+kind, allowed...)
	}
	for _, r := range required[kind] {
		if f[r] == nil {
			at := n
			if at == nil {
				at = control
			}
			p.Errorf(at, "%s: check %s needs params.%s", what, kind, r)
		}
	}
	what += ": params."
	out.Ports = p.ports(f["ports"], what+"ports")
	out.AllowedPorts = p.ports(f["allowed_ports"], what+"allowed_ports")
	if f["ports"] != nil && len(out.Ports) == 0 && f["ports"].Kind == yaml.SequenceNode && len(f["ports"].Content) == 0 {
		p.Errorf(f["ports"], "%sports is empty: a container would accept nothing; list the ports", what)
	}
	out.AllowedSources = p.prefixes(f["allowed_sources"], what+"allowed_sources")
	out.AllowedDestinations = p.prefixes(f["allowed_destinations"], what+"allowed_destinations")
	out.ManagementCIDRs = p.prefixes(f["management_cidrs"], what+"management_cidrs")
	for i, b := range p.strs(f["management_bridges"], what+"management_bridges") {
		if !bridgeRE.MatchString(b) {
			p.Errorf(f["management_bridges"].Content[i], "%smanagement_bridges: %q is not a bridge name", what, b)
			continue
		}
		out.ManagementBridges = append(out.ManagementBridges, b)
	}
	for i, s := range p.strs(f["allow_pairs"], what+"allow_pairs") {
		m := pairRE.FindStringSubmatch(s)
		if m == nil {
			p.Errorf(f["allow_pairs"].Content[i], "%sallow_pairs: %q: want \"SOURCE -> DEST:PORT\" (SOURCE a container name or *, PORT a number or *)", what, s)
			continue
		}
		pr := Pair{From: m[1], To: m[2]}
		if m[3] != "*" {
			port, err := strconv.Atoi(m[3])
			if err != nil || port < 1 || port > 65535 {
				p.Errorf(f["allow_pairs"].Content[i], "%sallow_pairs: %q: port %s is not from 1 to 65535", what, s, m[3])
				continue
			}
			pr.Port = port
		}
		if pr.From == pr.To {
			p.Errorf(f["allow_pairs"].Content[i], "%sallow_pairs: %q: a container to itself is not lateral movement", what, s)
			continue
		}
		out.AllowPairs = append(out.AllowPairs, pr)
	}
	out.Roles = p.strs(f["roles"], what+"roles")
	out.Policies = p.strs(f["policies"], what+"policies")
	out.MaxLifespan = p.Duration(f["max_lifespan"], what+"max_lifespan", "5m, 24h or 2160h")
	if out.MaxLifespan%time.Second != 0 {
		p.Errorf(f["max_lifespan"], "%smax_lifespan: %s is not whole seconds (Keycloak counts seconds)", what, out.MaxLifespan)
	}
	out.MaxAge = p.Duration(f["max_age"], what+"max_age", "5m, 24h or 2160h")
	for i, k := range p.strs(f["kinds"], what+"kinds") {
		if !slices.Contains([]string{KeyIntake, KeyPVEToken, KeyKCClientSecret}, k) {
			p.Errorf(f["kinds"].Content[i], "%skinds: unknown key kind %q (want %s, %s or %s)", what, k, KeyIntake, KeyPVEToken, KeyKCClientSecret)
			continue
		}
		out.KeyKinds = append(out.KeyKinds, k)
	}
	out.Addr = p.str(f["addr"], what+"addr")
	if out.Addr != "" && !addrRE.MatchString(out.Addr) {
		p.Errorf(f["addr"], "%saddr: %q is not host:port", what, out.Addr)
	}
	return out
}
