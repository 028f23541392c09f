// Package parse decodes detector alert payloads (Prometheus Alertmanager
// webhook v4, Falco through Falcosidekick's webhook output, Wazuh's
// integration JSON and the platform's generic format, see GENERIC.md) into
// [Alert] values, exactly: invalid UTF-8, NUL characters, missing required
// fields, wrong types and trailing data are rejected with an [Error] naming
// the offending field. A payload is accepted whole or not at all.
package parse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Source names of the supported detectors (the value of [Alert].Source).
const (
	SourceAlertmanager = "alertmanager"
	SourceFalco        = "falco"
	SourceWazuh        = "wazuh"
	SourceGeneric      = "generic"
)

// Limits bound what one payload may carry.
const (
	// MaxAlerts is the most alerts one payload may carry.
	MaxAlerts = 5000
	// MaxLabels is the most labels one alert may carry after flattening.
	MaxLabels = 512
)

// HintKind says what kind of asset identifier an [AssetHint] carries.
type HintKind string

// Asset hint kinds.
const (
	// HintName is a container or asset name (also aliases, container ids).
	HintName HintKind = "name"
	// HintHostname is a host name.
	HintHostname HintKind = "hostname"
	// HintVMID is a Proxmox VM/CT id.
	HintVMID HintKind = "vmid"
	// HintIP is an IP address (a port, if the detector sent one, is removed).
	HintIP HintKind = "ip"
	// HintNode is a Proxmox node name (used only with a vmid or name).
	HintNode HintKind = "node"
)

// AssetHint is one identifier of the asset an alert is about, as the
// detector named it; the inventory maps hints to a canonical asset.
type AssetHint struct {
	Kind  HintKind
	Value string
	// From is the detector field the value came from (for explanations).
	From string
}

// Alert is one parsed detector alert, before asset mapping and routing.
type Alert struct {
	// Source is the detector kind (SourceAlertmanager …).
	Source string
	// Rule is the detector's rule or alert name.
	Rule string
	// Severity is one of the Severity constants.
	Severity string
	// Summary is a one-line description.
	Summary string
	// Fingerprint identifies the same alert re-sent by the detector.
	Fingerprint string
	// Labels are the detector's labels and fields, flattened to strings.
	Labels map[string]string
	// ObservedAt is when the detector saw the event.
	ObservedAt time.Time
	// Resolved is true for an Alertmanager alert whose status is resolved.
	Resolved bool
	// EndedAt is when a resolved alert ended (Alertmanager's endsAt; zero
	// when the detector did not say).
	EndedAt time.Time
	// AssetHints name the asset, most specific first.
	AssetHints []AssetHint
}

// Error is an input error: what is wrong and where (a JSON path such as
// "alerts[3].startsAt"; empty for the whole body).
type Error struct {
	Field string `json:"field,omitempty"`
	Msg   string `json:"error"`
}

// Error implements error.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func errf(field, format string, args ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// CheckBody rejects an empty body, invalid UTF-8 and NUL bytes. Every
// parser calls it first: encoding/json would silently replace invalid
// UTF-8 with U+FFFD.
func CheckBody(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errf("", "empty body")
	}
	if !utf8.Valid(body) {
		return errf("", "body is not valid UTF-8")
	}
	if bytes.IndexByte(body, 0) >= 0 {
		return errf("", "body contains a NUL byte")
	}
	return nil
}

// decode decodes exactly one JSON value from data into v, numbers as
// json.Number, and maps decoder errors to an [Error] under prefix.
func decode(data []byte, v any, prefix string, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err, prefix)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errf(prefix, "unexpected data after the JSON value")
	}
	return nil
}

func jsonError(err error, prefix string) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return errf(prefix, "invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		return errf(join(prefix, te.Field), "expected %s, got %s", jsonType(te.Type.Kind().String()), te.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errf(prefix, "truncated JSON")
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		if n, err := strconv.Unquote(name); err == nil {
			name = n
		}
		return errf(join(prefix, name), "unknown field")
	}
	return errf(prefix, "invalid JSON: %s", strings.TrimPrefix(msg, "json: "))
}

func jsonType(kind string) string {
	switch kind {
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "number"
	}
	return kind
}

func join(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	}
	return prefix + "." + field
}

func index(prefix string, i int) string { return prefix + "[" + strconv.Itoa(i) + "]" }

// checkStrings rejects NUL characters (decoded from \u0000 escapes) in
// everything an alert carries.
func checkStrings(a *Alert, field string) error {
	for _, s := range [...]struct{ name, v string }{
		{"rule", a.Rule}, {"summary", a.Summary}, {"fingerprint", a.Fingerprint},
	} {
		if strings.IndexByte(s.v, 0) >= 0 {
			return errf(field, "%s contains a NUL character", s.name)
		}
	}
	for k, v := range a.Labels {
		if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
			return errf(field, "label %q contains a NUL character", strings.ReplaceAll(k, "\x00", `\u0000`))
		}
	}
	for _, h := range a.AssetHints {
		if strings.IndexByte(h.Value, 0) >= 0 {
			return errf(field, "%s contains a NUL character", h.From)
		}
	}
	if len(a.Labels) > MaxLabels {
		return errf(field, "more than %d labels", MaxLabels)
	}
	return nil
}

// intField decodes a JSON integer (not a string, not a fraction) kept as
// raw JSON; ok is false when raw is absent or null.
func intField(field string, raw json.RawMessage, lo, hi int64) (n int64, ok bool, err error) {
	t := strings.TrimSpace(string(raw))
	if t == "" || t == "null" {
		return 0, false, nil
	}
	n, perr := strconv.ParseInt(t, 10, 64)
	if perr != nil || n < lo || n > hi {
		return 0, false, errf(field, "must be an integer from %d to %d", lo, hi)
	}
	return n, true, nil
}

// requireString returns an error when v is empty or only white space.
func requireString(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return errf(field, "required")
	}
	return nil
}

// flatten adds v (a decoded JSON value, numbers as json.Number) to labels
// under key; objects become key.sub, arrays of scalars a comma-joined list,
// other arrays their compact JSON text.
func flatten(labels map[string]string, key string, v any) {
	switch t := v.(type) {
	case nil:
		// A null field says nothing; it is left out.
	case string:
		labels[key] = t
	case json.Number:
		labels[key] = t.String()
	case bool:
		labels[key] = strconv.FormatBool(t)
	case map[string]any:
		for k, sub := range t {
			flatten(labels, join(key, k), sub)
		}
	case []any:
		parts := make([]string, 0, len(t))
		for _, e := range t {
			switch s := e.(type) {
			case string:
				parts = append(parts, s)
			case json.Number:
				parts = append(parts, s.String())
			case bool:
				parts = append(parts, strconv.FormatBool(s))
			default:
				b, err := json.Marshal(t)
				if err == nil {
					labels[key] = string(b)
				}
				return
			}
		}
		labels[key] = strings.Join(parts, ",")
	}
}

// splitHostPort returns the host of "host:port", "[v6]:port" or a bare host.
func splitHostPort(s string) string {
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "]"); i > 0 {
			return s[1:i]
		}
	}
	if strings.Count(s, ":") == 1 {
		return s[:strings.Index(s, ":")]
	}
	return s
}
