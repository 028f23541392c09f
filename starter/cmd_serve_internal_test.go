package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/logging"
	"github.com/iru-responder/responder/internal/testenv"
)

func freeLocalAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeMetricsInternalAndSecretsRedacted runs `starter serve` with a
// Slack webhook URL and a generic webhook URL that carries a token, then
// scrapes /metrics on the public port (404) and on the internal listener
// (200), and reads the server's log: no part of either secret URL is in it.
func TestServeMetricsInternalAndSecretsRedacted(t *testing.T) {
	const slackSecret, hookToken = "xoxbSLACKsecretPART", "hookTOKENsecret42"
	kcfg := hsmtest.Config(t)
	dir := t.TempDir()
	public, internal := freeLocalAddr(t), freeLocalAddr(t)
	env := []string{
		"IRU_HSM_MODULE=" + kcfg.Module, "IRU_HSM_TOKEN_LABEL=" + kcfg.TokenLabel, "IRU_HSM_PIN=" + kcfg.PIN,
		"IRU_CODEC_KEY_DIR=" + filepath.Join(dir, "codec"),
		"IRU_LEDGER_DRIVER=sqlite", "IRU_LEDGER_SQLITE_PATH=" + filepath.Join(dir, "ledger.db"), "IRU_EVIDENCE_DIR=" + filepath.Join(dir, "evidence"),
		"IRU_TEMPORAL_ADDRESS=127.0.0.1:1", "IRU_LOG_LEVEL=debug",
		"IRU_API_ADDR=" + public, "IRU_API_INTERNAL_ADDR=" + internal,
		"IRU_NOTIFY_SLACK_URL=https://hooks.slack.com/services/T0TEAMID1/B0HOOKID2/" + slackSecret,
		"IRU_NOTIFY_WEBHOOK_URL=https://ops:" + hookToken + "@hooks.example.org/in/" + hookToken + "?token=" + hookToken,
	}
	var cfg serveConfig
	if err := config.LoadFrom(&cfg, env); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prot, err := openProtection(ctx, cfg.Protection)
	if err != nil {
		t.Fatal(err)
	}
	defer prot.Close()
	logs := &testenv.LockedBuffer{}
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- serve(ctx, cfg, prot, logging.New(logs, cfg.Log, "starter-serve"), ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	get := func(addr, path string) (int, string) {
		t.Helper()
		c := &http.Client{Timeout: 5 * time.Second}
		res, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(public, "/metrics"); code != http.StatusNotFound || strings.Contains(body, "go_goroutines") {
		t.Errorf("public /metrics: %d %.80q, want 404", code, body)
	}
	if code, _ := get(public, "/healthz"); code != http.StatusOK {
		t.Errorf("public /healthz: %d", code)
	}
	if code, body := get(internal, "/metrics"); code != http.StatusOK || !strings.Contains(body, "iru_access_log_records_total") {
		t.Errorf("internal /metrics: %d %.200q", code, body)
	}
	if code, _ := get(internal, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("internal /readyz with Temporal down: %d, want 503", code)
	}
	if code, _ := get(internal, "/api/v1/incidents"); code != http.StatusNotFound {
		t.Errorf("internal listener serves the responder API: %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "IRU_NOTIFY_WEBHOOK_URL=https://REDACTED@hooks.example.org/in/REDACTED?token=REDACTED") {
		t.Errorf("start-up log lacks the redacted webhook URL:\n%s", out)
	}
	for _, s := range []string{slackSecret, "T0TEAMID1", "B0HOOKID2", hookToken} {
		if bytes.Contains([]byte(out), []byte(s)) {
			t.Errorf("the log holds %q:\n%s", s, out)
		}
	}
}
