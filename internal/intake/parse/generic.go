package parse

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/iru-responder/responder/internal/severity"
)

// genericAlert is the platform's own alert format, documented in GENERIC.md.
type genericAlert struct {
	Source      string            `json:"source"`
	Rule        string            `json:"rule"`
	Severity    string            `json:"severity"`
	Asset       string            `json:"asset"`
	Summary     string            `json:"summary"`
	Labels      map[string]string `json:"labels"`
	ObservedAt  string            `json:"observed_at"`
	Fingerprint string            `json:"fingerprint"`
}

// ParseGeneric parses the generic format (GENERIC.md): one alert object or
// an array of them. Unknown fields are rejected.
func ParseGeneric(body []byte) ([]Alert, error) {
	if err := CheckBody(body); err != nil {
		return nil, err
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var raws []json.RawMessage
		if err := decode(body, &raws, "", true); err != nil {
			return nil, err
		}
		if len(raws) == 0 {
			return nil, errf("", "empty array: at least one alert is required")
		}
		if len(raws) > MaxAlerts {
			return nil, errf("", "more than %d alerts", MaxAlerts)
		}
		out := make([]Alert, 0, len(raws))
		for i, raw := range raws {
			a, err := genericOne(raw, index("", i))
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	}
	a, err := genericOne(body, "")
	if err != nil {
		return nil, err
	}
	return []Alert{a}, nil
}

func genericOne(raw []byte, field string) (Alert, error) {
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] != '{' {
		return Alert{}, errf(field, "expected an alert object")
	}
	var g genericAlert
	if err := decode(raw, &g, field, true); err != nil {
		return Alert{}, err
	}
	for _, req := range [...]struct{ name, v string }{
		{"source", g.Source}, {"rule", g.Rule}, {"severity", g.Severity}, {"asset", g.Asset},
		{"summary", g.Summary}, {"observed_at", g.ObservedAt},
	} {
		if err := requireString(join(field, req.name), req.v); err != nil {
			return Alert{}, err
		}
	}
	if severity.Rank(g.Severity) < 0 {
		return Alert{}, errf(join(field, "severity"), "must be critical, high, medium, low or info")
	}
	observed, err := time.Parse(time.RFC3339Nano, g.ObservedAt)
	if err != nil || observed.IsZero() {
		return Alert{}, errf(join(field, "observed_at"), "must be an RFC 3339 time")
	}
	labels := make(map[string]string, len(g.Labels)+1)
	for k, v := range g.Labels {
		if k == "" {
			return Alert{}, errf(join(field, "labels"), "empty label name")
		}
		labels[k] = v
	}
	labels["source"] = g.Source
	keepFull(labels, "summary", g.Summary)
	fp := g.Fingerprint
	if fp == "" {
		fp = labelsFingerprint(map[string]string{"source": g.Source, "rule": g.Rule, "asset": g.Asset, "observed_at": g.ObservedAt})
	}
	a := Alert{
		Source:      SourceGeneric,
		Rule:        g.Rule,
		Severity:    g.Severity,
		Summary:     oneLine(g.Summary),
		Fingerprint: fp,
		Labels:      labels,
		ObservedAt:  observed,
		AssetHints:  []AssetHint{{Kind: HintName, Value: g.Asset, From: join(field, "asset")}},
	}
	return a, checkStrings(&a, field)
}
