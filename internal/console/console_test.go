package console

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/activities/drillreport"
	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

func TestSignInSetsAStrictSessionAndTheCSPForbidsInlineScript(t *testing.T) {
	e := newEnv(t, time.Second)
	b := e.browser()
	b.signIn("bob")
	var cookie string
	for _, c := range b.last.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, sessionCookie+"=") {
			cookie = c
		}
	}
	for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("session cookie %q lacks %s", cookie, attr)
		}
	}
	code, page := b.do(http.MethodGet, e.base+"/", nil)
	if code != http.StatusOK || !strings.Contains(page, `data-key="`+incidentKey+`"`) || !strings.Contains(page, "ir-lead: approve shutdown (0/1)") {
		t.Fatalf("list: %d %s", code, page)
	}
	csp := b.last.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP = %q", csp)
	}
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+=`).MatchString(page) {
		t.Errorf("page has inline script or an event handler attribute:\n%s", page)
	}
}

// Bob (OTP) approves through the console: the decision reaches the
// workflow through the API's approve route, signed with his identity and
// amr. Alice (no approving role, no OTP) sees no button, and her forged
// post is refused by the API; posts without the session's CSRF token or
// from another origin are refused before the API is called.
func TestDecisionsGoThroughTheAPI(t *testing.T) {
	e := newEnv(t, time.Second)
	alice, bob := e.browser(), e.browser()
	alice.signIn("alice")
	bob.signIn("bob")
	approve := e.roomURL() + "/steps/shutdown/approve"

	_, page := alice.do(http.MethodGet, e.roomURL(), nil)
	if strings.Contains(page, `id="approve-shutdown"`) || !strings.Contains(page, `data-status="waiting_approval"`) {
		t.Fatalf("alice's room:\n%s", page)
	}
	code, page := alice.do(http.MethodPost, approve, url.Values{"csrf": {alice.csrf(page)}, "reason": {"forged"}})
	if code != http.StatusForbidden || !strings.Contains(page, "mfa_required") {
		t.Fatalf("alice's forged approval: %d %s", code, page)
	}

	_, page = bob.do(http.MethodGet, e.roomURL(), nil)
	if !strings.Contains(page, `id="approve-shutdown"`) {
		t.Fatalf("bob's room has no approve button:\n%s", page)
	}
	token := bob.csrf(page)
	attacks := []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"no CSRF token (cross-site form)", url.Values{"reason": {"x"}}, nil},
		{"another session's CSRF token", url.Values{"csrf": {alice.csrf(page)}, "reason": {"x"}}, nil},
		{"right token, foreign origin", url.Values{"csrf": {token}, "reason": {"x"}}, []string{"Origin", "https://evil.example"}},
	}
	for _, a := range attacks {
		if a.name == "another session's CSRF token" {
			_, ap := alice.do(http.MethodGet, e.roomURL(), nil)
			a.form.Set("csrf", alice.csrf(ap))
		}
		if code, page := bob.do(http.MethodPost, approve, a.form, a.header...); code != http.StatusForbidden || !strings.Contains(page, "CSRF") {
			t.Errorf("%s: %d %s", a.name, code, page)
		}
	}
	if _, n := e.temporal.counts(); n != 0 {
		t.Fatalf("%d updates reached the workflow before bob's approval", n)
	}

	code, page = bob.do(http.MethodPost, approve, url.Values{"csrf": {token}, "reason": {"contain web-01"}}, "Origin", strings.TrimSuffix(e.base, Prefix))
	if code != http.StatusOK || !strings.Contains(page, "approve of shutdown recorded: the step is running (1 of 1 approvals)") || !strings.Contains(page, `data-status="running"`) {
		t.Fatalf("bob's approval: %d %s", code, page)
	}
	e.temporal.mu.Lock()
	defer e.temporal.mu.Unlock()
	if len(e.temporal.updates) != 1 {
		t.Fatalf("updates = %d", len(e.temporal.updates))
	}
	u := e.temporal.updates[0]
	in := u.Args[0].(workflows.DecisionInput)
	stmt, err := decision.Decode(in.Statement.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if u.UpdateName != workflows.ApproveUpdate || in.StepID != "shutdown" || in.Approver.Username != "bob" || in.Reason != "contain web-01" ||
		!slices.Contains(stmt.AMR, "otp") || stmt.Subject != "keycloak:iru/bob" || stmt.StepID != "shutdown" {
		t.Fatalf("update %s %+v", u.UpdateName, in)
	}
}

func TestLogoutEndsTheConsoleAndKeycloakSessions(t *testing.T) {
	e := newEnv(t, time.Second)
	b := e.browser()
	b.signIn("bob")
	_, page := b.do(http.MethodGet, e.roomURL(), nil)
	var access string
	e.console.store.mu.Lock()
	for _, s := range e.console.store.sessions {
		access = s.token.AccessToken
	}
	e.console.store.mu.Unlock()

	code, page := b.do(http.MethodPost, e.base+"/logout", url.Values{"csrf": {b.csrf(page)}})
	if code != http.StatusOK || !strings.Contains(page, `id="signin"`) || b.last.Request.URL.String() != e.base+"/" {
		t.Fatalf("logout ended at %s: %d %s", b.last.Request.URL, code, page)
	}
	if code, _ := b.do(http.MethodGet, e.roomURL(), nil); code != http.StatusUnauthorized {
		t.Errorf("room after logout: %d", code)
	}
	// The session cookie itself, replayed, is refused.
	if code, _ := b.do(http.MethodGet, e.roomURL(), nil, "Cookie", sessionCookie+"="+strings.Repeat("A", 43)); code != http.StatusUnauthorized {
		t.Errorf("a made-up session: %d", code)
	}
	// Keycloak ended the session: the API refuses a decision with the old token.
	req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(e.base, Prefix)+api.APIPrefix+"/incidents/"+url.PathEscape(incidentKey)+"/steps/shutdown/approve", strings.NewReader(`{"reason":"r"}`))
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("API decision with the signed-out token: %d, want 403 session_revoked", resp.StatusCode)
	}
	if _, n := e.temporal.counts(); n != 0 {
		t.Errorf("%d updates after logout", n)
	}
}

// Every route but sign-in, static files and the landing page needs a
// session, and answers without calling the API.
func TestEveryConsoleRouteNeedsASession(t *testing.T) {
	e := newEnv(t, time.Second)
	b := e.browser()
	wildcard := regexp.MustCompile(`\{[a-z]+\}`)
	for _, rt := range e.console.Routes() {
		if rt.Public {
			continue
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = strings.TrimPrefix(wildcard.ReplaceAllString(path, "x"), Prefix)
		var form url.Values
		if method == http.MethodPost {
			form = url.Values{"csrf": {"guess"}, "reason": {"r"}}
		}
		if code, _ := b.do(method, e.base+path, form); code != http.StatusUnauthorized {
			t.Errorf("%s without a session: %d, want 401", rt.Pattern, code)
		}
	}
	if q, u := e.temporal.counts(); q != 0 || u != 0 {
		t.Errorf("anonymous requests reached Temporal: %d queries, %d updates", q, u)
	}
}

func TestSignInRefusals(t *testing.T) {
	e := newEnv(t, time.Second)
	b := e.browser()
	// A callback this browser did not start (login CSRF) is refused.
	if code, page := b.do(http.MethodGet, e.base+"/callback?state=x&code=y", nil); code != http.StatusBadRequest || strings.Contains(page, `id="continue"`) {
		t.Errorf("foreign callback: %d %s", code, page)
	}
	// A replayed callback URL is refused (state and code are single-use).
	b.signIn("alice")
	callback := b.last.Request.URL.String()
	other := e.browser()
	if code, _ := other.do(http.MethodGet, callback, nil); code != http.StatusBadRequest {
		t.Errorf("replayed callback in another browser: %d", code)
	}
	if code, _ := b.do(http.MethodGet, callback, nil); code != http.StatusBadRequest {
		t.Errorf("replayed callback: %d", code)
	}
}

func TestLocalPathKeepsTheDestinationInTheConsole(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/console/incidents/a", "/console/incidents/a"},
		{"/console/?state=open", "/console/?state=open"},
		{"https://evil.example/console/", "/console/"},
		{"//evil.example/console/", "/console/"},
		{"/\\evil.example/console/", "/console/"},
		{"/api/v1/incidents", "/console/"},
		{"", "/console/"},
	}
	for _, tt := range tests {
		if got := localPath(tt.in); got != tt.want {
			t.Errorf("localPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// sse reads the events of one stream.
type sse struct {
	events chan string
	cancel context.CancelFunc
}

func (b *browser) stream(t *testing.T, u string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	hc := *b.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream %s: %d %s", u, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{events: make(chan string, 100), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev strings.Builder
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				s.events <- ev.String()
				ev.Reset()
				continue
			}
			ev.WriteString(line + "\n")
		}
		close(s.events)
	}()
	t.Cleanup(cancel)
	return s
}

// next waits for an event containing want.
func (s *sse) next(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended before %q", want)
			}
			if strings.Contains(ev, want) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event with %q", want)
		}
	}
}

// Pages watching the same incident share one reader: the status is read
// once per interval whatever the number of pages, and a change reaches
// all of them, rendered for each viewer.
func TestLiveUpdatesShareOneReaderPerIncident(t *testing.T) {
	const poll = 100 * time.Millisecond
	e := newEnv(t, poll)
	alice, bob := e.browser(), e.browser()
	alice.signIn("alice")
	bob.signIn("bob")
	events := e.roomURL() + "/events"
	sa, sb := alice.stream(t, events), bob.stream(t, events)
	sa.next(t, `data-status="waiting_approval"`)
	if ev := sb.next(t, `data-status="waiting_approval"`); !strings.Contains(ev, `id="approve-shutdown"`) {
		t.Fatalf("bob's live room has no approve button:\n%s", ev)
	}
	key := incidentPath(incidentKey)
	for e.console.hub.watchers(key) != 2 {
		time.Sleep(10 * time.Millisecond)
	}
	q0, _ := e.temporal.counts()
	start := time.Now()
	time.Sleep(20 * poll)
	q1, _ := e.temporal.counts()
	ticks := int(time.Since(start) / poll)
	if reads := q1 - q0; reads > ticks+1 {
		t.Errorf("%d status reads in %d intervals for 2 watching pages: want at most one per interval", reads, ticks)
	}

	e.temporal.set(func(st *workflows.IncidentStatus) {
		st.Steps[1].Status = workflows.StepRunning
		st.Timeline = append(st.Timeline, workflows.TimelineEntry{At: time.Now().UTC(), What: "approved shutdown", Actor: "bob"})
	})
	ea, eb := sa.next(t, `data-status="running"`), sb.next(t, `data-status="running"`)
	for _, ev := range []string{ea, eb} {
		if !strings.HasPrefix(ev, "event: update\n") || !strings.Contains(ev, "approved shutdown") || strings.Contains(ev, `id="approve-shutdown"`) {
			t.Errorf("update event:\n%s", ev)
		}
	}

	// Signing out ends the stream.
	_, page := bob.do(http.MethodGet, e.roomURL(), nil)
	bob.do(http.MethodPost, e.base+"/logout", url.Values{"csrf": {bob.csrf(page)}})
	sb.next(t, "event: signedout")
}

// The room lists the evidence with its hash; the report and a download are
// read through the API's routes (each read is recorded with the reader's
// identity) and the report is rendered without the raw HTML it contains.
func TestEvidenceAndReport(t *testing.T) {
	e := newEnv(t, time.Second)
	b := e.browser()
	b.signIn("bob")
	_, page := b.do(http.MethodGet, e.roomURL(), nil)
	if !strings.Contains(page, e.locker.meta.SHA256) || !strings.Contains(page, "operational") {
		t.Fatalf("room evidence:\n%s", page)
	}
	code, page := b.do(http.MethodGet, e.roomURL()+"/report", nil)
	if code != http.StatusOK || !strings.Contains(page, "<strong>web-01</strong>") || strings.Contains(page, "<script>alert") {
		t.Fatalf("report: %d %s", code, page)
	}
	_, room := b.do(http.MethodGet, e.roomURL(), nil)
	if !strings.Contains(room, `href="`+Prefix+"/incidents/"+url.PathEscape(incidentKey)+"/evidence/"+e.locker.meta.SHA256+`"`) {
		t.Fatalf("no download link in the room:\n%s", room)
	}
	code, body := b.do(http.MethodGet, e.roomURL()+"/evidence/"+e.locker.meta.SHA256, nil)
	if code != http.StatusOK || body != e.locker.body || b.last.Header.Get("X-Evidence-SHA256") != e.locker.meta.SHA256 {
		t.Fatalf("download: %d %q", code, body)
	}
	for _, bad := range []string{strings.Repeat("0", 64), "../report", strings.ToUpper(e.locker.meta.SHA256)} {
		if code, _ := b.do(http.MethodGet, e.roomURL()+"/evidence/"+url.PathEscape(bad), nil); code != http.StatusNotFound && code != http.StatusBadRequest {
			t.Errorf("download of %q: %d", bad, code)
		}
	}
	e.locker.mu.Lock()
	defer e.locker.mu.Unlock()
	if len(e.locker.reads) != 2 || e.locker.reads[0].Identity != "keycloak:iru/bob" || e.locker.reads[1].Identity != "keycloak:iru/bob" ||
		!strings.Contains(e.locker.reads[1].Reason, "evidence download") {
		t.Fatalf("custody reads = %+v", e.locker.reads)
	}
}

// The room's incident-wide forms (note, acknowledge, escalate, abort) go
// through the API's routes as the signed-in person: each reaches the
// workflow or the locker once, with bob's identity. Alice (ir-responder)
// has no abort form, and her forged abort, with her own session's CSRF
// token, is refused by the API's role check before any signal; a post
// without the CSRF token and an empty note reach nothing.
func TestIncidentActionsGoThroughTheAPI(t *testing.T) {
	e := newEnv(t, time.Second)
	alice, bob := e.browser(), e.browser()
	alice.signIn("alice")
	bob.signIn("bob")

	_, page := alice.do(http.MethodGet, e.roomURL(), nil)
	for _, want := range []string{`id="add-note"`, `id="acknowledge"`, `id="escalate"`} {
		if !strings.Contains(page, want) {
			t.Errorf("alice's room lacks %s", want)
		}
	}
	if strings.Contains(page, `id="abort"`) {
		t.Error("alice (ir-responder) sees the abort form")
	}
	code, page := alice.do(http.MethodPost, e.roomURL()+"/abort", url.Values{"csrf": {alice.csrf(page)}, "reason": {"forged"}})
	if code != http.StatusForbidden || !strings.Contains(page, "ir-lead") {
		t.Errorf("alice's forged abort: %d %s", code, page)
	}
	e.temporal.mu.Lock()
	if len(e.temporal.signals) != 0 {
		t.Errorf("alice's forged abort signalled the workflow: %v", e.temporal.signals)
	}
	e.temporal.mu.Unlock()

	_, page = bob.do(http.MethodGet, e.roomURL(), nil)
	if !strings.Contains(page, `id="abort"`) {
		t.Fatalf("bob's room has no abort form:\n%s", page)
	}
	token := bob.csrf(page)
	if code, _ := bob.do(http.MethodPost, e.roomURL()+"/acknowledge", url.Values{"reason": {"no token"}}); code != http.StatusForbidden {
		t.Errorf("acknowledge without the CSRF token: %d", code)
	}
	if code, _ := bob.do(http.MethodPost, e.roomURL()+"/notes", url.Values{"csrf": {token}, "text": {"  "}}); code != http.StatusBadRequest {
		t.Errorf("empty note: %d", code)
	}
	if _, n := e.temporal.counts(); n != 0 || len(e.locker.puts) != 0 {
		t.Fatalf("refused forms reached the workflow (%d updates) or the locker (%d)", n, len(e.locker.puts))
	}

	tests := []struct {
		action, field, value, flash string
		// reached reports whether the action's effect is there.
		reached func() bool
	}{
		{"notes", "text", "web-01 shell came from the CI runner", "Note added to the evidence", func() bool {
			e.locker.mu.Lock()
			defer e.locker.mu.Unlock()
			return len(e.locker.puts) == 1 && e.locker.puts[0].CollectedBy == "keycloak:iru/bob" && e.locker.notes[0] == "web-01 shell came from the CI runner\n"
		}},
		{"acknowledge", "reason", "on it", "Incident acknowledged", func() bool {
			e.temporal.mu.Lock()
			defer e.temporal.mu.Unlock()
			u := e.temporal.updates[len(e.temporal.updates)-1]
			in, ok := u.Args[0].(workflows.AcknowledgeInput)
			return u.UpdateName == workflows.AcknowledgeUpdate && ok && in.By.Username == "bob" && in.Reason == "on it"
		}},
		{"escalate", "reason", "needs the network team", "Incident escalated", func() bool {
			e.temporal.mu.Lock()
			defer e.temporal.mu.Unlock()
			u := e.temporal.updates[len(e.temporal.updates)-1]
			in, ok := u.Args[0].(workflows.EscalateInput)
			return u.UpdateName == workflows.EscalateUpdate && ok && in.By.Username == "bob"
		}},
		{"abort", "reason", "false positive", "Abort requested", func() bool {
			e.temporal.mu.Lock()
			defer e.temporal.mu.Unlock()
			return slices.Equal(e.temporal.signals, []string{workflows.AbortSignal})
		}},
	}
	for _, tt := range tests {
		code, page := bob.do(http.MethodPost, e.roomURL()+"/"+tt.action, url.Values{"csrf": {token}, tt.field: {tt.value}})
		if code != http.StatusOK || !strings.Contains(page, tt.flash) {
			t.Errorf("%s: %d %s", tt.action, code, page)
			continue
		}
		if !tt.reached() {
			t.Errorf("%s: the API did not carry it to the workflow or the locker as bob", tt.action)
		}
	}
}

// The playbooks page draws each playbook as its six phases with its steps
// (approval gates, parallel groups and undo actions marked), and a broken
// file as the validator's errors, line numbers included, without hiding
// the valid ones.
func TestPlaybooksPage(t *testing.T) {
	good, err := fs.ReadFile(playbooks.EmbeddedFS(), "container-compromise.yaml")
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(good), "action: pve.shutdown", "action: pve.explode", 1)
	broken = strings.Replace(broken, "name: container-compromise", "name: broken-compromise", 1)
	e := newEnv(t, time.Second)
	e.console.playbooks = fstest.MapFS{
		"container-compromise.yaml": {Data: good},
		"broken.yaml":               {Data: []byte(broken)},
		"README.md":                 {Data: []byte("not a playbook")},
	}
	b := e.browser()
	b.signIn("alice")
	code, page := b.do(http.MethodGet, e.base+"/playbooks", nil)
	if code != http.StatusOK {
		t.Fatalf("playbooks page: %d %s", code, page)
	}
	checks := []struct{ what, want string }{
		{"the valid playbook", `container-compromise <small>v1.3.0`},
		{"its approval gate", `<strong>shutdown</strong> <code>pve.shutdown</code>`},
		{"the gate's roles", `approval: ir-lead ×1`},
		{"the parallel group", `pb-entry parallel`},
		{"an undo action", `undo: pve.unisolate`},
		{"the broken file", `broken.yaml <span class="invalid">invalid</span>`},
		{"the validator's error with its line", `broken.yaml:`},
		{"the unknown action", `pve.explode`},
	}
	for _, c := range checks {
		if !strings.Contains(page, c.want) {
			t.Errorf("%s: no %q in the page", c.what, c.want)
		}
	}
	if n := strings.Count(page, `<li class="pb-phase">`); n != len(playbooks.Phases) {
		t.Errorf("%d phases drawn, want %d (the broken file draws none)", n, len(playbooks.Phases))
	}
	if strings.Contains(page, "README") {
		t.Error("a non-YAML file is shown as a playbook")
	}
	// The shipped playbooks all load.
	e.console.playbooks = playbooks.EmbeddedFS()
	_, page = b.do(http.MethodGet, e.base+"/playbooks", nil)
	if strings.Contains(page, `class="invalid"`) || strings.Count(page, `<section class="playbook"`) < 5 {
		t.Errorf("shipped playbooks page:\n%s", page)
	}
}

// fakeDrills is a DrillSource with fixed schedules.
type fakeDrills []DrillView

func (f fakeDrills) Drills(context.Context) ([]DrillView, error) { return f, nil }

// The drills page shows each schedule, its next run, and a matrix of its
// objectives (met or missed, with the measured time) per recent run; a
// run still going shows no result. Someone without a responder role
// (jdoe) is refused.
func TestDrillsPage(t *testing.T) {
	next := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	run := func(day int, passed bool, contain time.Duration) DrillRun {
		return DrillRun{WorkflowID: fmt.Sprintf("drill:canary:run-%d", day), StartedAt: time.Date(2026, 12, day, 3, 0, 0, 0, time.UTC), Status: "Completed",
			Report: &drillreport.Report{Drill: "canary", Passed: passed, State: workflows.StateResolved, Objectives: []drillreport.ObjectiveResult{
				{Name: workflows.ObjectiveContain, Within: time.Minute, Reached: true, Measured: contain, Pass: contain <= time.Minute},
				{Name: workflows.ObjectiveRecover, Within: time.Hour, Reached: true, Measured: 20 * time.Minute, Pass: true},
			}}}
	}
	e := newEnv(t, time.Second)
	e.console.drills = fakeDrills{{ID: workflows.DrillScheduleID("canary"), Name: "canary", Schedule: "cron 0 3 * * *", NextRun: next,
		Runs: []DrillRun{run(3, true, 40*time.Second), run(4, false, 90*time.Second), {WorkflowID: "drill:canary:run-5", Status: "Running", StartedAt: next.Add(-time.Hour)}}}}
	b := e.browser()
	b.signIn("alice")
	code, page := b.do(http.MethodGet, e.base+"/drills", nil)
	if code != http.StatusOK {
		t.Fatalf("drills page: %d %s", code, page)
	}
	for _, want := range []string{
		`id="drill-canary"`, "cron 0 3 * * *", "next run 2026-12-06 03:00:00Z", "3 recent run(s)",
		`<th scope="row">` + workflows.ObjectiveContain + `</th>`,
		`<td class="pass">met · 40s`, `<td class="fail">missed · 1m30s`, "Running",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("no %q in the drills page", want)
		}
	}
	if n := strings.Count(page, `<td class="meta">–</td>`); n != 2 {
		t.Errorf("the running run shows %d empty cells, want 2 (one per objective)", n)
	}
	other := e.browser()
	other.signIn("jdoe")
	if code, page := other.do(http.MethodGet, e.base+"/drills", nil); code != http.StatusForbidden || strings.Contains(page, "drill-canary") {
		t.Errorf("jdoe's drills page: %d", code)
	}
}

// trendsOf groups response times per ISO week and per playbook (means, in
// minutes), counts open incidents by phase, ages waiting approvals, and
// scores each drill run by the share of its objectives met; drills are
// left out of the response times.
func TestTrendsOf(t *testing.T) {
	now := time.Date(2026, 12, 9, 12, 0, 0, 0, time.UTC) // week 50
	inc := func(id, playbook, state, phase string, opened time.Time, detect, contain, recover time.Duration, drill bool) api.IncidentView {
		st := api.StatusView{IncidentID: id, Playbook: playbook, State: state, Phase: phase, OpenedAt: opened, Drill: drill,
			Alerts:  []api.AlertView{{ObservedAt: opened.Add(-detect)}},
			Metrics: api.MetricsView{TimeToContainSeconds: contain.Seconds(), TimeToRecoverSeconds: recover.Seconds()}}
		return api.IncidentView{ID: id, Status: st}
	}
	wk49 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	wk50 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	waiting := inc("INC-3", "container-compromise", workflows.StateOpen, playbooks.PhaseRemediation, wk50, time.Minute, 2*time.Minute, 0, false)
	waiting.Status.Steps = []api.StepView{{ID: "shutdown", Status: workflows.StepWaitingApproval, StartedAt: now.Add(-2 * time.Hour),
		Approval: &api.ApprovalView{Roles: []string{"ir-lead"}, Quorum: 1}}}
	incidents := []api.IncidentView{
		inc("INC-1", "container-compromise", workflows.StateResolved, playbooks.PhasePostIncident, wk49, 2*time.Minute, 4*time.Minute, 60*time.Minute, false),
		inc("INC-2", "credential-compromise", workflows.StateResolved, playbooks.PhasePostIncident, wk49, 4*time.Minute, 8*time.Minute, 30*time.Minute, false),
		waiting,
		inc("DRILL-1", "container-compromise", workflows.StateResolved, playbooks.PhasePostIncident, wk50, time.Hour, time.Hour, time.Hour, true),
	}
	drillRuns := []DrillView{{Name: "canary", Runs: []DrillRun{
		{StartedAt: wk49, Report: &drillreport.Report{Objectives: []drillreport.ObjectiveResult{{Pass: true}, {Pass: true}}}},
		{StartedAt: wk50, Report: &drillreport.Report{Objectives: []drillreport.ObjectiveResult{{Pass: true}, {Pass: false}}}},
		{StartedAt: now, Status: "Running"},
	}}}
	tv := trendsOf(incidents, drillRuns, now)
	charts := map[string][]bar{}
	for _, c := range tv.Charts {
		charts[c.ID] = c.Bars
	}
	type want struct {
		label string
		value float64
	}
	tests := []struct {
		chart string
		want  []want
	}{
		{"detect-week", []want{{"2026-W49", 3}, {"2026-W50", 1}}},
		{"contain-week", []want{{"2026-W49", 6}, {"2026-W50", 2}}},
		{"recover-week", []want{{"2026-W49", 45}}},
		{"contain-playbook", []want{{"container-compromise", 3}, {"credential-compromise", 8}}},
		{"approvals-waiting", []want{{"INC-3 shutdown", 120}}},
		{"drill-objectives", []want{{"canary 12-01", 100}, {"canary 12-08", 50}}},
	}
	for _, tt := range tests {
		got := charts[tt.chart]
		if len(got) != len(tt.want) {
			t.Errorf("%s: bars %+v, want %+v", tt.chart, got, tt.want)
			continue
		}
		for i, w := range tt.want {
			if got[i].Label != w.label || math.Abs(got[i].Value-w.value) > 1e-9 {
				t.Errorf("%s bar %d: %s=%v, want %s=%v", tt.chart, i, got[i].Label, got[i].Value, w.label, w.value)
			}
		}
	}
	if tv.Incidents != 3 {
		t.Errorf("incidents counted %d, want 3 (the drill left out)", tv.Incidents)
	}
	for _, b := range charts["open-phase"] {
		if want := map[string]float64{playbooks.PhaseRemediation: 1}[b.Label]; b.Value != want {
			t.Errorf("open in %s: %v, want %v", b.Label, b.Value, want)
		}
	}
	if w := charts["approvals-waiting"]; len(w) == 1 && (w[0].Tone != "bad" || w[0].W != chartBarW) {
		t.Errorf("a 2-hour wait: tone %s width %v", w[0].Tone, w[0].W)
	}
	if d := charts["drill-objectives"]; len(d) == 2 && (d[1].Tone != "bad" || d[1].W != chartBarW/2) {
		t.Errorf("a half-met drill: tone %s width %v", d[1].Tone, d[1].W)
	}
}

// The trends page draws its charts as inline SVG from the API's data with
// the viewer's token: the fake incident waits for an approval, so the
// open-by-phase and approvals-waiting charts have bars.
func TestTrendsPage(t *testing.T) {
	e := newEnv(t, time.Second)
	b := e.browser()
	b.signIn("alice")
	code, page := b.do(http.MethodGet, e.base+"/trends", nil)
	if code != http.StatusOK {
		t.Fatalf("trends: %d %s", code, page)
	}
	for _, want := range []string{`id="chart-open-phase"`, `<svg viewBox="0 0 480`, `role="img"`, `INC-20260101-0001 shutdown`, `class="bar ok"`, `id="waiting"`} {
		if !strings.Contains(page, want) {
			t.Errorf("no %q in the trends page", want)
		}
	}
}

func TestCalendarText(t *testing.T) {
	r := func(a, b, step int) client.ScheduleRange { return client.ScheduleRange{Start: a, End: b, Step: step} }
	tests := []struct {
		name string
		cal  client.ScheduleCalendarSpec
		want string
	}{
		{"Monday 03:00 (from 0 3 * * MON)", client.ScheduleCalendarSpec{Minute: []client.ScheduleRange{r(0, 0, 1)}, Hour: []client.ScheduleRange{r(3, 0, 1)},
			DayOfMonth: []client.ScheduleRange{r(1, 31, 1)}, Month: []client.ScheduleRange{r(1, 12, 1)}, DayOfWeek: []client.ScheduleRange{r(1, 0, 1)}}, "at 0 3 * * 1"},
		{"every 15 minutes on weekdays", client.ScheduleCalendarSpec{Minute: []client.ScheduleRange{r(0, 59, 15)}, DayOfWeek: []client.ScheduleRange{r(1, 5, 1)}}, "at 0-59/15 * * * 1-5"},
		{"two hours, a comment", client.ScheduleCalendarSpec{Hour: []client.ScheduleRange{r(2, 0, 0), r(14, 0, 0)}, Comment: "twice a day"}, "at * 2,14 * * * (twice a day)"},
	}
	for _, tt := range tests {
		if got := calendarText(tt.cal); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// The trend metrics are the trends page's figures, read with the API
// server's own client: the fake incident is open in containment with its
// shutdown waiting 5 minutes for approval.
func TestTrendMetrics(t *testing.T) {
	ft := newFakeTemporal()
	now := ft.status.OpenedAt.Add(5 * time.Minute)
	m := &TrendMetrics{Client: ft, Drills: fakeDrills{{Name: "canary", Runs: []DrillRun{{StartedAt: now,
		Report: &drillreport.Report{Objectives: []drillreport.ObjectiveResult{{Pass: true}, {Pass: false}}}}}}}, Now: func() time.Time { return now }}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	gather := func() map[string]float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, mt := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range mt.GetLabel() {
					key += "{" + l.GetValue() + "}"
				}
				out[key] = mt.GetGauge().GetValue()
			}
		}
		return out
	}
	if got := gather(); len(got) != 0 {
		t.Fatalf("before the first refresh: %v, want nothing", got)
	}
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := gather()
	want := map[string]float64{
		"iru_approval_waiting_minutes{INC-20260101-0001 shutdown}":                   5,
		"iru_drill_objectives_met_percent{canary " + now.UTC().Format("01-02") + "}": 50,
		"iru_incidents_open{" + playbooks.PhaseContainment + "}":                     1,
		"iru_incidents_open{" + playbooks.PhaseRecovery + "}":                        0,
		"iru_trend_updated_timestamp_seconds":                                        float64(now.Unix()),
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if q, _ := ft.counts(); q != 1 {
		t.Errorf("status queries: %d, want 1 (one per incident)", q)
	}
}

// The Grafana dashboard in deploy/grafana is valid JSON whose every panel
// queries a metric TrendMetrics exports, and every exported trend metric
// has a panel.
func TestGrafanaDashboardQueriesTheTrendMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "iru-trends.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	names := map[string]bool{}
	for _, desc := range trendDescs {
		names[regexp.MustCompile(`fqName: "([a-z_]+)"`).FindStringSubmatch(desc.String())[1]] = true
	}
	metricRE := regexp.MustCompile(`iru_[a-z_]+`)
	used := map[string]bool{}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricRE.FindAllString(tg.Expr, -1) {
				if !names[m] {
					t.Errorf("panel %q queries %s, which the console does not export", p.Title, m)
				}
				used[m] = true
			}
		}
	}
	for n := range names {
		if !used[n] {
			t.Errorf("metric %s has no panel", n)
		}
	}
	if d.UID == "" {
		t.Error("dashboard without a uid")
	}
}
