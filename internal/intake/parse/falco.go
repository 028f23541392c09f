package parse

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/iru-responder/responder/internal/severity"
)

// falcoPayload is one Falco alert as Falcosidekick's webhook output posts
// it (https://github.com/falcosecurity/falcosidekick, types.FalcoPayload).
// Fields added by newer versions are ignored.
type falcoPayload struct {
	UUID         string         `json:"uuid"`
	Output       string         `json:"output"`
	Priority     string         `json:"priority"`
	Rule         string         `json:"rule"`
	Time         string         `json:"time"`
	OutputFields map[string]any `json:"output_fields"`
	Source       string         `json:"source"`
	Tags         []string       `json:"tags"`
	Hostname     string         `json:"hostname"`
}

// ParseFalco parses one Falco alert as sent by Falcosidekick's webhook
// output. The nanosecond output_fields["evt.time"] is decoded exactly (as
// an integer, never through float64) and is the observation time.
func ParseFalco(body []byte) ([]Alert, error) {
	if err := CheckBody(body); err != nil {
		return nil, err
	}
	var p falcoPayload
	if err := decode(body, &p, "", false); err != nil {
		return nil, err
	}
	if err := requireString("rule", p.Rule); err != nil {
		return nil, err
	}
	if p.Priority == "" {
		return nil, errf("priority", "required")
	}
	sev, ok := falcoSeverity(p.Priority)
	if !ok {
		return nil, errf("priority", "unknown priority %q (want Emergency, Alert, Critical, Error, Warning, Notice, Informational or Debug)", p.Priority)
	}
	if p.Time == "" {
		return nil, errf("time", "required")
	}
	observed, err := time.Parse(time.RFC3339Nano, p.Time)
	if err != nil || observed.IsZero() {
		return nil, errf("time", "must be an RFC 3339 time")
	}
	labels := make(map[string]string, len(p.OutputFields)+6)
	for k, v := range p.OutputFields {
		flatten(labels, k, v)
	}
	if v, present := p.OutputFields["evt.time"]; present && v != nil {
		n, ok := v.(json.Number)
		if !ok {
			return nil, errf("output_fields.evt.time", "must be an integer (nanoseconds since the epoch)")
		}
		ns, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || ns <= 0 {
			return nil, errf("output_fields.evt.time", "must be a positive integer (nanoseconds since the epoch)")
		}
		observed = time.Unix(0, ns).UTC()
	}
	labels["priority"] = p.Priority
	if p.Source != "" {
		labels["source"] = p.Source
	}
	if len(p.Tags) > 0 {
		labels["tags"] = strings.Join(p.Tags, ",")
	}
	if p.Hostname != "" {
		labels["hostname"] = p.Hostname
	}
	if p.UUID != "" {
		labels["uuid"] = p.UUID
	}
	keepFull(labels, "output", p.Output)
	fp := p.UUID
	if fp == "" {
		fp = labelsFingerprint(map[string]string{"rule": p.Rule, "time": p.Time, "output": p.Output})
	}
	a := Alert{
		Source:      SourceFalco,
		Rule:        p.Rule,
		Severity:    sev,
		Summary:     oneLine(firstNonEmpty(p.Output, p.Rule)),
		Fingerprint: fp,
		Labels:      labels,
		ObservedAt:  observed,
		AssetHints:  falcoHints(labels),
	}
	if err := checkStrings(&a, ""); err != nil {
		return nil, err
	}
	return []Alert{a}, nil
}

// falcoSeverity maps Falco priorities (case-insensitive; Falcosidekick
// also sends "Info").
func falcoSeverity(p string) (string, bool) {
	switch strings.ToLower(p) {
	case "emergency", "alert", "critical":
		return severity.Critical, true
	case "error":
		return severity.High, true
	case "warning":
		return severity.Medium, true
	case "notice":
		return severity.Low, true
	case "informational", "info", "debug":
		return severity.Info, true
	}
	return "", false
}

func falcoHints(l map[string]string) []AssetHint {
	var hints []AssetHint
	add := func(kind HintKind, key string) {
		v := strings.TrimSpace(l[key])
		// Falco reports events outside containers as container id "host".
		if v == "" || v == "host" || v == "<NA>" {
			return
		}
		hints = append(hints, AssetHint{Kind: kind, Value: v, From: "output_fields." + key})
	}
	add(HintName, "container.name")
	add(HintName, "container.id")
	add(HintName, "k8s.pod.name")
	if h := strings.TrimSpace(l["hostname"]); h != "" {
		hints = append(hints, AssetHint{Kind: HintHostname, Value: h, From: "hostname"})
	}
	return hints
}
