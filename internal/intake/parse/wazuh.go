package parse

import (
	"encoding/json"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/iru-responder/responder/internal/severity"
)

// wazuhAlert is a Wazuh alert as the manager writes it to alerts.json and
// hands it to an integration script
// (https://documentation.wazuh.com/current/user-manual/manager/integration-with-external-apis.html).
// The script posts it unchanged. Fields added by newer versions are ignored.
type wazuhAlert struct {
	Timestamp string `json:"timestamp"`
	Rule      *struct {
		Level       json.RawMessage `json:"level"`
		Description string          `json:"description"`
		ID          string          `json:"id"`
		Groups      []string        `json:"groups"`
		FiredTimes  json.RawMessage `json:"firedtimes"`
		Mitre       *struct {
			ID        []string `json:"id"`
			Tactic    []string `json:"tactic"`
			Technique []string `json:"technique"`
		} `json:"mitre"`
	} `json:"rule"`
	Agent *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		IP   string `json:"ip"`
	} `json:"agent"`
	Manager struct {
		Name string `json:"name"`
	} `json:"manager"`
	ID      string `json:"id"`
	FullLog string `json:"full_log"`
	Decoder struct {
		Name   string `json:"name"`
		Parent string `json:"parent"`
	} `json:"decoder"`
	Data     map[string]any `json:"data"`
	Location string         `json:"location"`
}

// Wazuh timestamps carry a UTC offset without a colon
// ("2024-05-01T12:34:56.789+0000"); RFC 3339 is accepted too.
var wazuhLayouts = []string{
	"2006-01-02T15:04:05.999999999-0700",
	time.RFC3339Nano,
}

// ParseWazuh parses one Wazuh alert.
func ParseWazuh(body []byte) ([]Alert, error) {
	if err := CheckBody(body); err != nil {
		return nil, err
	}
	var w wazuhAlert
	if err := decode(body, &w, "", false); err != nil {
		return nil, err
	}
	if w.Timestamp == "" {
		return nil, errf("timestamp", "required")
	}
	observed, err := parseWazuhTime(w.Timestamp)
	if err != nil {
		return nil, errf("timestamp", "must be a time like 2024-05-01T12:34:56.789+0000")
	}
	if w.Rule == nil {
		return nil, errf("rule", "required")
	}
	level, ok, err := intField("rule.level", w.Rule.Level, 0, 15)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errf("rule.level", "required")
	}
	if err := requireString("rule.id", w.Rule.ID); err != nil {
		return nil, err
	}
	if err := requireString("rule.description", w.Rule.Description); err != nil {
		return nil, err
	}
	if w.Agent == nil {
		return nil, errf("agent", "required")
	}
	if err := requireString("agent.name", w.Agent.Name); err != nil {
		return nil, err
	}
	fired, hasFired, err := intField("rule.firedtimes", w.Rule.FiredTimes, 0, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		"rule.id":    w.Rule.ID,
		"rule.level": strconv.FormatInt(level, 10),
		"agent.name": w.Agent.Name,
	}
	set := func(k, v string) {
		if v != "" {
			labels[k] = v
		}
	}
	set("rule.groups", strings.Join(w.Rule.Groups, ","))
	if hasFired {
		labels["rule.firedtimes"] = strconv.FormatInt(fired, 10)
	}
	if m := w.Rule.Mitre; m != nil {
		set("rule.mitre.id", strings.Join(m.ID, ","))
		set("rule.mitre.tactic", strings.Join(m.Tactic, ","))
		set("rule.mitre.technique", strings.Join(m.Technique, ","))
	}
	set("agent.id", w.Agent.ID)
	set("agent.ip", w.Agent.IP)
	set("manager.name", w.Manager.Name)
	set("decoder.name", w.Decoder.Name)
	set("decoder.parent", w.Decoder.Parent)
	set("location", w.Location)
	set("id", w.ID)
	for k, v := range w.Data {
		flatten(labels, "data."+k, v)
	}
	fp := w.ID
	if fp == "" {
		fp = labelsFingerprint(map[string]string{"rule": w.Rule.ID, "agent": w.Agent.Name, "timestamp": w.Timestamp})
	}
	a := Alert{
		Source:      SourceWazuh,
		Rule:        w.Rule.ID,
		Severity:    wazuhSeverity(level),
		Summary:     oneLine(w.Rule.Description),
		Fingerprint: fp,
		Labels:      labels,
		ObservedAt:  observed,
		AssetHints:  wazuhHints(w.Agent.Name, w.Agent.IP),
	}
	labels["rule.description"] = w.Rule.Description
	if err := checkStrings(&a, ""); err != nil {
		return nil, err
	}
	if strings.IndexByte(w.FullLog, 0) >= 0 {
		return nil, errf("full_log", "contains a NUL character")
	}
	return []Alert{a}, nil
}

func parseWazuhTime(s string) (time.Time, error) {
	var err error
	for _, layout := range wazuhLayouts {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil && !t.IsZero() {
			return t, nil
		}
	}
	return time.Time{}, err
}

// wazuhSeverity maps rule levels 0-15 (Wazuh's rules classification):
// 0-2 info, 3-6 low, 7-10 medium, 11-13 high, 14-15 critical.
func wazuhSeverity(level int64) string {
	switch {
	case level >= 14:
		return severity.Critical
	case level >= 11:
		return severity.High
	case level >= 7:
		return severity.Medium
	case level >= 3:
		return severity.Low
	}
	return severity.Info
}

func wazuhHints(name, ip string) []AssetHint {
	hints := []AssetHint{{Kind: HintName, Value: strings.TrimSpace(name), From: "agent.name"}}
	// "any" is the agent IP Wazuh reports for agents registered without one.
	if ip = strings.TrimSpace(ip); ip != "" && net.ParseIP(ip) != nil {
		hints = append(hints, AssetHint{Kind: HintIP, Value: ip, From: "agent.ip"})
	}
	return hints
}
