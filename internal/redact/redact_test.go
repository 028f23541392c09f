package redact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// secrets are the parts of each URL an attacker must not learn.
func TestURL(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		secrets []string
		keep    string
	}{
		{"slack webhook", "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/xoxbSECRETsecretSECRET", []string{"T0AAAAAAA", "B0BBBBBBB", "xoxbSECRET", "services"}, "https://hooks.slack.com/REDACTED"},
		{"userinfo", "https://alice:hunter2pass@example.org/hook", []string{"alice", "hunter2pass"}, "https://REDACTED@example.org/hook"},
		{"token in query", "https://example.org/hook?token=s3cr3tvalue&channel=ops", []string{"s3cr3tvalue", "ops"}, "https://example.org/hook?channel=REDACTED&token=REDACTED"},
		{"token in path", "https://example.org/api/webhooks/1234567890/abcdefghijklmnopqrstuvwxyz", []string{"1234567890", "abcdefghijklmnop"}, "https://example.org/api/webhooks/REDACTED/REDACTED"},
		{"discord", "https://discord.com/api/webhooks/123/tok", []string{"123", "tok"}, "https://discord.com/REDACTED"},
		{"plain api url kept", "https://pve1.example.org:8006/api2/json", nil, "https://pve1.example.org:8006/api2/json"},
		{"realm url kept", "http://keycloak:8080/realms/iru", nil, "http://keycloak:8080/realms/iru"},
		{"fragment", "https://example.org/x#access_token=abc", []string{"access_token", "abc"}, "https://example.org/x#REDACTED"},
		{"unparseable", "https://exa mple.org/%zz/secretsecret", []string{"secretsecret"}, "https://REDACTED"},
		{"not a url", "hello world", nil, "hello world"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := URL(tt.raw)
			if got != tt.keep {
				t.Errorf("URL(%q) = %q, want %q", tt.raw, got, tt.keep)
			}
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("URL(%q) = %q still contains %q", tt.raw, got, s)
				}
			}
		})
	}
}

const slackURL = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/xoxbSECRETsecretSECRET"

// secretParts are the pieces of slackURL's path, each of which must be
// absent from any redacted output.
var secretParts = []string{"T0AAAAAAA", "B0BBBBBBB", "xoxbSECRETsecretSECRET"}

func assertClean(t *testing.T, what, s string) {
	t.Helper()
	for _, p := range secretParts {
		if strings.Contains(s, p) {
			t.Errorf("%s contains %q: %s", what, p, s)
		}
	}
}

func TestString(t *testing.T) {
	in := fmt.Sprintf("post %q: dial tcp: refused (see %s), also <%s>", slackURL, slackURL, "https://u:p4ssw0rd@x.org/")
	got := String(in)
	assertClean(t, "String", got)
	if strings.Contains(got, "p4ssw0rd") {
		t.Errorf("password kept: %s", got)
	}
	if !strings.Contains(got, `post "https://hooks.slack.com/REDACTED": dial tcp: refused (see https://hooks.slack.com/REDACTED)`) {
		t.Errorf("String = %s", got)
	}
	// Values as the configuration prints them stay readable.
	for in, want := range map[string]string{
		"[http://127.0.0.1:8233 https://ui.example.org]": "[http://127.0.0.1:8233 https://ui.example.org]",
		"https://pve1.example.org:8006/api2/json":        "https://pve1.example.org:8006/api2/json",
		"{https://u:pw@x.org/}":                          "{https://REDACTED@x.org/}",
		"dial http://[::1]:8080":                         "dial http://[::1]:8080",
		"[http://[::1]]":                                 "[http://[::1]]",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestErrorFromHTTPClient performs a real failing POST to the secret URL
// (its host resolves nowhere) and checks that neither the redacted error,
// nor the *url.Error in its chain, nor errors.Is on the cause, leaks or
// breaks.
func TestErrorFromHTTPClient(t *testing.T) {
	u := strings.Replace(slackURL, "hooks.slack.com", "127.0.0.1:1", 1) // nothing listens on port 1
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, u, nil)
	_, raw := http.DefaultClient.Do(req)
	if raw == nil {
		t.Fatal("the POST did not fail")
	}
	if !strings.Contains(raw.Error(), "xoxbSECRET") {
		t.Fatalf("precondition: Go's error quotes the URL: %v", raw)
	}
	err := fmt.Errorf("notify: %w", Error(raw))
	assertClean(t, "error", err.Error())
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatal("the *url.Error is no longer in the chain")
	}
	assertClean(t, "url.Error", ue.Error())
	if Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
	ctxErr := Error(fmt.Errorf("post %s: %w", slackURL, context.DeadlineExceeded))
	if !errors.Is(ctxErr, context.DeadlineExceeded) {
		t.Error("errors.Is lost the cause")
	}
	assertClean(t, "wrapped", ctxErr.Error())
}

type stringer struct{}

func (stringer) String() string { return "endpoint " + slackURL }

func TestAttr(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: Attr}))
	log.Error("send to "+slackURL+" failed", "url", slackURL, "err", errors.New("post "+slackURL+": 500"),
		"config", []string{"IRU_NOTIFY_WEBHOOK_URL=" + slackURL}, "s", stringer{}, slog.Group("g", "inner", slackURL))
	assertClean(t, "log line", buf.String())
	if !strings.Contains(buf.String(), "hooks.slack.com/REDACTED") {
		t.Errorf("log line lost the host: %s", buf.String())
	}
}
