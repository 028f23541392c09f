package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"golang.org/x/net/html"
)

// hostile are strings a detector can put into an alert (rule, summary,
// labels, and through them step summaries and timeline reasons) or a
// responder into a reason.
var hostile = []string{
	"a | b | c",
	`escaped \| pipe`,
	"two\nlines\r\nthree",
	"[click here](https://evil.example/phish)",
	"<https://evil.example/auto>",
	"visit https://evil.example/x or www.evil.example",
	"HTTPS://EVIL.example/X WWW.EVIL.example ftp://evil.example mailto:bob@evil.example xmpp:bob@evil.example",
	"mail bob@evil.example",
	"<script>alert(1)</script><img src=x onerror=alert(2)>",
	"`code` ``` fence",
	"**bold** _it_ ~~gone~~",
	"&lt;entity&gt; &#x3C;b&#x3E;",
	"<!channel> @here <@U123|bob>",
	"![img](https://evil.example/pixel.png)",
	"# heading",
}

// TestMarkdownHostileText renders a report full of hostile strings with a
// GFM renderer (goldmark, tables and autolinks on) and checks the HTML: every
// table row keeps its number of cells, the hostile cell shows the string
// as text, and there is no link, image, script or other element the
// template does not write itself.
func TestMarkdownHostileText(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for _, h := range hostile {
		t.Run(h, func(t *testing.T) {
			st := Incident{
				ID: "INC-1", Playbook: "container-compromise", PlaybookVersion: "1", Asset: h, Severity: h, State: "resolved",
				Reason: h, OpenedAt: at, ClosedAt: at,
				Alerts:   []Alert{{Source: h, Rule: h, Severity: "critical", Count: 1, FirstSeen: at}},
				Steps:    []Step{{ID: "contain", Phase: "containment", Action: "pve.isolate", Status: "succeeded", Summary: h, Decisions: []Approval{{Decision: "approved", By: h, Reason: h, At: at}}}},
				Timeline: []TimelineEntry{{At: at, Actor: h, What: h, StepID: "contain", Reason: h}},
			}
			r := Build(Input{Incident: st, GeneratedAt: at, LedgerProblem: h,
				Evidence: []Evidence{{Name: h, SHA256: "ab`c|d", Size: 1, Class: "pii", CollectedBy: h, Source: h, CollectedAt: at}}})
			doc := render(t, Markdown(r))

			want := strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(h)), " ")
			tables := findAll(doc, "table")
			if len(tables) != 7 {
				t.Fatalf("%d tables, want 7", len(tables))
			}
			sawHostileCell := 0
			for _, tb := range tables {
				rows := findAll(tb, "tr")
				width := len(cells(rows[0]))
				for i, row := range rows {
					cs := cells(row)
					if len(cs) != width {
						t.Errorf("table row %d has %d cells, header has %d: %q", i, len(cs), width, texts(cs))
					}
					for _, c := range cs {
						if normal(text(c)) == want {
							sawHostileCell++
						}
					}
				}
			}
			if sawHostileCell < 10 {
				t.Errorf("the hostile text shows intact in %d cells, want every field (10 or more)", sawHostileCell)
			}
			allowed := map[string]bool{"html": true, "head": true, "body": true, "h1": true, "h2": true, "p": true, "table": true, "thead": true,
				"tbody": true, "tr": true, "th": true, "td": true, "ul": true, "li": true, "em": true, "code": true}
			walk(doc, func(n *html.Node) {
				if n.Type == html.ElementNode && !allowed[n.Data] {
					t.Errorf("rendered report has a <%s> element (from the hostile text)", n.Data)
				}
				if n.Type == html.RawNode || n.Type == html.CommentNode {
					t.Errorf("rendered report has raw HTML %q", n.Data)
				}
			})
			if p := findAll(doc, "p"); !strings.Contains(normal(text(p[0])), "on "+want+".") {
				t.Errorf("summary paragraph %q does not show the asset as text", text(p[0]))
			}
		})
	}
}

func render(t *testing.T, md []byte) *html.Node {
	t.Helper()
	var out bytes.Buffer
	if err := goldmark.New(goldmark.WithExtensions(extension.GFM)).Convert(md, &out); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(&out)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func walk(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func findAll(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	walk(n, func(x *html.Node) {
		if x.Type == html.ElementNode && x.Data == tag {
			out = append(out, x)
		}
	})
	return out
}

func cells(row *html.Node) []*html.Node {
	var out []*html.Node
	for c := row.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
			out = append(out, c)
		}
	}
	return out
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(x *html.Node) {
		if x.Type == html.TextNode {
			b.WriteString(x.Data)
		}
	})
	return b.String()
}

func texts(ns []*html.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = text(n)
	}
	return out
}

func normal(s string) string { return strings.Join(strings.Fields(s), " ") }
