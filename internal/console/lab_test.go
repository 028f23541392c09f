//go:build integration

package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/intake"
	intakeauth "github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// labAsset is the lab container the Falco alert names, and labUser the
// Keycloak account logged in to it.
const labAsset, labUser = "api-gateway", "jdoe"

// labStack is `starter serve` as the lab test needs it, in this process:
// the responder API over the real dev server, whose worker runs the real
// incident workflow and activities against the lab (Proxmox VE and
// Keycloak simulators, SoftHSM, the SQLite ledger, the evidence locker);
// the detector intake with a Falco detector; and the console, on TLS.
type labStack struct {
	p        *testplatform.Platform
	ts       *httptest.Server
	base     string // https://127.0.0.1:port/console
	falcoKey string
}

// shutdownTask is how long the lab's PVE takes to shut a container down:
// long enough that the room can show the step running.
const shutdownTask = 3 * time.Second

func newLabStack(t *testing.T) *labStack {
	t.Helper()
	p := testplatform.New(t, testplatform.Options{TaskDurations: map[string]time.Duration{"vzshutdown": shutdownTask}})
	log := slog.New(slog.DiscardHandler)
	var cfg api.Config
	if err := config.LoadFrom(&cfg, p.Env); err != nil {
		t.Fatal(err)
	}
	acc, err := accesslog.New(accesslog.LedgerOf(p.Host.Stores().Ledger), accesslog.Options{QueueSize: 1000, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	acc.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = acc.Close(ctx)
	})
	rs, err := api.NewResponder(api.ResponderOptions{Config: cfg, Temporal: p.Client, Evidence: p.Host.Stores().Evidence, Access: acc, Log: log,
		Signer: p.Host.Keys().DecisionSigner()})
	if err != nil {
		t.Fatal(err)
	}
	key, err := intakeauth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := intake.Open(intake.Config{SpoolDir: t.TempDir(), TaskQueue: p.TaskQueue,
		Detectors: []intakeauth.Detector{{Name: "falco", Format: "falco", APIKeys: []intakeauth.APIKey{{ID: "k1", SHA256: intakeauth.HashKey("k1", key)}}}},
	}, intake.Deps{Assets: testplatform.NewLabAssets(t, p.Env), Signaler: forward.TemporalSignaler{Client: p.Client}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Inventory.Refresh(context.Background()); err != nil {
		t.Fatalf("intake inventory: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(ctx); err != nil {
			t.Errorf("intake: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; _ = svc.Close() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &labStack{p: p, base: "https://" + ln.Addr().String() + Prefix, falcoKey: key}
	registerConsole(t, p.Lab.Keycloak.URL(), s.base)
	con, err := New(Options{Config: Config{URL: s.base, ClientID: keycloak.ConsoleClientID, SessionTTL: time.Hour, SessionIdle: 10 * time.Minute,
		PollInterval: 200 * time.Millisecond}, IssuerURL: cfg.OIDC.IssuerURL, API: rs.Handler(), Verifier: auth.NewVerifier(cfg.OIDC, nil), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(con.Close)
	srv := &api.Server{Log: log, Temporal: ready{}, Responder: rs, Access: acc, Intake: svc.Handler, IntakePattern: intake.Pattern, Console: con.Handler()}
	s.ts = &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv.Handler()}}
	s.ts.StartTLS()
	t.Cleanup(s.ts.Close)
	return s
}

// postFalco posts a Falco alert (Falcosidekick's JSON, with the account
// seen in the container as custom fields) to the intake, as Falco does.
func (s *labStack) postFalco(t *testing.T) {
	t.Helper()
	now := time.Now().UTC()
	body, _ := json.Marshal(map[string]any{
		"uuid": uuid.NewString(), "priority": "Critical", "rule": "Terminal shell in container", "source": "syscall",
		"time": now.Format(time.RFC3339Nano), "hostname": "pve1", "tags": []string{"container", "shell", "mitre_execution"},
		"output":        "A shell was spawned in a container with an attached terminal (user=root container=" + labAsset + " shell=bash)",
		"output_fields": map[string]any{"container.name": labAsset, "proc.name": "bash", "user.name": "root", "evt.time": now.UnixNano(), "username": labUser, "realm": keycloak.Realm},
	})
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(s.ts.URL, "/")+"/v1/alerts/falco", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.falcoKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the intake answered %s", resp.Status)
	}
}

// decisionsBy returns the ledger entries of incident that record a
// decision by username.
func (s *labStack) decisionsBy(t *testing.T, incident, username string) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	err := s.p.Host.Stores().Ledger.Store().Entries(context.Background(), incident, func(e ledger.Entry) error {
		if e.Decision != nil && strings.HasSuffix(e.Actor, "/"+username) {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ledger of %s: %v", incident, err)
	}
	return out
}

// sessionCookieOf is the browser's console session cookie (HttpOnly:
// read through the DevTools protocol, as an attacker who stole it would
// hold it).
func sessionCookieOf(t *testing.T, c *chrome, base string) *network.Cookie {
	t.Helper()
	res, err := chromedp.Call(c.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range res.Cookies {
		if ck.Name == sessionCookie {
			return ck
		}
	}
	t.Fatalf("no %s cookie in the browser", sessionCookie)
	return nil
}

// widths are the page's scroll width and the viewport's inner width.
func widths(t *testing.T, c *chrome) (scroll, inner int) {
	t.Helper()
	var dims struct{ Scroll, Inner int }
	raw := get(t, c, "page width", chromedp.Evaluate[string](`JSON.stringify({Scroll: document.documentElement.scrollWidth, Inner: window.innerWidth})`))
	if err := json.Unmarshal([]byte(raw), &dims); err != nil {
		t.Fatal(err)
	}
	return dims.Scroll, dims.Inner
}

// noOverflow fails the test when the page is wider than the viewport
// (a horizontal scroll bar) at width x height.
func noOverflow(t *testing.T, c *chrome, page string, width, height int64) {
	t.Helper()
	c.do(t, fmt.Sprintf("%s at %dx%d", page, width, height), chromedp.EmulateViewport(width, height), chromedp.Sleep(200*time.Millisecond))
	if scroll, inner := widths(t, c); scroll > inner {
		t.Errorf("%s at %dx%d overflows: scrollWidth %d > innerWidth %d", page, width, height, scroll, inner)
	}
}

// TestConsoleOnTheLabStack drives the console in Chromium against the lab
// stack, nothing faked: a Falco alert posted to the intake opens the
// incident on the dev server, which bob (ir-lead, with his one-time code
// when the realm asks) sees appear in the list without reloading; alice
// (ir-responder) sees no approve button in the room, and her forged
// approval, posted from her session with her CSRF token, is refused: the
// ledger records no decision of hers and the step still waits. Bob adds a
// note (it lands in the evidence locker, collected by him) and
// acknowledges the incident (the workflow records it), then approves shutdown (the time from the click to the step showing as
// running is printed) and restore, watches recovery to the resolved state
// and reads the report from the evidence locker. After he signs out, his
// session cookie, put back into the browser, is refused. No page violates
// the CSP; each page is screenshotted, weighed, and checked for horizontal
// overflow at phone width (390x844) and at 1280x800.
func TestConsoleOnTheLabStack(t *testing.T) {
	s := newLabStack(t)
	shots := artifacts(t)
	bob, alice := newChrome(t), newChrome(t)

	bob.signIn(t, s.base, "bob")
	// The package's dev server is shared: other tests' incidents may be
	// listed, but none on this asset.
	bob.do(t, "the list, live", chromedp.WaitVisible(chromedp.ID("incidents")),
		chromedp.WaitVisible(chromedp.Search(`//p[contains(@class, "live-status")][starts-with(., "live")]`)),
		chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))
	if get(t, bob, "rows of the asset", chromedp.Evaluate[bool](`document.querySelector('tr[data-key*="`+labAsset+`"]') !== null`)) {
		t.Fatalf("an incident on %s is listed before the alert", labAsset)
	}
	s.postFalco(t)
	bob.do(t, "the incident appears live", chromedp.WaitVisible(chromedp.CSS(`tr[data-key*="`+labAsset+`"]`)))
	if !get(t, bob, "same document", chromedp.Evaluate[bool](`window.sameDocument === true`)) {
		t.Fatal("the list was reloaded: the incident did not arrive through the live stream")
	}
	key := get(t, bob, "incident key", chromedp.Evaluate[string](`document.querySelector('tr[data-key*="`+labAsset+`"]').dataset.key`))
	wfID := workflows.IncidentWorkflowID(key)
	room := s.base + "/incidents/" + key
	st := testplatform.WaitStep(t, s.p.Client, wfID, "shutdown", workflows.StepWaitingApproval, 2*time.Minute)
	bob.do(t, "the list shows who must act", chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+key+`"] .must-act`)))
	bob.screenshot(t, shots, "console-incidents.png")
	weight(t, bob, "incidents list")

	// Alice: no button, and her forged approval is refused by the API.
	alice.signIn(t, s.base, "alice")
	alice.do(t, "alice opens the room", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.CSS(`#step-shutdown[data-status="waiting_approval"]`)))
	if get(t, alice, "approve button", chromedp.Evaluate[bool](`document.getElementById("approve-shutdown") !== null`)) {
		t.Fatal("alice sees an approve button")
	}
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
	if refused := textOf(t, alice, "#error"); !strings.Contains(refused, "mfa_required") && !strings.Contains(refused, "role") {
		t.Fatalf("alice's forged approval answered %q", refused)
	}
	if d := s.decisionsBy(t, st.IncidentID, "alice"); len(d) != 0 {
		t.Fatalf("the ledger records alice's decision: %+v", d)
	}
	if cur, err := testplatform.Status(s.p.Client, wfID); err != nil || stepOf(cur, "shutdown").Status != workflows.StepWaitingApproval ||
		len(stepOf(cur, "shutdown").Approval.Approvals) != 0 {
		t.Fatalf("after alice's forged approval the step is %+v (%v)", stepOf(cur, "shutdown"), err)
	}

	// Bob writes a note and acknowledges the incident from the room.
	const note = "shell came from the CI runner's key; rotating it"
	bob.do(t, "bob adds a note", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("note-text")),
		chromedp.SendKeys(chromedp.ID("note-text"), note), chromedp.Click(chromedp.ID("add-note")),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="flash"][contains(., "Note added")]`)))
	bob.do(t, "bob acknowledges", chromedp.SendKeys(chromedp.ID("reason-acknowledge"), "on it"), chromedp.Click(chromedp.ID("acknowledge")),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="flash"][contains(., "acknowledged")]`)))
	objs, err := s.p.Host.Stores().Evidence.List(context.Background(), st.IncidentID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(objs, func(m evidence.Meta) bool {
		return strings.HasPrefix(m.Name, "notes/") && strings.HasSuffix(m.CollectedBy, "/bob")
	}) {
		t.Errorf("bob's note is not in the evidence locker: %+v", objs)
	}
	if cur, err := testplatform.Status(s.p.Client, wfID); err != nil || cur.Metrics.AcknowledgedAt.IsZero() {
		t.Errorf("the incident is not acknowledged after bob's form (%v)", err)
	}

	// Bob approves shutdown and restore and watches recovery.
	bob.reload(t, "bob opens the room", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("approve-shutdown")),
		chromedp.WaitVisible(chromedp.CSS(".live-status")), chromedp.SendKeys(chromedp.ID("reason-shutdown"), "evidence preserved; rebuild"))
	bob.screenshot(t, shots, "console-room.png")
	weight(t, bob, "incident room")
	// The README's picture: the window as bob sees it, at the approval.
	bob.do(t, "scroll to the approval", chromedp.Evaluate[chromedp.Void](`document.getElementById("approval-shutdown").scrollIntoView({block: "center"})`))
	window := get(t, bob, "window screenshot", chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(shots, "console-room-window.png"), window, 0o644); err != nil {
		t.Fatal(err)
	}
	clicked := time.Now()
	bob.do(t, "bob approves shutdown", chromedp.Click(chromedp.ID("approve-shutdown")),
		chromedp.WaitVisible(chromedp.CSS(`#step-shutdown[data-status="running"]`)))
	t.Logf("approval click to the step showing as running: %s", time.Since(clicked).Round(time.Millisecond))
	bob.screenshot(t, shots, "console-room-running.png")
	bob.do(t, "restore waits for bob, live", chromedp.WaitVisible(chromedp.ID("approve-restore")),
		chromedp.SendKeys(chromedp.ID("reason-restore"), "last clean backup"), chromedp.Click(chromedp.ID("approve-restore")),
		chromedp.WaitVisible(chromedp.CSS(`#step-restore:not([data-status="waiting_approval"])`)))
	bob.do(t, "recovery, live", chromedp.WaitVisible(chromedp.CSS(`#step-probe[data-status="succeeded"]`)),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="state"]/strong[.="`+workflows.StateResolved+`"]`)))
	if n := len(s.decisionsBy(t, st.IncidentID, "bob")); n < 2 {
		t.Errorf("the ledger records %d decisions of bob, want his 2 approvals", n)
	}
	bob.do(t, "the resolved room", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("report-link")))
	bob.screenshot(t, shots, "console-room-resolved.png")

	bob.do(t, "bob opens the report", chromedp.Click(chromedp.ID("report-link")), chromedp.WaitVisible(chromedp.ID("report")))
	if report := textOf(t, bob, "#report"); !strings.Contains(report, st.IncidentID) || !strings.Contains(report, labAsset) {
		t.Errorf("report text %q", report)
	}
	bob.screenshot(t, shots, "console-report.png")
	weight(t, bob, "report")

	// Each page fits a phone and the 1280x800 window.
	for _, pg := range []struct{ name, url, ready string }{
		{"incidents list", s.base + "/", "incidents"}, {"incident room", room, "steps"}, {"report", room + "/report", "report"},
	} {
		bob.do(t, "open "+pg.name, chromedp.Navigate(pg.url), chromedp.WaitVisible(chromedp.ID(pg.ready)))
		noOverflow(t, bob, pg.name, 390, 844)
		if pg.name == "incident room" {
			bob.screenshot(t, shots, "console-room-phone.png")
		}
		noOverflow(t, bob, pg.name, 1280, 800)
	}

	// Sign-out ends the session on the server: the old cookie is refused.
	stolen := sessionCookieOf(t, bob, s.base)
	bob.do(t, "bob signs out", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("logout")),
		chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("signin")))
	secure, httpOnly := true, true
	if _, err := chromedp.Call(bob.ctx, network.SetCookie, network.SetCookieParams{Name: stolen.Name, Value: stolen.Value, URL: s.base + "/",
		Path: "/", Secure: &secure, HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteStrict}); err != nil {
		t.Fatal(err)
	}
	bob.do(t, "bob's old session", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.ID("error")))
	if after := textOf(t, bob, "#error"); !strings.Contains(after, "not signed in") {
		t.Errorf("after logout the old session cookie opens the room: %q", after)
	}
	if sess, err := s.p.Lab.Keycloak.Sessions(keycloak.Realm, "bob"); err != nil || len(sess) != 0 {
		t.Errorf("bob's Keycloak sessions after sign-out: %d (%v)", len(sess), err)
	}

	for _, c := range []*chrome{bob, alice} {
		if v := c.cspViolations(); len(v) > 0 {
			t.Errorf("CSP violations: %q", v)
		}
	}
	t.Logf("screenshots in %s", filepath.Clean(shots))
}

// stepOf is step id of st (zero when absent).
func stepOf(st workflows.IncidentStatus, id string) workflows.StepState {
	for _, s := range st.Steps {
		if s.ID == id {
			if s.Approval == nil {
				s.Approval = &workflows.ApprovalState{}
			}
			return s
		}
	}
	return workflows.StepState{Approval: &workflows.ApprovalState{}}
}
