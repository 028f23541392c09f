package report

import (
	"strings"
	"testing"
	"time"
)

// TestMarkdownShowsResolution: the alerts table says when each alert was
// resolved at its detector, or that it still fires.
func TestMarkdownShowsResolution(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	md := string(Markdown(Report{Alerts: []Alert{
		{Source: "alertmanager", Rule: "ContainerShell", Severity: "high", Count: 1, FirstSeen: at.Add(-time.Hour), ResolvedAt: at},
		{Source: "falco", Rule: "Terminal shell", Severity: "high", Count: 2, FirstSeen: at.Add(-time.Hour)},
	}}))
	for _, want := range []string{
		"| source | rule | severity | count | first seen | resolved |",
		"| ContainerShell | high | 1 | 2026-03-04 04:06:07.000Z | 2026-03-04 05:06:07.000Z |",
		"| Terminal shell | high | 2 | 2026-03-04 04:06:07.000Z | firing |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
