//go:build integration

package console

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// a11yAudit is run in a page: every visible form control without a label,
// every button without a name, and every text element whose colour on its
// background has a contrast ratio under 4.5:1 (WCAG AA for normal text).
const a11yAudit = `(() => {
  const out = {Unlabelled: [], Unnamed: [], LowContrast: []};
  const visible = (el) => el.offsetParent !== null;
  const name = (el) => el.id || el.name || el.outerHTML.slice(0, 60);
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (visible(el) && el.labels.length === 0 && !el.getAttribute("aria-label")) { out.Unlabelled.push(name(el)); }
  }
  for (const el of document.querySelectorAll("button, a")) {
    if (visible(el) && !el.textContent.trim() && !el.getAttribute("aria-label")) { out.Unnamed.push(name(el)); }
  }
  const rgb = (s) => { const m = s.match(/[\d.]+/g).map(Number); return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.a > 0) { return c; } }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  for (const el of document.querySelectorAll("body *")) {
    if (!visible(el) || ![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) { continue; }
    const fg = lum(rgb(getComputedStyle(el).color)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) { out.LowContrast.push(el.tagName + "." + el.className + " " + ratio.toFixed(2) + ": " + el.textContent.trim().slice(0, 30)); }
  }
  return JSON.stringify(out);
})()`

// audit is a page's accessibility findings.
type audit struct{ Unlabelled, Unnamed, LowContrast []string }

// TestConsoleAccessibleAtPhoneAndDesktop opens every page in Chromium at
// 1280x800 and at phone width (390x844): no page scrolls sideways, every
// form control has a label, every button and link a name, every text
// meets 4.5:1 contrast, and the approval can be reached and used with the
// keyboard alone (Tab from the reason to Approve, Enter submits).
func TestConsoleAccessibleAtPhoneAndDesktop(t *testing.T) {
	e := newEnv(t, 200*time.Millisecond)
	bob := newChrome(t)
	bob.signIn(t, e.base, "bob")
	room := e.roomURL()
	shots := artifacts(t)
	pages := []struct{ name, url, ready string }{
		{"incidents list", e.base + "/", "incidents"},
		{"incident room", room, "steps"},
		{"report", room + "/report", "report"},
		{"playbooks", e.base + "/playbooks", "main"},
		{"trends", e.base + "/trends", "chart-open-phase"},
		{"drills", e.base + "/drills", "main"},
	}
	for _, size := range []struct{ w, h int64 }{{1280, 800}, {390, 844}} {
		for _, pg := range pages {
			bob.do(t, "open "+pg.name, chromedp.EmulateViewport(size.w, size.h), chromedp.Navigate(pg.url), chromedp.WaitVisible(chromedp.ID(pg.ready)))
			noOverflow(t, bob, pg.name, size.w, size.h)
			if pg.name == "playbooks" || pg.name == "trends" || size.w < 500 {
				bob.screenshot(t, shots, fmt.Sprintf("console-%s-%dx%d.png", strings.ReplaceAll(pg.name, " ", "-"), size.w, size.h))
			}
			var a audit
			if err := json.Unmarshal([]byte(get(t, bob, "audit "+pg.name, chromedp.Evaluate[string](a11yAudit))), &a); err != nil {
				t.Fatal(err)
			}
			if len(a.Unlabelled)+len(a.Unnamed)+len(a.LowContrast) > 0 {
				t.Errorf("%s at %dx%d: unlabelled controls %q, unnamed buttons or links %q, low contrast %q", pg.name, size.w, size.h, a.Unlabelled, a.Unnamed, a.LowContrast)
			}
		}
	}
	// The checks see what they look for: an unlabelled field, pale text
	// and a too-wide element, added to the list page, are all reported.
	bob.do(t, "a page with faults", chromedp.EmulateViewport(390, 844), chromedp.Navigate(e.base+"/"), chromedp.WaitVisible(chromedp.ID("incidents")),
		chromedp.Evaluate[chromedp.Void](`(() => {
			const i = document.createElement("input"); i.id = "probe-unlabelled"; document.body.appendChild(i);
			const p = document.createElement("p"); p.textContent = "pale"; p.style.color = "#bbb"; document.body.appendChild(p);
			const d = document.createElement("div"); d.style.width = "2000px"; d.textContent = "wide"; document.body.appendChild(d);
		})()`))
	var faults audit
	if err := json.Unmarshal([]byte(get(t, bob, "audit of the faults", chromedp.Evaluate[string](a11yAudit))), &faults); err != nil {
		t.Fatal(err)
	}
	if len(faults.Unlabelled) != 1 || len(faults.LowContrast) != 1 {
		t.Errorf("the audit missed planted faults: %+v", faults)
	}
	if scroll, inner := widths(t, bob); scroll <= inner {
		t.Errorf("a 2000px element: scrollWidth %d, innerWidth %d", scroll, inner)
	}

	// Keyboard only: from the reason field, Tab reaches Approve, Enter approves.
	bob.reload(t, "keyboard approval", chromedp.EmulateViewport(390, 844), chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("reason-shutdown")),
		chromedp.Focus(chromedp.ID("reason-shutdown")), chromedp.KeyEvent("contain web-01"), chromedp.KeyEvent(kb.Tab))
	if id := get(t, bob, "focused element", chromedp.Evaluate[string](`document.activeElement.id`)); id != "approve-shutdown" {
		t.Fatalf("Tab from the reason focuses %q, want approve-shutdown", id)
	}
	bob.do(t, "Enter approves", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS(`#step-shutdown[data-status="running"]`)))
	if _, n := e.temporal.counts(); n != 1 {
		t.Errorf("updates after the keyboard approval: %d", n)
	}
}
