//go:build integration

package console

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// chrome is one headless Chromium (its own profile: its own cookies)
// with what its pages print to the console.
type chrome struct {
	ctx context.Context
	mu  sync.Mutex
	log []string
}

// newChrome starts Debian's Chromium as the machine needs it: headless,
// no sandbox (root), no network of its own, a fresh profile. The test
// server's certificate is self-signed, hence ignore-certificate-errors.
func newChrome(t *testing.T) *chrome {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (scripts/services.sh installs it): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.IgnoreCertErrors, chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	c := &chrome{ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.log = append(c.log, string(m.Type)+" "+m.Source+": "+m.Text)
			c.mu.Unlock()
		}
	}()
	return c
}

// do runs steps, failing the test with the page's address and console.
func (c *chrome) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		c.fail(t, what, err)
	}
}

// reload runs steps that begin by loading a page, again (up to three
// times) when the page's live part replaced a node between finding it and
// acting on it: an event-stream update rewrites #live while the steps
// type into a field in it. Loading the page first makes a retry start
// from an empty field, never typing the text twice.
func (c *chrome) reload(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	var err error
	for range 3 {
		ctx, cancel := context.WithTimeout(c.ctx, 90*time.Second)
		err = chromedp.Do(ctx, steps...)
		cancel()
		if err == nil || !staleNode(err) {
			break
		}
		t.Logf("%s: %v: the live part replaced the node; loading the page again", what, err)
	}
	if err != nil {
		c.fail(t, what, err)
	}
}

// staleNode reports whether err is the DevTools protocol's answer for a
// node that left the document.
func staleNode(err error) bool {
	return strings.Contains(err.Error(), "Could not find node with given id") || strings.Contains(err.Error(), "Node is detached")
}

func (c *chrome) fail(t *testing.T, what string, err error) {
	t.Helper()
	loc, _ := chromedp.Run(c.ctx, chromedp.Location())
	t.Fatalf("%s: %v (at %s; console: %q)", what, err, loc, c.lines())
}

// get runs one action that answers a value.
func get[T any](t *testing.T, c *chrome, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		c.fail(t, what, err)
	}
	return v
}

// textOf is the text of the first element matching a CSS selector, read in
// the page (node ids of an earlier query do not outlive a navigation).
func textOf(t *testing.T, c *chrome, selector string) string {
	t.Helper()
	return get(t, c, "text of "+selector, chromedp.Evaluate[string](`document.querySelector(`+strconv.Quote(selector)+`).innerText.trim()`))
}

// weight logs the bytes the current page loaded: the document and every
// resource (script, style), decoded, as the Resource Timing API reports them.
func weight(t *testing.T, c *chrome, page string) {
	t.Helper()
	n := get(t, c, "weight of "+page, chromedp.Evaluate[int](`performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource")).reduce((a, e) => a + e.decodedBodySize, 0)`))
	t.Logf("page weight %s: %d bytes (document, script and style, decoded)", page, n)
}

func (c *chrome) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log...)
}

// cspViolations are the console lines reporting a Content-Security-Policy
// violation.
func (c *chrome) cspViolations() []string {
	var out []string
	for _, l := range c.lines() {
		if strings.Contains(l, "Content Security Policy") {
			out = append(out, l)
		}
	}
	return out
}

// signIn goes through the landing page and Keycloak's login (and OTP) form.
func (c *chrome) signIn(t *testing.T, base, username string) {
	t.Helper()
	c.do(t, username+" opens Keycloak's login page", chromedp.Navigate(base+"/"), chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("kc-form-login")),
		chromedp.SendKeys(chromedp.ID("username"), username), chromedp.SendKeys(chromedp.ID("password"), keycloak.UserPassword),
		chromedp.Click(chromedp.ID("kc-login")))
	if code := keycloak.TOTPCode(username, time.Now()); code != "" {
		c.do(t, username+" enters the one-time code", chromedp.WaitVisible(chromedp.ID("otp")),
			chromedp.SendKeys(chromedp.ID("otp"), code), chromedp.Click(chromedp.ID("kc-login")))
	}
	c.do(t, username+" lands on the incidents list", chromedp.WaitVisible(chromedp.ID("incidents")))
}

func (c *chrome) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	png := get(t, c, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// artifacts is where the screenshots go: IRU_CONSOLE_SCREENSHOTS, or the
// test's temporary directory.
func artifacts(t *testing.T) string {
	if d := os.Getenv("IRU_CONSOLE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestConsoleInChromium drives the console in a real browser: bob signs
// in with his one-time code, sees the incident appear live, approves the
// shutdown and watches it run and finish, and opens the report; alice sees
// no approve button and her forged form post is refused; after bob signs
// out his session is refused; no page violates the CSP.
func TestConsoleInChromium(t *testing.T) {
	e := newEnv(t, 200*time.Millisecond)
	e.temporal.set(func(*workflows.IncidentStatus) {})
	e.temporal.mu.Lock()
	e.temporal.hidden = true
	e.temporal.mu.Unlock()
	shots := artifacts(t)
	bob, alice := newChrome(t), newChrome(t)
	room := e.roomURL()

	bob.signIn(t, e.base, "bob")
	bob.do(t, "the empty list", chromedp.WaitVisible(chromedp.Search(`//td[contains(., "No incidents.")]`)))
	// A Falco alert opens the incident: the list shows it without a reload.
	e.temporal.mu.Lock()
	e.temporal.hidden = false
	e.temporal.mu.Unlock()
	bob.do(t, "the incident appears live", chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+incidentKey+`"]`)))
	bob.screenshot(t, shots, "console-incidents.png")
	weight(t, bob, "incidents list")

	alice.signIn(t, e.base, "alice")
	alice.do(t, "alice opens the room", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("step-shutdown")))
	if get(t, alice, "approve button", chromedp.Evaluate[bool](`document.getElementById("approve-shutdown") !== null`)) {
		t.Fatal("alice sees an approve button")
	}
	// Alice forges the approval form bob would see, with her own session's CSRF token.
	alice.do(t, "alice's forged approval", chromedp.Evaluate[chromedp.Void](`(() => {
		const f = document.createElement("form");
		f.method = "post";
		f.action = location.pathname + "/steps/shutdown/approve";
		for (const [k, v] of [["csrf", document.querySelector("input[name=csrf]").value], ["reason", "forged"]]) {
			const i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i);
		}
		document.body.appendChild(f);
		f.submit();
	})()`), chromedp.WaitVisible(chromedp.ID("error")))
	refused := textOf(t, alice, "#error")
	if !strings.Contains(refused, "mfa_required") {
		t.Fatalf("alice's forged approval answered %q", refused)
	}
	if _, n := e.temporal.counts(); n != 0 {
		t.Fatalf("alice's forged approval reached the workflow (%d updates)", n)
	}

	bob.reload(t, "bob opens the room", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("approve-shutdown")),
		chromedp.WaitVisible(chromedp.CSS(".live-status")), chromedp.SendKeys(chromedp.ID("reason-shutdown"), "contain web-01"))
	bob.screenshot(t, shots, "console-room.png")
	weight(t, bob, "incident room")
	clicked := time.Now()
	bob.do(t, "bob approves", chromedp.Click(chromedp.ID("approve-shutdown")),
		chromedp.WaitVisible(chromedp.CSS(`#step-shutdown[data-status="running"]`)))
	t.Logf("approval click to the step showing as running: %s", time.Since(clicked).Round(time.Millisecond))
	if _, n := e.temporal.counts(); n != 1 {
		t.Fatalf("updates after bob's approval = %d", n)
	}
	// The workflow runs the step and moves on: the room follows live.
	e.temporal.set(func(st *workflows.IncidentStatus) {
		st.Steps[1].Status, st.Steps[1].FinishedAt, st.Steps[1].Summary = workflows.StepSucceeded, time.Now().UTC(), "web-01 stopped"
		st.Phase = playbooks.PhaseRecovery
		st.Timeline = append(st.Timeline, workflows.TimelineEntry{At: time.Now().UTC(), What: "succeeded shutdown"})
	})
	bob.do(t, "the step finishes live", chromedp.WaitVisible(chromedp.CSS(`#step-shutdown[data-status="succeeded"]`)),
		chromedp.WaitVisible(chromedp.CSS(`li.phase.current[aria-current="step"]`)))
	current := textOf(t, bob, "li.phase.current")
	if current != playbooks.PhaseRecovery {
		t.Errorf("current phase %q", current)
	}
	bob.screenshot(t, shots, "console-room-running.png")

	bob.do(t, "bob opens the report", chromedp.Click(chromedp.ID("report-link")), chromedp.WaitVisible(chromedp.ID("report")))
	report := textOf(t, bob, "#report")
	if !strings.Contains(report, "Contained web-01") {
		t.Errorf("report text %q", report)
	}
	bob.screenshot(t, shots, "console-report.png")
	weight(t, bob, "report")

	bob.do(t, "bob signs out", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("logout")),
		chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("signin")))
	bob.do(t, "bob's old session", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("error")))
	after := textOf(t, bob, "#error")
	if !strings.Contains(after, "not signed in") {
		t.Errorf("after logout the room says %q", after)
	}

	for _, c := range []*chrome{bob, alice} {
		if v := c.cspViolations(); len(v) > 0 {
			t.Errorf("CSP violations: %q", v)
		}
	}
	// The check above sees violations: an inline script is refused and reported.
	alice.do(t, "an inline script", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("step-shutdown")),
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.createElement("script"); s.textContent = "window.inlineRan = true"; document.body.appendChild(s); })()`))
	deadline := time.Now().Add(20 * time.Second)
	for len(alice.cspViolations()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	ran := get(t, alice, "inline script state", chromedp.Evaluate[bool](`window.inlineRan === true`))
	if ran || len(alice.cspViolations()) == 0 {
		t.Errorf("inline script ran=%v, violations %q", ran, alice.cspViolations())
	}
	t.Logf("screenshots in %s", shots)
}
