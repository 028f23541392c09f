package parse

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/iru-responder/responder/internal/severity"
)

// amPayload is the Alertmanager webhook payload, version 4
// (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
// Fields Alertmanager or compatible senders (Grafana) add later are ignored.
type amPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   json.RawMessage   `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []json.RawMessage `json:"alerts"`
}

type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// ParseAlertmanager parses an Alertmanager webhook (version 4) payload.
// Resolved alerts are returned with Resolved set.
func ParseAlertmanager(body []byte) ([]Alert, error) {
	if err := CheckBody(body); err != nil {
		return nil, err
	}
	var p amPayload
	if err := decode(body, &p, "", false); err != nil {
		return nil, err
	}
	if p.Version != "4" {
		if p.Version == "" {
			return nil, errf("version", "required")
		}
		return nil, errf("version", "unsupported version %q (want \"4\")", p.Version)
	}
	if p.Status != "firing" && p.Status != "resolved" {
		return nil, errf("status", "must be firing or resolved")
	}
	if _, _, err := intField("truncatedAlerts", p.TruncatedAlerts, 0, math.MaxInt64); err != nil {
		return nil, err
	}
	if p.Alerts == nil {
		return nil, errf("alerts", "required")
	}
	if len(p.Alerts) == 0 {
		return nil, errf("alerts", "must not be empty")
	}
	if len(p.Alerts) > MaxAlerts {
		return nil, errf("alerts", "more than %d alerts", MaxAlerts)
	}
	out := make([]Alert, 0, len(p.Alerts))
	for i, raw := range p.Alerts {
		field := index("alerts", i)
		var a amAlert
		if err := decode(raw, &a, field, false); err != nil {
			return nil, err
		}
		al, err := amConvert(&p, &a, field)
		if err != nil {
			return nil, err
		}
		out = append(out, al)
	}
	return out, nil
}

func amConvert(p *amPayload, a *amAlert, field string) (Alert, error) {
	if a.Status != "firing" && a.Status != "resolved" {
		return Alert{}, errf(join(field, "status"), "must be firing or resolved")
	}
	if a.Labels == nil {
		return Alert{}, errf(join(field, "labels"), "required")
	}
	name := a.Labels["alertname"]
	if err := requireString(join(field, "labels.alertname"), name); err != nil {
		return Alert{}, err
	}
	if a.StartsAt == "" {
		return Alert{}, errf(join(field, "startsAt"), "required")
	}
	starts, err := time.Parse(time.RFC3339Nano, a.StartsAt)
	if err != nil || starts.IsZero() {
		return Alert{}, errf(join(field, "startsAt"), "must be an RFC 3339 time")
	}
	var ends time.Time
	if a.EndsAt != "" {
		if ends, err = time.Parse(time.RFC3339Nano, a.EndsAt); err != nil {
			return Alert{}, errf(join(field, "endsAt"), "must be an RFC 3339 time")
		}
	}
	labels := make(map[string]string, len(a.Labels)+len(a.Annotations)+4)
	for k, v := range a.Labels {
		labels[k] = v
	}
	for k, v := range a.Annotations {
		labels["annotation."+k] = v
	}
	if a.GeneratorURL != "" {
		labels["generatorURL"] = a.GeneratorURL
	}
	if p.Receiver != "" {
		labels["receiver"] = p.Receiver
	}
	if a.EndsAt != "" {
		labels["endsAt"] = a.EndsAt
	}
	labels["status"] = a.Status
	fp := a.Fingerprint
	if fp == "" {
		fp = labelsFingerprint(a.Labels)
	}
	summary := firstNonEmpty(a.Annotations["summary"], a.Annotations["description"], a.Annotations["message"], name)
	al := Alert{
		Source:      SourceAlertmanager,
		Rule:        name,
		Severity:    amSeverity(a.Labels["severity"]),
		Summary:     oneLine(summary),
		Fingerprint: fp,
		Labels:      labels,
		ObservedAt:  starts,
		Resolved:    a.Status == "resolved",
		AssetHints:  amHints(a.Labels),
	}
	if al.Resolved && !ends.IsZero() && ends.Year() > 1 {
		al.EndedAt = ends.UTC()
	}
	return al, checkStrings(&al, field)
}

// amSeverity maps the conventional severity label values.
func amSeverity(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical", "page", "emergency", "fatal", "disaster":
		return severity.Critical
	case "high", "error", "major":
		return severity.High
	case "low", "minor":
		return severity.Low
	case "info", "informational", "information", "none", "debug":
		return severity.Info
	}
	// warning, medium, and a missing or unknown label.
	return severity.Medium
}

func amHints(l map[string]string) []AssetHint {
	var hints []AssetHint
	add := func(kind HintKind, label string) {
		if v := strings.TrimSpace(l[label]); v != "" {
			hints = append(hints, AssetHint{Kind: kind, Value: v, From: "labels." + label})
		}
	}
	add(HintName, "container")
	add(HintName, "name")
	add(HintVMID, "vmid")
	// An instance that is only a port (":9100") names no host.
	if host := strings.TrimSpace(splitHostPort(strings.TrimSpace(l["instance"]))); host != "" {
		kind := HintHostname
		if net.ParseIP(host) != nil {
			kind = HintIP
		}
		hints = append(hints, AssetHint{Kind: kind, Value: host, From: "labels.instance"})
	}
	add(HintHostname, "hostname")
	add(HintNode, "node")
	return hints
}

// labelsFingerprint is a stable hash of a label set, for senders that omit
// the fingerprint.
func labelsFingerprint(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(l[k]))
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// oneLine keeps the first line of s, trimmed and at most 512 bytes long
// (cut at a rune boundary).
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if len(s) > 512 {
		cut := 512
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// keepFull keeps text whole in labels[key] when the one-line summary made
// from it is shorter, so normalisation loses nothing (the label counts
// against the byte budget). A label the detector sent under key wins.
func keepFull(labels map[string]string, key, text string) {
	if _, taken := labels[key]; taken || oneLine(text) == strings.TrimSpace(text) {
		return
	}
	labels[key] = text
}
