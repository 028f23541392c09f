//go:build integration

package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/internal/apiclient"
	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/workerhost"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// memKEK wraps evidence data keys with an in-memory AES-GCM key.
type memKEK struct{ aead cipher.AEAD }

func (m memKEK) Wrap(_ context.Context, dek []byte) (evidence.Wrapped, error) {
	n := make([]byte, m.aead.NonceSize())
	_, _ = rand.Read(n)
	return evidence.Wrapped{KeyID: "mem", Nonce: n, Ciphertext: m.aead.Seal(nil, n, dek, nil)}, nil
}

func (m memKEK) Unwrap(_ context.Context, w evidence.Wrapped) ([]byte, error) {
	return m.aead.Open(nil, w.Nonce, w.Ciphertext, nil)
}

func fakeAction(_ context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	a, err := activities.Lookup(in.Action)
	if err != nil {
		return activities.ActionResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadParams, err)
	}
	out := map[string]string{}
	for _, o := range a.Outputs {
		out[o] = ""
	}
	return activities.ActionResult{Outputs: out}, nil
}

// cliEnv is a responder API (real dev server, real incident workflow with
// fake actions, lab Keycloak) and the environment the CLI needs.
type cliEnv struct {
	t      *testing.T
	kc     *keycloak.Server
	locker *evidence.Locker
	key    string // the incident the test opened
	tokens string // token cache path
	c      client.Client
	queue  string
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	kc, err := keycloak.New(keycloak.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	nop := slog.New(slog.DiscardHandler)
	c := testenv.Client(t, client.Options{Logger: tlog.NewStructuredLogger(nop)})
	queue := "cli-test-" + uuid.NewString()
	set, err := playbooks.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	testenv.Worker(t, c, queue, func(r worker.Registry) {
		workerhost.RegisterIncident(r, set, c)
		(&workerhost.Reroute{Temporal: c, TaskQueue: queue}).Register(r)
		registerDecisionKeys(r)
		for _, a := range activities.Catalog() {
			if a.Name == activities.LedgerAppend {
				r.RegisterActivityWithOptions(func(context.Context, activities.LedgerAppendInput) (activities.LedgerAppendResult, error) {
					return activities.LedgerAppendResult{Hash: "fake"}, nil
				}, activity.RegisterOptions{Name: a.Name})
				continue
			}
			r.RegisterActivityWithOptions(fakeAction, activity.RegisterOptions{Name: a.Name})
		}
	})
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	blk, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCM(blk)
	locker, err := evidence.Open(t.TempDir(), memKEK{g}, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	issuer := kc.URL() + "/realms/" + keycloak.Realm
	rs, err := api.NewResponder(api.ResponderOptions{
		Config: api.Config{OIDC: auth.OIDCConfig{IssuerURL: issuer, Audience: keycloak.APIClientID,
			ClientID: keycloak.APIClientID, ClientSecret: keycloak.APIClientSecret, SessionCache: 5 * time.Second}, AuthFailThreshold: 5,
			AuthFailWindow: time.Minute, MaxBodyBytes: 64 << 10, RequestTimeout: 20 * time.Second},
		Temporal: c, Evidence: locker, Log: nop, Signer: testDecisionSigner,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&api.Server{Log: nop, Responder: rs}).Handler())
	t.Cleanup(srv.Close)
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv("IRU_API_URL", srv.URL)
	t.Setenv("IRU_OIDC_ISSUER", issuer)
	t.Setenv("IRU_TOKEN_FILE", "")
	t.Setenv(config.EnvFileVar, "")

	key := "container-compromise:web-01-cli-" + uuid.NewString()[:8]
	_, err = c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.IncidentWorkflowID(key), TaskQueue: queue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SeverityKey.ValueSet("high"),
			workflows.PlaybookKey.ValueSet("container-compromise"), workflows.AssetKey.ValueSet("web-01")),
	}, workflows.IncidentWorkflow, workflows.IncidentInput{
		IncidentID: "INC-20260101-0000cafe", Key: key, Asset: "web-01", Severity: "high", Playbook: "container-compromise",
		OpenedBy: "detector:falco/key-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return &cliEnv{t: t, kc: kc, locker: locker, key: key, tokens: filepath.Join(home, "iru", "token.json"), c: c, queue: queue}
}

// run runs the starter with args and stdin; it returns stdout and the exit
// status main would use.
func (e *cliEnv) run(stdin string, args ...string) (string, int, error) {
	e.t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&out)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err != nil {
		return out.String(), exitCode(err), err
	}
	return out.String(), 0, nil
}

// must runs args and fails the test unless they exit 0.
func (e *cliEnv) must(stdin string, args ...string) string {
	e.t.Helper()
	out, code, err := e.run(stdin, args...)
	if code != 0 {
		e.t.Fatalf("starter %s: exit %d: %v\n%s", strings.Join(args, " "), code, err, out)
	}
	return out
}

func (e *cliEnv) cache() apiclient.CachedToken {
	e.t.Helper()
	b, err := os.ReadFile(e.tokens)
	if err != nil {
		e.t.Fatal(err)
	}
	var ct apiclient.CachedToken
	if err := json.Unmarshal(b, &ct); err != nil {
		e.t.Fatal(err)
	}
	return ct
}

func TestResponderCLI(t *testing.T) {
	e := newCLIEnv(t)
	key := e.key

	t.Run("not logged in", func(t *testing.T) {
		if _, code, err := e.run("", "incidents"); code != exitAuth || !strings.Contains(err.Error(), "starter login") {
			t.Fatalf("exit %d (%v), want %d", code, err, exitAuth)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		if _, code, err := e.run("nope\n", "login", "--username", "alice"); code != exitAuth {
			t.Fatalf("exit %d (%v), want %d", code, err, exitAuth)
		}
	})
	t.Run("login caches the token privately", func(t *testing.T) {
		out := e.must(keycloak.UserPassword+"\n", "login", "--username", "alice")
		if !strings.Contains(out, "logged in as alice") {
			t.Errorf("output %q", out)
		}
		fi, err := os.Stat(e.tokens)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("token cache mode %v, want 0600", fi.Mode().Perm())
		}
		di, err := os.Stat(filepath.Dir(e.tokens))
		if err != nil {
			t.Fatal(err)
		}
		if di.Mode().Perm() != 0o700 {
			t.Errorf("token folder mode %v, want 0700", di.Mode().Perm())
		}
		if ct := e.cache(); ct.Username != "alice" || ct.AccessToken == "" || ct.RefreshToken == "" {
			t.Errorf("cache = %+v", ct)
		}
	})
	t.Run("list", func(t *testing.T) {
		deadline := time.Now().Add(15 * time.Second)
		for {
			out := e.must("", "incidents", "--open", "--json")
			var l api.IncidentList
			if err := json.Unmarshal([]byte(out), &l); err != nil {
				t.Fatalf("--json output is not JSON: %v\n%s", err, out)
			}
			if slices.ContainsFunc(l.Incidents, func(i api.IncidentSummary) bool { return i.ID == key && i.Open }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("incidents: %s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		out := e.must("", "incidents", "--severity", "high")
		if !strings.Contains(out, "ID") || !strings.Contains(out, key) || !strings.Contains(out, "container-compromise") {
			t.Errorf("table:\n%s", out)
		}
	})
	t.Run("show", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			out := e.must("", "incident", "show", key)
			if strings.Contains(out, "WAITING FOR APPROVAL: shutdown") {
				if !strings.Contains(out, "INC-20260101-0000cafe") {
					t.Errorf("show:\n%s", out)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("show never listed the pending approval:\n%s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			name     string
			args     []string
			wantCode int
			wantMsg  string
		}{
			{"validator: wrong role", []string{"incident", "approve", key, "shutdown", "--reason", "x"}, exitRefused, "approver lacks a required role"},
			{"validator: not pending", []string{"incident", "approve", key, "start"}, exitRefused, "step is not waiting for approval"},
			{"role check: abort", []string{"incident", "abort", key, "--reason", "x"}, exitAuth, "ir-lead"},
			{"unknown incident", []string{"incident", "show", "nope"}, 1, "no incident"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, code, err := e.run("", tt.args...)
				if code != tt.wantCode || err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("exit %d (%v), want %d with %q", code, err, tt.wantCode, tt.wantMsg)
				}
			})
		}
	})
	t.Run("lead approves", func(t *testing.T) {
		e.must(keycloak.UserPassword+"\n", "login", "--username", "bob", "--otp", keycloak.TOTPCode("bob", time.Now()))
		out := e.must("", "incident", "approve", key, "shutdown", "--reason", "rebuild")
		if !strings.Contains(out, "approved shutdown (1 of 1 approvals)") {
			t.Errorf("output %q", out)
		}
		if _, code, err := e.run("", "incident", "approve", key, "shutdown"); code != exitRefused {
			t.Errorf("second approval: exit %d (%v), want %d", code, err, exitRefused)
		}
	})
	t.Run("note and report", func(t *testing.T) {
		out := e.must("", "incident", "note", key, "checked the shell history")
		if !strings.Contains(out, "evidence://INC-20260101-0000cafe/") {
			t.Errorf("note output %q", out)
		}
		if _, code, _ := e.run("", "incident", "report", key); code != 1 {
			t.Errorf("report before it exists: exit %d", code)
		}
		if _, err := e.locker.Put(context.Background(), evidence.PutRequest{Incident: "INC-20260101-0000cafe", Name: "report/report.json",
			Class: evidence.ClassOperational, MediaType: "application/json", CollectedBy: "system:worker", Source: "test",
			Body: strings.NewReader(`{"ok":true}`)}); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "r.json")
		e.must("", "incident", "report", key, "--format", "json", "-o", file)
		if b, err := os.ReadFile(file); err != nil || string(b) != `{"ok":true}` {
			t.Errorf("report file %q, %v", b, err)
		}
	})
	t.Run("expired token is refreshed", func(t *testing.T) {
		ct := e.cache()
		old := ct.AccessToken
		ct.Expiry = time.Now().Add(-time.Minute)
		if err := apiclient.SaveToken(&apiclient.Config{TokenFile: e.tokens}, &ct); err != nil {
			t.Fatal(err)
		}
		e.must("", "incidents")
		if got := e.cache(); got.AccessToken == old || !got.Expiry.After(time.Now()) {
			t.Errorf("token not refreshed: expiry %s", got.Expiry)
		}
	})
	t.Run("rejected token", func(t *testing.T) {
		ct := e.cache()
		ct.AccessToken = "garbage"
		if err := apiclient.SaveToken(&apiclient.Config{TokenFile: e.tokens}, &ct); err != nil {
			t.Fatal(err)
		}
		if _, code, err := e.run("", "incidents"); code != exitAuth {
			t.Errorf("exit %d (%v), want %d", code, err, exitAuth)
		}
	})
	t.Run("world-readable cache refused", func(t *testing.T) {
		if err := os.Chmod(e.tokens, 0o644); err != nil {
			t.Fatal(err)
		}
		_, code, err := e.run("", "incidents")
		if code != exitAuth || err == nil || !strings.Contains(err.Error(), "readable by others") {
			t.Errorf("exit %d (%v)", code, err)
		}
	})
}
