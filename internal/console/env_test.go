package console

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/report"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// incidentKey is the incident of the fake Temporal.
const incidentKey = "falco:web-01:shell"

// fakeTemporal is one incident workflow: its status answers the status
// query, and an approval of a waiting step makes it run (what the real
// workflow does after its validator accepted the decision; the workflow's
// own checks are tested in package workflows).
type fakeTemporal struct {
	api.IncidentClient
	mu      sync.Mutex
	status  workflows.IncidentStatus
	queries int
	updates []client.UpdateWorkflowOptions
	signals []string
	// hidden: the incident is not opened yet (visibility lists nothing).
	hidden bool
}

func newFakeTemporal() *fakeTemporal {
	opened := time.Now().UTC().Add(-5 * time.Minute)
	return &fakeTemporal{status: workflows.IncidentStatus{
		IncidentID: "INC-20260101-0001", Key: incidentKey, Playbook: "container-compromise", Asset: "web-01", Severity: "high",
		OpenedBy: "detector:falco", Phase: playbooks.PhaseContainment, State: workflows.StateOpen, OpenedAt: opened,
		Steps: []workflows.StepState{
			{ID: "snapshot", Phase: playbooks.PhaseContainment, Action: "pve.snapshot", Status: workflows.StepSucceeded, StartedAt: opened, FinishedAt: opened.Add(2 * time.Second), Summary: "snapshot pre-ir"},
			{ID: "shutdown", Phase: playbooks.PhaseContainment, Action: "pve.shutdown", Status: workflows.StepWaitingApproval, Risk: playbooks.RiskHigh,
				Approval: &workflows.ApprovalState{Roles: []string{auth.RoleLead}, Quorum: 1, RequestedBy: "system", Deadline: opened.Add(time.Hour)}},
		},
		Timeline: []workflows.TimelineEntry{{At: opened, What: "opened by detector:falco"}},
	}}
}

func (f *fakeTemporal) set(mut func(*workflows.IncidentStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mut(&f.status)
}

func (f *fakeTemporal) counts() (queries, updates int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries, len(f.updates)
}

func (f *fakeTemporal) ListWorkflow(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hidden {
		return &workflowservice.ListWorkflowExecutionsResponse{}, nil
	}
	return &workflowservice.ListWorkflowExecutionsResponse{Executions: []*workflow.WorkflowExecutionInfo{{
		Execution: &common.WorkflowExecution{WorkflowId: workflows.IncidentWorkflowID(incidentKey), RunId: "run-1"},
		Type:      &common.WorkflowType{Name: workflows.IncidentWorkflow}, Status: enums.WORKFLOW_EXECUTION_STATUS_RUNNING,
		StartTime: timestamppb.New(f.status.OpenedAt),
	}}}, nil
}

func (f *fakeTemporal) DescribeWorkflowExecution(context.Context, string, string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflow.WorkflowExecutionInfo{
		Execution: &common.WorkflowExecution{WorkflowId: workflows.IncidentWorkflowID(incidentKey), RunId: "run-1"},
		Type:      &common.WorkflowType{Name: workflows.IncidentWorkflow}, Status: enums.WORKFLOW_EXECUTION_STATUS_RUNNING, FirstRunId: "run-1",
	}}, nil
}

func (f *fakeTemporal) QueryWorkflow(_ context.Context, _, _, queryType string, _ ...any) (converter.EncodedValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	b, err := json.Marshal(f.status)
	return jsonValue(b), err
}

func (f *fakeTemporal) UpdateWorkflow(_ context.Context, opts client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, opts)
	switch in := opts.Args[0].(type) {
	case workflows.AcknowledgeInput:
		return updateHandle{workflows.AcknowledgeResult{AcknowledgedAt: time.Now().UTC()}}, nil
	case workflows.EscalateInput:
		f.status.EscalationLevel++
		return updateHandle{workflows.EscalateResult{Level: f.status.EscalationLevel, Tier: "tier-2"}}, nil
	case workflows.DecisionInput:
		res := workflows.DecisionResult{StepID: in.StepID, Status: workflows.StepDenied, Quorum: 1}
		for i := range f.status.Steps {
			s := &f.status.Steps[i]
			if s.ID != in.StepID {
				continue
			}
			if opts.UpdateName == workflows.ApproveUpdate {
				s.Approval.Approvals = append(s.Approval.Approvals, workflows.Decision{By: in.Approver, Reason: in.Reason, At: time.Now().UTC(), Via: "update"})
				s.Status, s.StartedAt = workflows.StepRunning, time.Now().UTC()
				res.Status, res.Approvals = workflows.StepRunning, 1
			} else {
				s.Status = workflows.StepDenied
			}
		}
		return updateHandle{res}, nil
	}
	return nil, fmt.Errorf("fake temporal: update %s", opts.UpdateName)
}

// SignalWorkflow records the signal (abort) by name.
func (f *fakeTemporal) SignalWorkflow(_ context.Context, _, _, name string, _ any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, name)
	return nil
}

type jsonValue []byte

func (v jsonValue) HasValue() bool    { return len(v) > 0 }
func (v jsonValue) Get(ptr any) error { return json.Unmarshal(v, ptr) }

// updateHandle answers an update's result (through JSON, as the SDK's
// converter would).
type updateHandle struct{ res any }

func (updateHandle) WorkflowID() string { return workflows.IncidentWorkflowID(incidentKey) }
func (updateHandle) RunID() string      { return "run-1" }
func (updateHandle) UpdateID() string   { return "u" }
func (h updateHandle) Get(_ context.Context, ptr any) error {
	b, err := json.Marshal(h.res)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}

// fakeLocker holds the incident's report and records each read with
// who read it (the real locker's chain of custody is tested in package
// evidence).
type fakeLocker struct {
	api.EvidenceLocker
	mu    sync.Mutex
	meta  evidence.Meta
	body  string
	reads []evidence.Reader
	puts  []evidence.PutRequest
	notes []string
}

// Put stores a note: its request and body.
func (f *fakeLocker) Put(_ context.Context, r evidence.PutRequest) (evidence.Ref, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, r)
	f.notes = append(f.notes, string(b))
	sum := sha256.Sum256(b)
	return evidence.NewRef(r.Incident, hex.EncodeToString(sum[:])), nil
}

func newFakeLocker(incident string) *fakeLocker {
	body := "# Post-incident report " + incident + "\n\nContained **web-01**.\n\n<script>alert(1)</script>\n"
	sum := sha256.Sum256([]byte(body))
	h := hex.EncodeToString(sum[:])
	return &fakeLocker{body: body, meta: evidence.Meta{Ref: evidence.NewRef(incident, h), Incident: incident, SHA256: h, Size: int64(len(body)),
		Name: report.MarkdownName, MediaType: "text/markdown", Class: evidence.ClassOperational, RetainUntil: time.Now().AddDate(1, 0, 0)}}
}

func (f *fakeLocker) List(context.Context, string) ([]evidence.Meta, error) {
	return []evidence.Meta{f.meta}, nil
}

func (f *fakeLocker) Manifest(_ context.Context, incident string) (evidence.Manifest, error) {
	return evidence.Manifest{Incident: incident, Objects: []evidence.Meta{f.meta}}, nil
}

func (f *fakeLocker) Get(_ context.Context, _ evidence.Ref, who evidence.Reader) (io.ReadCloser, evidence.Meta, error) {
	f.mu.Lock()
	f.reads = append(f.reads, who)
	f.mu.Unlock()
	return io.NopCloser(strings.NewReader(f.body)), f.meta, nil
}

type ready struct{}

func (ready) Ready(context.Context) error { return nil }

// env is the API server with the console on TLS, the Keycloak simulator
// and a fake Temporal.
type env struct {
	t        *testing.T
	kc       *keycloak.Server
	ts       *httptest.Server
	console  *Console
	temporal *fakeTemporal
	locker   *fakeLocker
	base     string // https://127.0.0.1:port/console
	oidc     auth.OIDCConfig
}

func newEnv(t *testing.T, poll time.Duration) *env {
	t.Helper()
	kc, err := keycloak.New(keycloak.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, kc: kc, temporal: newFakeTemporal(), locker: newFakeLocker("INC-20260101-0001"), base: "https://" + ln.Addr().String() + Prefix}
	registerConsole(t, kc.URL(), e.base)
	e.oidc = auth.OIDCConfig{IssuerURL: kc.URL() + "/realms/" + keycloak.Realm, Audience: keycloak.APIClientID,
		ClientID: keycloak.APIClientID, ClientSecret: keycloak.APIClientSecret, SessionCache: 0}
	signer, err := decision.NewLocalSigner()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	rs, err := api.NewResponder(api.ResponderOptions{Config: api.Config{OIDC: e.oidc, Access: accesslog.Config{QueueSize: 100},
		AuthFailThreshold: 5, AuthFailWindow: time.Minute, MaxBodyBytes: 64 << 10, RequestTimeout: 10 * time.Second},
		Temporal: e.temporal, Evidence: e.locker, Signer: signer, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	e.console, err = New(Options{Config: Config{URL: e.base, ClientID: keycloak.ConsoleClientID, SessionTTL: time.Hour, SessionIdle: 10 * time.Minute, PollInterval: poll},
		IssuerURL: e.oidc.IssuerURL, API: rs.Handler(), Verifier: auth.NewVerifier(e.oidc, nil), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.console.Close)
	srv := &api.Server{Log: log, Temporal: ready{}, Responder: rs, Console: e.console.Handler()}
	e.ts = &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv.Handler()}}
	e.ts.StartTLS()
	t.Cleanup(e.ts.Close)
	return e
}

// registerConsole registers the console's URLs at the console client, as
// an operator does in the Keycloak admin console.
func registerConsole(t *testing.T, kcURL, base string) {
	t.Helper()
	ctx := context.Background()
	gc := gocloak.NewClient(kcURL)
	admin, err := gc.LoginAdmin(ctx, keycloak.AdminUsername, keycloak.AdminPassword, keycloak.MasterRealm)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := gc.GetClients(ctx, admin.AccessToken, keycloak.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(keycloak.ConsoleClientID)})
	if err != nil || len(clients) != 1 {
		t.Fatalf("console client: %v %d", err, len(clients))
	}
	c := clients[0]
	uris := append(*c.RedirectURIs, base+"/*")
	c.RedirectURIs = &uris
	if err := gc.UpdateClient(ctx, admin.AccessToken, keycloak.Realm, *c); err != nil {
		t.Fatal(err)
	}
}

// browser is a user agent with a cookie jar that trusts the test server.
type browser struct {
	e    *env
	hc   *http.Client
	jar  *cookiejar.Jar
	last *http.Response
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	tr := e.ts.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs}
	return &browser{e: e, jar: jar, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second}}
}

// do sends a request (following redirects) and returns status and body.
func (b *browser) do(method, u string, form url.Values, header ...string) (int, string) {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	b.last = resp
	return resp.StatusCode, string(raw)
}

var formRE = regexp.MustCompile(`<form id="([a-z-]+)" action="([^"]+)"`)

// signIn signs username in through the Keycloak login page (and OTP form).
func (b *browser) signIn(username string) {
	t := b.e.t
	t.Helper()
	code, page := b.do(http.MethodGet, b.e.base+"/login", nil)
	m := formRE.FindStringSubmatch(page)
	if code != http.StatusOK || m == nil || m[1] != "kc-form-login" {
		t.Fatalf("login page: %d %s", code, page)
	}
	code, page = b.do(http.MethodPost, strings.ReplaceAll(m[2], "&amp;", "&"), url.Values{"username": {username}, "password": {keycloak.UserPassword}})
	if m = formRE.FindStringSubmatch(page); m != nil && m[1] == "kc-otp-login-form" {
		code, page = b.do(http.MethodPost, strings.ReplaceAll(m[2], "&amp;", "&"), url.Values{"otp": {keycloak.TOTPCode(username, time.Now())}})
	}
	if code != http.StatusOK || !strings.Contains(page, `id="continue"`) {
		t.Fatalf("sign-in of %s: %d %s", username, code, page)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of a page.
func (b *browser) csrf(page string) string {
	b.e.t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		b.e.t.Fatalf("no CSRF token in page:\n%s", page)
	}
	return m[1]
}

func (e *env) roomURL() string { return e.base + "/incidents/" + url.PathEscape(incidentKey) }
