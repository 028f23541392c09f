//go:build integration

package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/notify"
	"github.com/iru-responder/responder/workflows"
)

// recordingTemporal answers every call with NotFound and records the
// workflow ids it was asked about.
type recordingTemporal struct {
	IncidentClient
	ids []string
}

func (r *recordingTemporal) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	r.ids = append(r.ids, id)
	return nil, serviceerror.NewNotFound("workflow not found")
}

// TestEveryRouteNeedsCredentials walks the route table: every route but
// health, readiness and metrics answers 401 without a token, so a new
// route cannot be added unprotected.
func TestEveryRouteNeedsCredentials(t *testing.T) {
	kc := labKeycloak(t)
	rs, err := NewResponder(ResponderOptions{Config: testConfig(kc), Temporal: &recordingTemporal{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Log: slogNop(), Temporal: fakeTemporal{}, Responder: rs,
		Intake: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("intake called") }), IntakePattern: "POST /v1/alerts/{detector}"}
	h := srv.Handler()
	wildcard := regexp.MustCompile(`\{[a-z]+\}`)
	public, protected := 0, 0
	for _, rt := range srv.Routes() {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = wildcard.ReplaceAllString(path, "x")
		t.Run(rt.Pattern, func(t *testing.T) {
			if rt.Pattern == srv.IntakePattern {
				return // the intake authenticates detectors itself (its tests prove it)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(`{"reason":"r"}`)))
			if rt.Public {
				public++
				if rec.Code == http.StatusUnauthorized {
					t.Errorf("public route answers 401")
				}
				return
			}
			protected++
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401 (body %s)", rec.Code, rec.Body)
			}
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
			}
			if strings.TrimSpace(rec.Body.String()) != `{"error":"unauthenticated"}` {
				t.Errorf("body = %s", rec.Body)
			}
		})
	}
	if public != 2 || protected != len(rs.Routes()) {
		t.Errorf("walked %d public and %d protected routes, want 2 and %d", public, protected, len(rs.Routes()))
	}
}

// TestIncidentIDInPath: the path id is the correlation key; an encoded
// slash stays in the key, an "incident:" prefix is accepted, and an
// unknown incident is 404.
func TestIncidentIDInPath(t *testing.T) {
	kc := labKeycloak(t)
	rt := &recordingTemporal{}
	rs, err := NewResponder(ResponderOptions{Config: testConfig(kc), Temporal: rt})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer((&Server{Log: slogNop(), Temporal: fakeTemporal{}, Responder: rs}).Handler())
	defer api.Close()
	tok := login(t, kc, "alice")
	tests := []struct{ path, wantID string }{
		{"/api/v1/incidents/container-compromise:web-01", "incident:container-compromise:web-01"},
		{"/api/v1/incidents/incident:container-compromise:web-01", "incident:container-compromise:web-01"},
		{"/api/v1/incidents/rule:a%2Fb%20c", "incident:rule:a/b c"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rt.ids = nil
			var e apiError
			if code, raw := call(t, api.URL, "GET", tt.path, tok, nil, &e, nil); code != http.StatusNotFound || e.Code != "not_found" {
				t.Fatalf("status %d body %s, want 404 not_found", code, raw)
			}
			if len(rt.ids) == 0 || rt.ids[0] != tt.wantID {
				t.Errorf("asked Temporal about %q, want %q", rt.ids, tt.wantID)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	trusted := ClientIP{Trusted: []netip.Prefix{mustPrefix(t, "10.0.0.0/8"), mustPrefix(t, "192.0.2.1")}}
	tests := []struct {
		name, remote, xff string
		c                 ClientIP
		want              string
	}{
		{"no proxies: header ignored", "198.51.100.7:5555", "203.0.113.9", ClientIP{}, "198.51.100.7"},
		{"untrusted peer: header ignored", "198.51.100.7:5555", "203.0.113.9", trusted, "198.51.100.7"},
		{"trusted peer", "10.1.2.3:5555", "203.0.113.9", trusted, "203.0.113.9"},
		{"chain of trusted proxies", "10.1.2.3:5555", "203.0.113.9, 192.0.2.1, 10.9.9.9", trusted, "203.0.113.9"},
		{"spoofed left part is not believed", "10.1.2.3:5555", "1.1.1.1, 203.0.113.9", trusted, "203.0.113.9"},
		{"garbage hop stops the walk", "10.1.2.3:5555", "203.0.113.9, junk", trusted, "10.1.2.3"},
		{"ipv6", "[2001:db8::1]:443", "", trusted, "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := tt.c.Resolve(r); got != tt.want {
				t.Errorf("Resolve = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config { return configFor("http://127.0.0.1:1") }
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"bad proxy", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, "IRU_API_TRUSTED_PROXIES"},
		{"zero threshold", func(c *Config) { c.AuthFailThreshold = 0 }, "IRU_AUTH_FAIL_THRESHOLD"},
		{"zero window", func(c *Config) { c.AuthFailWindow = 0 }, "IRU_AUTH_FAIL_WINDOW"},
		{"tiny body", func(c *Config) { c.MaxBodyBytes = 10 }, "IRU_API_MAX_BODY_BYTES"},
		{"no issuer", func(c *Config) { c.OIDC.IssuerURL = "" }, "IRU_OIDC_ISSUER"},
		{"no queue", func(c *Config) { c.Access.QueueSize = 0 }, "IRU_ACCESS_LOG_QUEUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to name %s", err, tt.want)
			}
		})
	}
}

// TestResponderAPI runs the responder API over a real dev server with the
// real incident workflow (fake actions), real lab Keycloak tokens, an
// SQLite ledger and an evidence locker.
func TestResponderAPI(t *testing.T) {
	s := newStack(t)
	alice, bob, carol := login(t, s.kc, "alice"), login(t, s.kc, "bob"), login(t, s.kc, "carol")
	a := s.start("container-compromise:web-01-a", "detector:falco/key-1")
	b := s.start("container-compromise:web-01-b", "keycloak:iru/bob") // bob triggered it: four-eyes
	c := s.start("container-compromise:web-01-c", "detector:falco/key-1")
	waiting := func(v IncidentView) bool { return stepStatus(v, "shutdown") == workflows.StepWaitingApproval }

	t.Run("list and filter", func(t *testing.T) {
		tests := []struct {
			query string
			want  []string
			not   []string
		}{
			{"?open=true", []string{a.Key, b.Key, c.Key}, nil},
			{"?state=open&severity=high&asset=web-01&playbook=container-compromise&drill=false", []string{a.Key}, nil},
			{"?asset=other-host", nil, []string{a.Key}},
			{"?state=closed", nil, []string{a.Key}},
		}
		for _, tt := range tests {
			t.Run(tt.query, func(t *testing.T) {
				deadline := time.Now().Add(15 * time.Second)
				for {
					var l IncidentList
					code, raw := s.call("GET", "/api/v1/incidents"+tt.query, alice, nil, &l)
					if code != http.StatusOK {
						t.Fatalf("status %d: %s", code, raw)
					}
					var ids []string
					for _, i := range l.Incidents {
						ids = append(ids, i.ID)
						if i.ID == a.Key && (i.Severity != "high" || i.Playbook != "container-compromise" || i.Asset != "web-01" || !i.Open) {
							t.Errorf("summary = %+v", i)
						}
					}
					ok := true
					for _, w := range tt.want {
						ok = ok && slices.Contains(ids, w)
					}
					for _, n := range tt.not {
						if slices.Contains(ids, n) {
							t.Fatalf("%s listed %s (query %s)", tt.query, n, l.Query)
						}
					}
					if ok {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s listed %v, want %v", tt.query, ids, tt.want)
					}
					time.Sleep(200 * time.Millisecond)
				}
			})
		}
		var e apiError
		if code, _ := s.call("GET", "/api/v1/incidents?severity=x'%20OR%201=1", alice, nil, &e); code != http.StatusBadRequest {
			t.Errorf("quote in a filter: status %d, want 400", code)
		}
	})

	t.Run("show", func(t *testing.T) {
		v := s.waitStatus(alice, a.Key, "the shutdown approval", waiting)
		if v.Status.IncidentID != a.IncidentID || v.ID != a.Key || v.WorkflowID != workflows.IncidentWorkflowID(a.Key) || v.RunID == "" || v.Execution != "Running" {
			t.Errorf("view = %+v", v)
		}
		var e apiError
		if code, _ := s.call("GET", "/api/v1/incidents/no-such-incident", alice, nil, &e); code != http.StatusNotFound || e.Code != "not_found" {
			t.Errorf("unknown incident: %d %+v", code, e)
		}
	})

	t.Run("responder cannot approve a lead step", func(t *testing.T) {
		var e apiError
		code, raw := s.call("POST", "/api/v1/incidents/"+a.Key+"/steps/shutdown/approve", alice, map[string]string{"reason": "looks bad"}, &e)
		if code != http.StatusForbidden || e.Code != "wrong_role" || !strings.Contains(e.Error, "approver lacks a required role") || !strings.Contains(e.Error, "ir-lead") {
			t.Fatalf("status %d body %s, want 403 wrong_role with the validator's message", code, raw)
		}
	})

	t.Run("self-approval refused", func(t *testing.T) {
		s.waitStatus(bob, b.Key, "the shutdown approval", waiting)
		var e apiError
		code, raw := s.call("POST", "/api/v1/incidents/"+b.Key+"/steps/shutdown/approve", bob, map[string]string{"reason": "mine"}, &e)
		if code != http.StatusForbidden || e.Code != "four_eyes" || !strings.Contains(e.Error, "four-eyes") {
			t.Fatalf("status %d body %s, want 403 four_eyes", code, raw)
		}
	})

	t.Run("lead approves and the incident moves on", func(t *testing.T) {
		var res struct {
			Result DecisionResultView `json:"result"`
		}
		code, raw := s.call("POST", "/api/v1/incidents/"+a.Key+"/steps/shutdown/approve", bob, map[string]string{"reason": "rebuild it"}, &res)
		if code != http.StatusOK || res.Result.StepID != "shutdown" || res.Result.Approvals != 1 || res.Result.Quorum != 1 {
			t.Fatalf("status %d body %s", code, raw)
		}
		v := s.waitStatus(alice, a.Key, "the shutdown step to run", func(v IncidentView) bool {
			return stepStatus(v, "shutdown") == workflows.StepSucceeded
		})
		st := v.Status.Steps[slices.IndexFunc(v.Status.Steps, func(s StepView) bool { return s.ID == "shutdown" })]
		if d := st.Approval.Approvals; len(d) != 1 || d[0].By.Subject != "keycloak:iru/bob" || d[0].By.Username != "bob" ||
			d[0].By.SourceIP != "127.0.0.1" || d[0].Reason != "rebuild it" || !slices.Contains(d[0].By.Roles, "ir-lead") {
			t.Errorf("recorded approval = %+v", d)
		}
		var e apiError
		if code, _ := s.call("POST", "/api/v1/incidents/"+a.Key+"/steps/shutdown/approve", carol, nil, &e); code != http.StatusConflict {
			t.Errorf("second approval of a decided step: %d %+v, want 409", code, e)
		}
	})

	t.Run("deny", func(t *testing.T) {
		var e apiError
		if code, _ := s.call("POST", "/api/v1/incidents/"+b.Key+"/steps/shutdown/deny", carol, nil, &e); code != http.StatusBadRequest || e.Code != "reason_required" {
			t.Errorf("deny without reason: %d %+v", code, e)
		}
		var res struct {
			Result DecisionResultView `json:"result"`
		}
		code, raw := s.call("POST", "/api/v1/incidents/"+b.Key+"/steps/shutdown/deny", carol, map[string]string{"reason": "false positive"}, &res)
		if code != http.StatusOK || res.Result.Status != workflows.StepDenied {
			t.Fatalf("status %d body %s", code, raw)
		}
		s.waitStatus(alice, b.Key, "the denied incident to abort", func(v IncidentView) bool { return v.Status.State == workflows.StateAborted })
	})

	t.Run("acknowledge, escalate, note", func(t *testing.T) {
		s.waitStatus(alice, c.Key, "the shutdown approval", waiting)
		var ack struct {
			Result AcknowledgementView `json:"result"`
		}
		if code, raw := s.call("POST", "/api/v1/incidents/"+c.Key+"/acknowledge", alice, nil, &ack); code != http.StatusOK || ack.Result.AcknowledgedAt.IsZero() {
			t.Fatalf("acknowledge: %d %s", code, raw)
		}
		var esc struct {
			Result EscalationView `json:"result"`
		}
		if code, raw := s.call("POST", "/api/v1/incidents/"+c.Key+"/escalate", alice, map[string]string{"reason": "need help"}, &esc); code != http.StatusOK || esc.Result.Level != 1 {
			t.Fatalf("escalate: %d %s", code, raw)
		}
		var note struct {
			Ref        string `json:"ref"`
			IncidentID string `json:"incident_id"`
		}
		if code, raw := s.call("POST", "/api/v1/incidents/"+c.Key+"/notes", alice, map[string]string{"text": "# Shell\nattacker used /bin/sh"}, &note); code != http.StatusCreated || note.IncidentID != c.IncidentID {
			t.Fatalf("note: %d %s", code, raw)
		}
		var man struct {
			Manifest evidence.Manifest `json:"manifest"`
		}
		if code, raw := s.call("GET", "/api/v1/incidents/"+c.Key+"/evidence", alice, nil, &man); code != http.StatusOK {
			t.Fatalf("manifest: %d %s", code, raw)
		}
		if len(man.Manifest.Objects) != 1 || string(man.Manifest.Objects[0].Ref) != note.Ref || man.Manifest.Objects[0].CollectedBy != "keycloak:iru/alice" ||
			!strings.HasPrefix(man.Manifest.Objects[0].Name, "notes/") {
			t.Errorf("manifest objects = %+v", man.Manifest.Objects)
		}
		rc, _, err := s.locker.Get(context.Background(), evidence.Ref(note.Ref), evidence.Reader{Identity: "test:reader", Reason: "check note"})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(rc)
		rc.Close()
		if buf.String() != "# Shell\nattacker used /bin/sh\n" {
			t.Errorf("note content = %q", buf.String())
		}
	})

	t.Run("abort needs a lead", func(t *testing.T) {
		var e apiError
		code, raw := s.call("POST", "/api/v1/incidents/"+c.Key+"/abort", alice, map[string]string{"reason": "stop"}, &e)
		if code != http.StatusForbidden || e.Error != "forbidden" || !slices.Equal(e.Need, []string{"ir-lead", "ir-admin"}) {
			t.Fatalf("alice abort: %d %s", code, raw)
		}
		if code, raw := s.call("POST", "/api/v1/incidents/"+c.Key+"/abort", carol, map[string]string{"reason": "contained by hand"}, nil); code != http.StatusAccepted {
			t.Fatalf("carol abort: %d %s", code, raw)
		}
		v := s.waitStatus(alice, c.Key, "the abort", func(v IncidentView) bool { return v.Status.State == workflows.StateAborted })
		if !strings.Contains(v.Status.Reason, "carol") {
			t.Errorf("reason = %q", v.Status.Reason)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, raw := s.call("POST", "/api/v1/incidents/"+c.Key+"/abort", carol, map[string]string{"reason": "again"}, &e)
			if code == http.StatusConflict && e.Code == "closed" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("abort of a closed incident: %d %s, want 409 closed", code, raw)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("report", func(t *testing.T) {
		var e apiError
		if code, _ := s.call("GET", "/api/v1/incidents/"+a.Key+"/report", alice, nil, &e); code != http.StatusNotFound || e.Code != "no_report" {
			t.Fatalf("before the report: %d %+v", code, e)
		}
		for name, body := range map[string]string{"report/report.md": "# Incident report\n", "report/report.json": `{"incident":"x"}`} {
			if _, err := s.locker.Put(context.Background(), evidence.PutRequest{Incident: a.IncidentID, Name: name, Class: evidence.ClassOperational,
				MediaType: "text/plain", CollectedBy: "system:worker", Source: "iru:report", Body: strings.NewReader(body)}); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name, query, accept, wantType, wantBody string
		}{
			{"default markdown", "", "", "text/markdown", "# Incident report\n"},
			{"format json", "?format=json", "", "application/json", `{"incident":"x"}`},
			{"accept json", "", "application/json", "application/json", `{"incident":"x"}`},
			{"format markdown wins over accept", "?format=markdown", "application/json", "text/markdown", "# Incident report\n"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req, _ := http.NewRequest("GET", s.api.URL+"/api/v1/incidents/"+a.Key+"/report"+tt.query, nil)
				req.Header.Set("Authorization", "Bearer "+alice)
				if tt.accept != "" {
					req.Header.Set("Accept", tt.accept)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var buf bytes.Buffer
				_, _ = buf.ReadFrom(resp.Body)
				if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.wantType) || buf.String() != tt.wantBody {
					t.Errorf("got %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), buf.String())
				}
			})
		}
	})

	t.Run("bad tokens", func(t *testing.T) {
		stale := login(t, s.kc, "alice")
		if _, err := s.kc.RotateSigningKey("iru"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // past the 1 ms overlap: the old key leaves the JWKS
		fresh := login(t, s.kc, "alice")
		if code, raw := s.call("GET", "/api/v1/incidents", fresh, nil, nil); code != http.StatusOK {
			t.Fatalf("token of the new key: %d %s", code, raw) // also refreshes the cached JWKS
		}
		tests := []struct{ name, token string }{
			{"garbage", "not.a.jwt"},
			{"signed by a rotated-out key", stale},
			{"tampered", fresh[:len(fresh)-4] + "AAAA"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var e apiError
				code, raw := s.call("GET", "/api/v1/incidents", tt.token, nil, &e)
				if code != http.StatusUnauthorized || e.Error != "unauthenticated" {
					t.Fatalf("status %d body %s, want 401", code, raw)
				}
			})
		}
	})

	t.Run("access log in the ledger", func(t *testing.T) {
		entries := s.accessEntries()
		find := func(what string, match func(ledger.Entry) bool) {
			t.Helper()
			if !slices.ContainsFunc(entries, match) {
				t.Errorf("no access-log entry for %s among %d", what, len(entries))
			}
		}
		find("bob's approval", func(e ledger.Entry) bool {
			return e.Action == accesslog.ActionRequest && e.Actor == "keycloak:iru/bob" && e.Outcome.Status == ledger.StatusOK &&
				e.Target == "POST /api/v1/incidents/"+a.Key+"/steps/shutdown/approve" && strings.Contains(e.Outcome.Detail, "status=200")
		})
		find("alice's refused approval", func(e ledger.Entry) bool {
			return e.Actor == "keycloak:iru/alice" && e.Outcome.Status == ledger.StatusDenied && strings.Contains(e.Outcome.Detail, "status=403")
		})
		find("the anonymous 401s and authentication failures, aggregated", func(e ledger.Entry) bool {
			return e.Action == accesslog.ActionAnonymous && e.Actor == "anonymous:127.0.0.1" && e.Outcome.Status == ledger.StatusDenied &&
				strings.Contains(e.Outcome.Detail, " 401=") && strings.Contains(e.Outcome.Detail, "auth failure: ")
		})
		find("carol's authentication", func(e ledger.Entry) bool {
			return e.Action == accesslog.ActionAuthSuccess && e.Actor == "keycloak:iru/carol"
		})
		if rep, err := s.ledger.Verify(context.Background(), accesslog.Chain(time.Now()), nil); err != nil || !rep.OK() {
			t.Errorf("access chain does not verify: %v %+v", err, rep)
		}
	})
}

// TestFailedAuthThreshold: five failed authentications from one client
// (behind a trusted proxy) send exactly one notification.
func TestFailedAuthThreshold(t *testing.T) {
	kc := labKeycloak(t)
	wh := newWebhook(t)
	cfg := testConfig(kc)
	rs, err := NewResponder(ResponderOptions{Config: cfg, Temporal: &recordingTemporal{},
		Notifier: &notify.Notifier{Channels: []notify.Channel{{Name: "test", Kind: "webhook", URL: wh.srv.URL}}}})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer((&Server{Log: slogNop(), Temporal: fakeTemporal{}, Responder: rs,
		TrustedProxies: []netip.Prefix{mustPrefix(t, "127.0.0.1")}}).Handler())
	defer api.Close()
	hdr := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
	for i := range 7 {
		if code, _ := call(t, api.URL, "GET", "/api/v1/incidents", "garbage-"+string(rune('a'+i)), nil, nil, hdr); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, code)
		}
		if i < 4 {
			time.Sleep(20 * time.Millisecond)
			if n := len(wh.got()); n != 0 {
				t.Fatalf("notified after %d failures", i+1)
			}
		}
	}
	// A request without any token is not a failed authentication.
	call(t, api.URL, "GET", "/api/v1/incidents", "", nil, nil, http.Header{"X-Forwarded-For": {"198.51.100.1"}})
	deadline := time.Now().Add(10 * time.Second)
	for len(wh.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // would a second one arrive?
	got := wh.got()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1: %+v", len(got), got)
	}
	if got[0].Kind != notify.FailedAuthThreshold || got[0].Details["source_ip"] != "203.0.113.7" || got[0].Details["failures"] != "5" {
		t.Errorf("notification = %+v", got[0])
	}
}

// TestBodyLimit: a body over the limit answers 413 before any Temporal call.
func TestBodyLimit(t *testing.T) {
	kc := labKeycloak(t)
	rt := &recordingTemporal{}
	cfg := testConfig(kc)
	cfg.MaxBodyBytes = 1024
	rs, err := NewResponder(ResponderOptions{Config: cfg, Temporal: rt})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer((&Server{Log: slogNop(), Temporal: fakeTemporal{}, Responder: rs}).Handler())
	defer api.Close()
	big := map[string]string{"reason": strings.Repeat("x", 2048)}
	var e apiError
	if code, raw := call(t, api.URL, "POST", "/api/v1/incidents/k/steps/s/approve", login(t, kc, "bob"), big, &e, nil); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d body %s, want 413", code, raw)
	}
	if len(rt.ids) != 0 {
		t.Errorf("Temporal was called: %v", rt.ids)
	}
	b, _ := json.Marshal(e)
	if !strings.Contains(string(b), "larger than 1024") {
		t.Errorf("error = %s", b)
	}
}
