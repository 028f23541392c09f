//go:build integration

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"golang.org/x/net/html"

	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// TestHostileAlertTextInOutputs plays an incident whose alert carries a
// hostile rule and summary (a mention of everyone, a disguised link, a
// table pipe, a code span, a line break) through the real worker, with a
// Slack webhook: the Slack messages the platform sends hold no live
// mention or link, and the stored Markdown report, rendered by a GFM
// renderer, keeps its table shape and holds no link.
func TestHostileAlertTextInOutputs(t *testing.T) {
	const slackPath = "/services/T0TEAM01/B0HOOK02/xoxbSECRETpath"
	var mu sync.Mutex
	var bodies [][]byte
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == slackPath {
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer slack.Close()
	p := testplatform.New(t, testplatform.Options{Plain: os.Getenv("IRU_RECORD_HISTORIES") != "", Env: []string{"IRU_NOTIFY_SLACK_URL=" + slack.URL + slackPath}})
	gc := gocloak.NewClient(p.Lab.Keycloak.URL())
	if _, err := gc.Login(context.Background(), keycloak.ConsoleClientID, "", keycloak.Realm, "jdoe", keycloak.UserPassword); err != nil {
		t.Fatal(err)
	}
	const rule = "shell | from [portal](https://evil.example/login) `x`"
	const summary = "<!channel> @here shell spawned <https://evil.example/reset|reset your password> a|b\nnext line"
	const asset = "api-gateway"
	in := workflows.IncidentInput{IncidentID: "INC-HOSTILE", Key: "container-compromise:" + asset, Asset: asset, Severity: "critical",
		Playbook: "container-compromise", OpenedBy: "system:intake",
		Alerts: []workflows.Alert{{ID: "a1", Fingerprint: "f1", Source: "generic", Rule: rule, Severity: "critical", Asset: asset, Summary: summary,
			Labels: map[string]string{"realm": keycloak.Realm, "username": "jdoe", "health_url": p.Lab.HealthURL(asset)}, ObservedAt: time.Now(), ReceivedAt: time.Now()}}}
	p.RunApprovingAll(t, in)

	// Slack: the platform notified, and nothing in it is live.
	mu.Lock()
	got := append([][]byte(nil), bodies...)
	mu.Unlock()
	if len(got) == 0 {
		t.Fatal("no Slack message arrived")
	}
	sawSummary := false
	for _, b := range got {
		var m struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, bad := range []string{"<!channel>", `\u003c!channel\u003e`, "@here", "<https://evil", `\u003chttps://evil`, "https://evil"} {
			if strings.Contains(s, bad) {
				t.Errorf("Slack message holds %q: %s", bad, s)
			}
		}
		sawSummary = sawSummary || strings.Contains(m.Text, "shell spawned")
	}
	if !sawSummary {
		t.Errorf("no Slack message shows the alert's summary: %s", got)
	}

	// The report: one row per alert with five cells, the rule intact as
	// text, no link anywhere.
	objs, err := p.Host.Stores().Evidence.List(context.Background(), in.IncidentID)
	if err != nil {
		t.Fatal(err)
	}
	var ref evidence.Ref
	for _, o := range objs {
		if o.Name == "report/report.md" {
			ref = o.Ref
		}
	}
	if ref == "" {
		t.Fatalf("no report: %v", names(objs))
	}
	rc, _, err := p.Host.Stores().Evidence.Get(context.Background(), ref, evidence.Reader{Identity: "system:test", Reason: "hostile output test"})
	if err != nil {
		t.Fatal(err)
	}
	md, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := goldmark.New(goldmark.WithExtensions(extension.GFM)).Convert(md, &out); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(&out)
	if err != nil {
		t.Fatal(err)
	}
	var alertsRow []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "a", "img", "script":
				t.Errorf("rendered report has a <%s> element: %s", n.Data, htmlText(n))
			case "tr":
				var cells []string
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if c.Type == html.ElementNode && c.Data == "td" {
						cells = append(cells, htmlText(c))
					}
				}
				if len(cells) > 0 && cells[0] == "generic" {
					alertsRow = cells
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if len(alertsRow) != 6 || alertsRow[1] != rule {
		t.Errorf("alerts row %q, want 6 cells (source, rule, severity, count, first seen, resolved) with the rule %q as text\n%s", alertsRow, rule, md)
	}
}

func htmlText(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}
