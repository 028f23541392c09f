package pve

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// SchemaSHA256 is the sha256 of the uncompressed Proxmox VE 9.1 API schema
// (apidata.js of pve-docs 9.1.3, as JSON) embedded in this package.
const SchemaSHA256 = "1ec4166e67a5a3fff111107f534c47c7e923274f1b4675f8e407adaa024238e9"

//go:embed schema/pve-9.1-apidata.json.gz
var schemaGz []byte

// apiSchema is the parsed API tree, indexed for routing and validation.
type apiSchema struct {
	// byPath maps a schema path template ("/nodes/{node}/lxc") to its methods.
	byPath map[string]map[string]*methodInfo
	// templates holds every path template split in segments, for matching.
	templates []schemaTemplate
}

type schemaTemplate struct {
	path string
	segs []string
}

type methodInfo struct {
	Parameters  paramSchema `json:"parameters"`
	Permissions *permSchema `json:"permissions"`
	Protected   any         `json:"protected"`
	Name        string      `json:"name"`
}

type paramSchema struct {
	AdditionalProperties any                    `json:"additionalProperties"`
	Properties           map[string]*propSchema `json:"properties"`
}

type permSchema struct {
	Check []any  `json:"check"`
	User  string `json:"user"`
}

type propSchema struct {
	Type       string          `json:"type"`
	Format     json.RawMessage `json:"format"`
	Optional   any             `json:"optional"`
	Enum       []string        `json:"enum"`
	Pattern    string          `json:"pattern"`
	Minimum    any             `json:"minimum"`
	Maximum    any             `json:"maximum"`
	MinLength  *int            `json:"minLength"`
	MaxLength  *int            `json:"maxLength"`
	DefaultKey any             `json:"default_key"`
	Alias      string          `json:"alias"`

	formatName string
	formatDict map[string]*propSchema
	re         *regexp.Regexp
}

type schemaNode struct {
	Path     string                 `json:"path"`
	Info     map[string]*methodInfo `json:"info"`
	Children []*schemaNode          `json:"children"`
}

var (
	schemaOnce   sync.Once
	schemaParsed *apiSchema
	schemaErr    error
)

// schemaJSON returns the uncompressed embedded schema.
func schemaJSON() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(schemaGz))
	if err != nil {
		return nil, fmt.Errorf("open embedded pve schema: %w", err)
	}
	defer func() { _ = zr.Close() }()
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("read embedded pve schema: %w", err)
	}
	return b, nil
}

// loadSchema parses the embedded schema once.
func loadSchema() (*apiSchema, error) {
	schemaOnce.Do(func() {
		raw, err := schemaJSON()
		if err != nil {
			schemaErr = err
			return
		}
		var roots []*schemaNode
		if err := json.Unmarshal(raw, &roots); err != nil {
			schemaErr = fmt.Errorf("decode pve schema: %w", err)
			return
		}
		s := &apiSchema{byPath: map[string]map[string]*methodInfo{}}
		var walk func(n *schemaNode)
		walk = func(n *schemaNode) {
			if n.Info != nil {
				for _, mi := range n.Info {
					for _, p := range mi.Parameters.Properties {
						p.prepare()
					}
				}
				s.byPath[n.Path] = n.Info
				s.templates = append(s.templates, schemaTemplate{path: n.Path, segs: splitPath(n.Path)})
			}
			for _, c := range n.Children {
				walk(c)
			}
		}
		// The root "/" has no entry in apidata; list it explicitly.
		s.byPath["/"] = map[string]*methodInfo{"GET": {Permissions: &permSchema{User: "all"}}}
		for _, r := range roots {
			walk(r)
		}
		schemaParsed = s
	})
	return schemaParsed, schemaErr
}

// prepare resolves the format (named or property-string dictionary) and
// compiles the pattern of a property, recursively.
func (p *propSchema) prepare() {
	if len(p.Format) > 0 {
		if p.Format[0] == '"' {
			_ = json.Unmarshal(p.Format, &p.formatName)
		} else if p.Format[0] == '{' {
			_ = json.Unmarshal(p.Format, &p.formatDict)
			for _, sp := range p.formatDict {
				sp.prepare()
			}
		}
	}
	if p.Pattern != "" {
		p.re = compilePerlPattern(p.Pattern)
	}
}

// compilePerlPattern turns a Perl regex as printed by PVE ("(?^:...)") into an
// anchored Go regexp; PVE matches parameters with m/^$pattern$/. Patterns RE2
// cannot express are skipped (nil).
func compilePerlPattern(p string) *regexp.Regexp {
	p = strings.ReplaceAll(p, "(?^i:", "(?i:")
	p = strings.ReplaceAll(p, "(?^:", "(?:")
	p = strings.ReplaceAll(p, `\z`, `$`)
	p = strings.ReplaceAll(p, `\Z`, `$`)
	p = strings.ReplaceAll(p, `\A`, `^`)
	re, err := regexp.Compile("^(?:" + p + ")$")
	if err != nil {
		return nil
	}
	return re
}

func (p *propSchema) optional() bool {
	switch v := p.Optional.(type) {
	case float64:
		return v != 0
	case string:
		return v == "1"
	case bool:
		return v
	}
	return false
}

func splitPath(p string) []string {
	parts := strings.Split(p, "/")
	out := parts[:0]
	for _, s := range parts {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// match finds the schema template for a decoded API path (relative to
// /api2/json). Literal segments win over parameters, as in PVE's RESTHandler.
func (s *apiSchema) match(path string) (string, map[string]string, bool) {
	segs := splitPath(path)
	if len(segs) == 0 {
		return "/", map[string]string{}, true
	}
	var best *schemaTemplate
	bestLiterals := -1
	for i := range s.templates {
		t := &s.templates[i]
		if len(t.segs) != len(segs) {
			continue
		}
		literals := 0
		ok := true
		for j, ts := range t.segs {
			if strings.HasPrefix(ts, "{") {
				continue
			}
			if ts != segs[j] {
				ok = false
				break
			}
			literals++
		}
		if ok && literals > bestLiterals {
			best, bestLiterals = t, literals
		}
	}
	if best == nil {
		return "", nil, false
	}
	params := map[string]string{}
	for j, ts := range best.segs {
		if strings.HasPrefix(ts, "{") && strings.HasSuffix(ts, "}") {
			params[ts[1:len(ts)-1]] = segs[j]
		}
	}
	return best.path, params, true
}

// paramError collects PVE-style parameter errors.
type paramError map[string]string

// lookupProp finds the schema of a parameter, expanding "net[n]" families.
func lookupProp(props map[string]*propSchema, name string) *propSchema {
	if p, ok := props[name]; ok {
		return p
	}
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	if i == len(name) || i == 0 {
		return nil
	}
	n, err := strconv.Atoi(name[i:])
	if err != nil || n > 255 || (len(name[i:]) > 1 && name[i] == '0') {
		return nil
	}
	return props[name[:i]+"[n]"]
}

// validateParams checks string parameters against a method schema, as
// PVE::JSONSchema::validate does, and returns the per-parameter errors.
func validateParams(mi *methodInfo, params map[string]string) paramError {
	errs := paramError{}
	props := mi.Parameters.Properties
	for name, val := range params {
		p := lookupProp(props, name)
		if p == nil {
			errs[name] = "property is not defined in schema and the schema does not allow additional properties"
			continue
		}
		if msg := checkValue(p, name, val); msg != "" {
			errs[name] = msg
		}
	}
	for name, p := range props {
		if strings.HasSuffix(name, "[n]") || p.optional() {
			continue
		}
		if _, ok := params[name]; !ok {
			errs[name] = "property is missing and it is not optional"
		}
	}
	return errs
}

// checkValue validates one value and returns the PVE error text or "".
func checkValue(p *propSchema, name, val string) string {
	switch p.Type {
	case "boolean":
		if _, ok := parseBool(val); !ok {
			return fmt.Sprintf("type check ('boolean') failed - got '%s'", val)
		}
		return ""
	case "integer":
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return fmt.Sprintf("type check ('integer') failed - got '%s'", val)
		}
		if msg := checkRange(p, float64(n)); msg != "" {
			return msg
		}
	case "number":
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || math.IsNaN(f) {
			return fmt.Sprintf("type check ('number') failed - got '%s'", val)
		}
		if msg := checkRange(p, f); msg != "" {
			return msg
		}
	}
	if p.MinLength != nil && len(val) < *p.MinLength {
		return fmt.Sprintf("value must be at least %d characters long", *p.MinLength)
	}
	if p.MaxLength != nil && len(val) > *p.MaxLength {
		return fmt.Sprintf("value may only be %d characters long", *p.MaxLength)
	}
	if len(p.Enum) > 0 {
		found := false
		for _, e := range p.Enum {
			if e == val {
				found = true
				break
			}
		}
		if !found {
			return fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", val, strings.Join(p.Enum, ", "))
		}
	}
	if p.re != nil && !p.re.MatchString(val) {
		return "value does not match the regex pattern"
	}
	if p.formatDict != nil {
		if _, msg := parsePropertyString(p.formatDict, name, val); msg != "" {
			return msg
		}
		return ""
	}
	if p.formatName != "" {
		return checkFormat(p.formatName, val)
	}
	return ""
}

func checkRange(p *propSchema, v float64) string {
	if lo, ok := numberOf(p.Minimum); ok && v < lo {
		return fmt.Sprintf("value must have a minimum value of %s", fmtNum(lo))
	}
	if hi, ok := numberOf(p.Maximum); ok && v > hi {
		return fmt.Sprintf("value must have a maximum value of %s", fmtNum(hi))
	}
	return ""
}

func numberOf(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// parseBool accepts the spellings PVE accepts for booleans.
func parseBool(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "on", "yes":
		return true, true
	case "0", "false", "off", "no":
		return false, true
	}
	return false, false
}

// parsePropertyString parses "k=v,k2=v2" against a property-string format,
// as PVE::JSONSchema::parse_property_string does.
func parsePropertyString(format map[string]*propSchema, name, val string) (map[string]string, string) {
	defaultKey := ""
	for k, sp := range format {
		if f, ok := numberOf(sp.DefaultKey); ok && f != 0 {
			defaultKey = k
		}
	}
	out := map[string]string{}
	var errs []string
	for _, part := range strings.Split(val, ",") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			if defaultKey == "" {
				return nil, "invalid format - value without key, but schema does not define a default key\n"
			}
			k, v = defaultKey, part
		}
		if sp := format[k]; sp != nil && sp.Alias != "" {
			k = sp.Alias
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Sprintf("invalid format - duplicate key in comma-separated list property: %s\n", k)
		}
		out[k] = v
	}
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sp := format[k]
		if sp == nil {
			errs = append(errs, fmt.Sprintf("%s.%s: property is not defined in schema and the schema does not allow additional properties", name, k))
			continue
		}
		if msg := checkValue(sp, name+"."+k, out[k]); msg != "" {
			errs = append(errs, fmt.Sprintf("%s.%s: %s", name, k, msg))
		}
	}
	fkeys := make([]string, 0, len(format))
	for k := range format {
		fkeys = append(fkeys, k)
	}
	sort.Strings(fkeys)
	for _, k := range fkeys {
		sp := format[k]
		if sp.Alias != "" || sp.optional() {
			continue
		}
		if _, ok := out[k]; !ok {
			errs = append(errs, fmt.Sprintf("%s.%s: property is missing and it is not optional", name, k))
		}
	}
	if len(errs) > 0 {
		return nil, "invalid format - format error\n" + strings.Join(errs, "\n") + "\n"
	}
	return out, ""
}

// printPropertyString renders a parsed property string the way
// PVE::JSONSchema::print_property_string does: default key first (bare),
// then the other keys in sorted order.
func printPropertyString(format map[string]*propSchema, kv map[string]string) string {
	defaultKey := ""
	for k, sp := range format {
		if f, ok := numberOf(sp.DefaultKey); ok && f != 0 {
			defaultKey = k
		}
	}
	var parts []string
	if v, ok := kv[defaultKey]; ok && defaultKey != "" {
		parts = append(parts, v)
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		if k != defaultKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+kv[k])
	}
	return strings.Join(parts, ",")
}

var (
	reConfigID  = regexp.MustCompile(`(?i)^[a-z][a-z0-9_-]+$`)
	reVMID      = regexp.MustCompile(`^[1-9][0-9]{2,8}$`)
	reNode      = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`)
	reStorageID = regexp.MustCompile(`(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$`)
	reTag       = regexp.MustCompile(`(?i)^[a-z0-9_][a-z0-9_\-+.]*$`)
	reUserID    = regexp.MustCompile(`^[^\s:/]+@[A-Za-z][A-Za-z0-9\.\-_]+$`)
	reRealm     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\.\-_]+$`)
	reIface     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{1,20}([:.]\d+)?$`)
	reVolumeID  = regexp.MustCompile(`^[^:\s]+:.+$`)
	reMAC       = regexp.MustCompile(`(?i)^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$`)
	reDNSName   = regexp.MustCompile(`^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)$`)
	reTokenName = regexp.MustCompile(`(?i)^[A-Za-z][A-Za-z0-9\.\-_]+$`)
	reFWProto   = regexp.MustCompile(`^(?:[a-z0-9][a-z0-9\-]*|\d+)$`)
	reFWPort    = regexp.MustCompile(`^[a-zA-Z0-9\-]+(?::\d+)?$`)
	rePoolID    = regexp.MustCompile(`^[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+){0,2}$`)
)

// splitList splits a PVE list value (PVE::Tools::split_list).
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == 0
	})
}

// checkFormat implements the common named formats of PVE::JSONSchema;
// unknown formats are accepted.
func checkFormat(format, v string) string {
	if strings.HasSuffix(format, "-list") {
		base := strings.TrimSuffix(format, "-list")
		if base == "pve-tag" {
			for _, t := range splitList(v) {
				if !reTag.MatchString(t) {
					return fmt.Sprintf("invalid characters in tag '%s'", t)
				}
			}
			return ""
		}
		for _, item := range splitList(v) {
			if msg := checkFormat(base, item); msg != "" {
				return msg
			}
		}
		return ""
	}
	switch format {
	case "pve-configid":
		if !reConfigID.MatchString(v) {
			return fmt.Sprintf("invalid configuration ID '%s'", v)
		}
	case "pve-vmid":
		if !reVMID.MatchString(v) {
			return "value does not look like a valid VM ID"
		}
	case "pve-node":
		if !reNode.MatchString(v) {
			return "value does not look like a valid node name"
		}
	case "pve-storage-id":
		if !reStorageID.MatchString(v) {
			return fmt.Sprintf("storage ID '%s' contains illegal characters", v)
		}
	case "pve-userid":
		if len(v) > 64 || !reUserID.MatchString(v) {
			return fmt.Sprintf("value '%s' does not look like a valid user name", v)
		}
	case "pve-realm":
		if !reRealm.MatchString(v) {
			return fmt.Sprintf("value '%s' does not look like a valid realm", v)
		}
	case "pve-tokenid":
		user, tok, ok := strings.Cut(v, "!")
		if !ok || !reUserID.MatchString(user) || !reTokenName.MatchString(tok) {
			return fmt.Sprintf("value '%s' does not look like a valid token ID", v)
		}
	case "pve-iface":
		if !reIface.MatchString(v) {
			return fmt.Sprintf("invalid network interface name '%s'", v)
		}
	case "pve-volume-id":
		if !reVolumeID.MatchString(v) {
			return fmt.Sprintf("unable to parse volume ID '%s'", v)
		}
	case "pve-poolid":
		if !rePoolID.MatchString(v) {
			return fmt.Sprintf("invalid pool ID '%s'", v)
		}
	case "mac-addr":
		if !reMAC.MatchString(v) {
			return fmt.Sprintf("value '%s' does not look like a valid unicast MAC address", v)
		}
	case "ip":
		if net.ParseIP(v) == nil {
			return fmt.Sprintf("value '%s' does not look like a valid IP address", v)
		}
	case "ipv4":
		if ip := net.ParseIP(v); ip == nil || ip.To4() == nil {
			return fmt.Sprintf("value '%s' does not look like a valid IPv4 address", v)
		}
	case "ipv6":
		if ip := net.ParseIP(v); ip == nil || ip.To4() != nil {
			return fmt.Sprintf("value '%s' does not look like a valid IPv6 address", v)
		}
	case "CIDR", "IPorCIDR":
		if _, _, err := net.ParseCIDR(v); err != nil && (format == "CIDR" || net.ParseIP(v) == nil) {
			return fmt.Sprintf("value '%s' does not look like a valid CIDR network", v)
		}
	case "pve-ipv4-config":
		if v != "dhcp" && v != "manual" {
			if ip, _, err := net.ParseCIDR(v); err != nil || ip.To4() == nil {
				return fmt.Sprintf("value '%s' does not look like a valid IPv4 network configuration", v)
			}
		}
	case "pve-ipv6-config":
		if v != "dhcp" && v != "manual" && v != "auto" {
			if ip, _, err := net.ParseCIDR(v); err != nil || ip.To4() != nil {
				return fmt.Sprintf("value '%s' does not look like a valid IPv6 network configuration", v)
			}
		}
	case "dns-name":
		if !reDNSName.MatchString(v) {
			return fmt.Sprintf("value '%s' does not look like a valid DNS name", v)
		}
	case "pve-fw-protocol-spec":
		if !reFWProto.MatchString(v) {
			return fmt.Sprintf("unknown protocol '%s'", v)
		}
	case "pve-fw-dport-spec", "pve-fw-sport-spec":
		for _, item := range strings.Split(v, ",") {
			if !reFWPort.MatchString(item) {
				return fmt.Sprintf("invalid port '%s'", item)
			}
		}
	case "pve-fw-addr-spec":
		if msg := checkFWAddr(v); msg != "" {
			return msg
		}
	}
	return ""
}

// checkFWAddr accepts IPs, CIDRs, ranges, comma lists, +ipset and alias names.
func checkFWAddr(v string) string {
	if strings.HasPrefix(v, "+") || reConfigID.MatchString(v) || strings.HasPrefix(v, "dc/") || strings.HasPrefix(v, "guest/") {
		return ""
	}
	for _, item := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		for _, a := range []string{lo, hi} {
			if a == "" && isRange {
				return fmt.Sprintf("invalid address range '%s'", item)
			}
			if a == "" {
				continue
			}
			if net.ParseIP(a) == nil {
				if _, _, err := net.ParseCIDR(a); err != nil {
					return fmt.Sprintf("invalid IP address '%s'", a)
				}
			}
		}
	}
	return ""
}
