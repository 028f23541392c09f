//go:build integration

package resilience

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/intake"
	intakeauth "github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/metrics"
	"github.com/iru-responder/responder/internal/temporalclient"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// quietLogger drops the Temporal SDK's logs.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}

// temporalReady adapts a client to api.TemporalHealth, as `starter serve`.
type temporalReady struct{ c client.Client }

func (r temporalReady) Ready(ctx context.Context) error { return temporalclient.Ready(ctx, r.c) }

// apiStack is the API server of `starter serve` on a platform: the
// responder API with the lab Keycloak's tokens, the detector intake with
// one API-key detector, the access log into the platform's ledger.
type apiStack struct {
	srv         *api.Server
	ts          *httptest.Server
	detectorKey string
	logs        *testenv.LockedBuffer
	svc         *intake.Service
}

const detectorName = "generic"

func newAPIStack(t *testing.T, p *testplatform.Platform) *apiStack {
	t.Helper()
	logs := &testenv.LockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var cfg api.Config
	if err := config.LoadFrom(&cfg, p.Env); err != nil {
		t.Fatal(err)
	}
	reg, err := metrics.New()
	if err != nil {
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
		Detectors: []intakeauth.Detector{{Name: detectorName, Format: "generic", APIKeys: []intakeauth.APIKey{{ID: "k1", SHA256: intakeauth.HashKey("k1", key)}}}},
	}, intake.Deps{
		Assets: testplatform.NewLabAssets(t, p.Env), Signaler: forward.TemporalSignaler{Client: p.Client}, Log: log,
		AuthLog: intakeauth.ObserverFunc(func(e intakeauth.Event) {
			action := accesslog.ActionAuthFailure
			if e.Success {
				action = accesslog.ActionAuthSuccess
			}
			acc.Record(accesslog.Record{Time: e.Time, Actor: "detector:" + e.Detector + "/" + e.KeyID, Action: action,
				Path: "intake/" + e.Detector, Detail: e.Reason, SourceIP: e.RemoteAddr})
		}),
	})
	if err != nil {
		t.Fatal(err)
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
	srv := &api.Server{Log: log, Temporal: temporalReady{p.Client}, Metrics: reg, Responder: rs,
		Intake: svc.Handler, IntakePattern: intake.Pattern, Access: acc}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &apiStack{srv: srv, ts: ts, detectorKey: key, logs: logs, svc: svc}
}

// call sends one request and returns the status and body.
func call(t *testing.T, method, u string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// genericAlert is one alert in the generic detector format.
func genericAlert(asset, fingerprint, summary string, labels map[string]string) []byte {
	b, _ := json.Marshal(map[string]any{"source": "runtime-monitor", "rule": "ContainerShell", "severity": "critical",
		"asset": asset, "summary": summary, "labels": labels, "fingerprint": fingerprint,
		"observed_at": time.Now().UTC().Format(time.RFC3339Nano)})
	return b
}

// TestSecurity checks the platform's edges and what it leaves behind:
//
//   - every route of the API server but health, readiness and metrics,
//     the detector intake included, answers 401 without credentials and
//     with wrong ones (the walk is over Server.Routes, so a new route
//     cannot be forgotten);
//   - a full incident driven through the intake (detector API key) and the
//     responder API (Keycloak token) resolves, and the API server's and
//     intake's logs and the access-log chain hold none of the secrets;
//   - that incident's history, read from the server with a client without
//     the codec, holds ciphertext only.
func TestSecurity(t *testing.T) {
	began := time.Now()
	p := testplatform.New(t, testplatform.Options{Env: []string{"IRU_CODEC_TOKEN=" + randomSecret(t, 16)}})
	s := newAPIStack(t, p)
	const asset = "api-gateway"

	t.Run("every route needs credentials", func(t *testing.T) {
		wildcard := regexp.MustCompile(`\{[a-z_]+\}`)
		routes := s.srv.Routes()
		public, protected, intakeWalked := 0, 0, false
		for _, rt := range routes {
			method, path, ok := strings.Cut(rt.Pattern, " ")
			if !ok {
				t.Fatalf("route %q has no method", rt.Pattern)
			}
			body := []byte(`{"reason":"r"}`)
			if rt.Pattern == intake.Pattern {
				intakeWalked = true
				path = strings.Replace(path, "{detector}", detectorName, 1)
				body = genericAlert(asset, "sec-unauth", "must not be accepted", nil)
			}
			path = wildcard.ReplaceAllString(path, "x")
			if rt.Public {
				public++
				if code, _ := call(t, method, s.ts.URL+path, nil); code == http.StatusUnauthorized {
					t.Errorf("public route %s answers 401", rt.Pattern)
				}
				continue
			}
			protected++
			cases := map[string][]string{
				"no credentials":      nil,
				"malformed bearer":    {"Authorization", "Bearer not-a-token"},
				"forged JWT":          {"Authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJib2IifQ."},
				"wrong detector key":  {intakeauth.HeaderKey, "iru_" + strings.Repeat("A", 43)},
				"basic auth password": {"Authorization", "Basic Ym9iOmlydS1sYWItcGFzc3dvcmQ="},
			}
			for name, hdr := range cases {
				if code, b := call(t, method, s.ts.URL+path, body, hdr...); code != http.StatusUnauthorized {
					t.Errorf("%s with %s: %d %s, want 401", rt.Pattern, name, code, b)
				}
			}
		}
		if !intakeWalked {
			t.Errorf("the intake route %s is not in Server.Routes", intake.Pattern)
		}
		if public != 2 || protected != len(routes)-2 || protected < 2 { // public: /healthz, /readyz (/metrics is on the internal listener)
			t.Errorf("walked %d public and %d protected of %d routes", public, protected, len(routes))
		}
		if st := s.svc.Handler.Stats(); st.Accepted != 0 || st.Unauthorized == 0 {
			t.Errorf("intake stats after unauthenticated posts: %+v", st)
		}
		t.Logf("%d protected routes answer 401 to 5 kinds of missing or wrong credentials", protected)
	})

	// A full incident through the edges.
	gc := gocloak.NewClient(p.Lab.Keycloak.URL())
	bob, err := gc.LoginOtp(context.Background(), keycloak.ConsoleClientID, "", keycloak.Realm, "bob", keycloak.UserPassword, keycloak.TOTPCode("bob", time.Now()))
	if err != nil {
		t.Fatalf("bob's login: %v", err)
	}
	fingerprint := "sec-" + runTag(t)
	summary := "interactive shell in " + asset + " " + fingerprint
	code, b := call(t, http.MethodPost, s.ts.URL+"/v1/alerts/"+detectorName,
		genericAlert(asset, fingerprint, summary, map[string]string{"health_url": p.Lab.HealthURL(asset), "username": "jdoe", "realm": keycloak.Realm}),
		"Authorization", "Bearer "+s.detectorKey)
	if code != http.StatusAccepted {
		t.Fatalf("intake: %d %s", code, b)
	}
	key := "container-compromise:" + asset
	wfID := workflows.IncidentWorkflowID(key)
	approve := func(step string) {
		testplatform.WaitStep(t, p.Client, wfID, step, workflows.StepWaitingApproval, 60*time.Second)
		u := fmt.Sprintf("%s/api/v1/incidents/%s/steps/%s/approve", s.ts.URL, url.PathEscape(key), step)
		if code, b := call(t, http.MethodPost, u, []byte(`{"reason":"evidence preserved"}`), "Authorization", "Bearer "+bob.AccessToken); code != http.StatusOK {
			t.Fatalf("approve %s through the API: %d %s", step, code, b)
		}
	}
	approve("shutdown")
	approve("restore")
	res := waitResult(t, p.Client, wfID, 90*time.Second)
	if res.State != workflows.StateResolved {
		t.Fatalf("incident ended %s: %s", res.State, res.Reason)
	}
	code, b = call(t, http.MethodGet, s.ts.URL+"/api/v1/incidents/"+url.PathEscape(key), nil, "Authorization", "Bearer "+bob.AccessToken)
	if code != http.StatusOK || !strings.Contains(string(b), res.IncidentID) {
		t.Fatalf("GET incident: %d %.300s", code, b)
	}
	t.Logf("incident %s resolved through the intake and the API in %s", res.IncidentID, time.Since(began).Round(time.Millisecond))

	t.Run("logs hold no secret", func(t *testing.T) {
		secrets := platformSecrets(t, p.Env)
		secrets["detector API key"] = s.detectorKey
		secrets["responder access token"] = bob.AccessToken
		secrets["responder refresh token"] = bob.RefreshToken
		logs := s.logs.String()
		if !strings.Contains(logs, "/steps/shutdown/approve") {
			t.Errorf("the API log does not show the approval request: the capture is not the server's log")
		}
		assertNoSecrets(t, "API server and intake logs", logs, secrets)
		var chain strings.Builder
		err := p.Host.Stores().Ledger.Store().Entries(context.Background(), accesslog.Chain(time.Now()), func(e ledger.Entry) error {
			return json.NewEncoder(&chain).Encode(e)
		})
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			t.Fatal(err)
		}
		assertNoSecrets(t, "access-log ledger chain", chain.String(), secrets)
	})
	plain := testenv.Client(t, client.Options{Logger: quietLogger{}})
	t.Run("history holds only ciphertext", func(t *testing.T) {
		assertCiphertextHistory(t, plain, wfID, []string{res.IncidentID, fingerprint, summary, "jdoe", p.Lab.HealthURL(asset)})
	})
	t.Run("the history check sees plaintext", func(t *testing.T) {
		// The same check on a workflow run without the codec must object,
		// or its silence above proves nothing.
		tq, text := "resilience-plain-"+runTag(t), "plain text "+runTag(t)
		testenv.Worker(t, plain, tq, func(r worker.Registry) {
			r.RegisterWorkflowWithOptions(echoWorkflow, workflow.RegisterOptions{Name: "ResilienceEcho"})
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		run, err := plain.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: tq, TaskQueue: tq}, "ResilienceEcho", echoInput{Text: text})
		if err != nil {
			t.Fatal(err)
		}
		if err := run.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
		problems, _, err := historyProblems(plain, tq, []string{text})
		if err != nil {
			t.Fatal(err)
		}
		var encoding, clear int
		for _, p := range problems {
			if strings.Contains(p, "payload encoded") {
				encoding++
			}
			if strings.Contains(p, "in clear") {
				clear++
			}
		}
		if encoding < 2 || clear < 2 {
			t.Errorf("on a plain history the check found %d unencrypted payloads and %d plaintext events, want at least 2 of each: %v", encoding, clear, problems)
		}
	})
	t.Logf("scenario took %s", time.Since(began).Round(time.Millisecond))
}

// assertCiphertextHistory fails unless wfID's history, read with c (a
// client without the codec), holds ciphertext only (see historyProblems).
func assertCiphertextHistory(t *testing.T, c client.Client, wfID string, plaintexts []string) {
	t.Helper()
	problems, payloads, err := historyProblems(c, wfID, plaintexts)
	if err != nil {
		t.Fatal(err)
	}
	if payloads == 0 {
		t.Fatalf("%s: no payload in the history: nothing was checked", wfID)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// historyProblems reads wfID's history with c and lists every payload
// outside search attributes that is not encoded binary/encrypted, and
// every event that holds one of plaintexts anywhere outside search
// attributes (plain by design: they are the visibility index) and the
// workflow id itself. It also returns how many payloads it saw.
func historyProblems(c client.Client, wfID string, plaintexts []string) (problems []string, payloads int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := c.GetWorkflowHistory(ctx, wfID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, 0, fmt.Errorf("history of %s: %w", wfID, err)
		}
		clean := proto.Clone(e)
		walkPayloads(clean.ProtoReflect(), func(p *commonpb.Payload) {
			payloads++
			if enc := string(p.GetMetadata()[codec.MetadataEncoding]); enc != codec.EncodingEncrypted {
				problems = append(problems, fmt.Sprintf("%s event %d (%s): payload encoded %q, want %s: %.200q", wfID, e.GetEventId(), e.GetEventType(), enc, codec.EncodingEncrypted, p.GetData()))
			}
		})
		raw, err := proto.Marshal(clean)
		if err != nil {
			return nil, 0, fmt.Errorf("marshal event: %w", err)
		}
		raw = bytes.ReplaceAll(raw, []byte(wfID), nil)
		for _, s := range plaintexts {
			if bytes.Contains(raw, []byte(s)) {
				problems = append(problems, fmt.Sprintf("%s event %d (%s) holds %q in clear", wfID, e.GetEventId(), e.GetEventType(), s))
			}
		}
	}
	return problems, payloads, nil
}

// echoInput is the input of echoWorkflow.
type echoInput struct{ Text string }

// echoWorkflow returns its input: a history with known payloads.
func echoWorkflow(_ workflow.Context, in echoInput) (echoInput, error) { return in, nil }

var (
	payloadName          = (&commonpb.Payload{}).ProtoReflect().Descriptor().FullName()
	searchAttributesName = (&commonpb.SearchAttributes{}).ProtoReflect().Descriptor().FullName()
)

// walkPayloads calls fn for every Payload in m, and clears every
// SearchAttributes field of m (so the caller's later scan skips them).
func walkPayloads(m protoreflect.Message, fn func(*commonpb.Payload)) {
	if m.Descriptor().FullName() == payloadName {
		fn(m.Interface().(*commonpb.Payload))
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		if fd.Message().FullName() == searchAttributesName {
			m.Clear(fd)
			return true
		}
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				walkPayloads(v.List().Get(i).Message(), fn)
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walkPayloads(mv.Message(), fn)
					return true
				})
			}
		default:
			walkPayloads(v.Message(), fn)
		}
		return true
	})
}
