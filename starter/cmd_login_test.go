package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/apiclient"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/lab/keycloak"
)

// loginEnv runs `starter login` against a lab Keycloak only.
type loginEnv struct {
	t      *testing.T
	kc     *keycloak.Server
	tokens string
}

func newLoginEnv(t *testing.T) *loginEnv {
	t.Helper()
	kc, err := keycloak.New(keycloak.Options{Addr: "127.0.0.1:0", KeyBits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); kc.Close() })
	if err := kc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv("IRU_OIDC_ISSUER", kc.URL()+"/realms/"+keycloak.Realm)
	t.Setenv("IRU_TOKEN_FILE", "")
	t.Setenv(config.EnvFileVar, "")
	return &loginEnv{t: t, kc: kc, tokens: filepath.Join(home, "iru", "token.json")}
}

func (e *loginEnv) login(stdin string, args ...string) (string, int) {
	e.t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetArgs(append([]string{"login"}, args...))
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&out)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		return out.String() + err.Error(), exitCode(err)
	}
	return out.String(), 0
}

// cachedAMR reads the amr claim of the cached access token.
func (e *loginEnv) cachedAMR() []string {
	e.t.Helper()
	b, err := os.ReadFile(e.tokens)
	if err != nil {
		e.t.Fatal(err)
	}
	var ct apiclient.CachedToken
	if err := json.Unmarshal(b, &ct); err != nil {
		e.t.Fatal(err)
	}
	parts := strings.Split(ct.AccessToken, ".")
	if len(parts) != 3 {
		e.t.Fatalf("cached token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		e.t.Fatal(err)
	}
	var c struct {
		Amr []string `json:"amr"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		e.t.Fatal(err)
	}
	return c.Amr
}

func TestLoginOneTimeCode(t *testing.T) {
	e := newLoginEnv(t)
	pw := keycloak.UserPassword + "\n"
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantAMR  []string
	}{
		{"lead without --otp is refused", []string{"--username", "bob"}, exitAuth, nil},
		// carol: two failures of one account within a second would lock it (quick-login check).
		{"admin with a wrong code is refused", []string{"--username", "carol", "--otp", "123456"}, exitAuth, nil},
		{"a code that is not digits is a usage error", []string{"--username", "bob", "--otp", "12a456"}, 2, nil},
		{"lead with the right code", []string{"--username", "bob", "--otp", keycloak.TOTPCode("bob", time.Now())}, 0, []string{"pwd", "otp"}},
		{"responder without a second factor", []string{"--username", "alice"}, 0, []string{"pwd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = os.Remove(e.tokens)
			out, code := e.login(pw, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tt.wantCode, out)
			}
			if tt.wantCode != 0 {
				if _, err := os.Stat(e.tokens); err == nil {
					t.Fatal("a refused login cached a token")
				}
				return
			}
			if got := e.cachedAMR(); !slices.Equal(got, tt.wantAMR) {
				t.Fatalf("amr = %q, want %q", got, tt.wantAMR)
			}
		})
	}
}
