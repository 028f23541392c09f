//go:build integration

package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/testenv"
)

// codecEchoInput carries the secret through a workflow input, an activity
// input and result, and the workflow result.
type codecEchoInput struct {
	Secret string
}

type codecEchoResult struct {
	Echo string
}

const codecEchoWorkflowName = "CodecEchoTest"

func codecEchoWorkflow(ctx workflow.Context, in codecEchoInput) (codecEchoResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out codecEchoResult
	err := workflow.ExecuteActivity(ctx, codecEchoActivity, in).Get(ctx, &out)
	return out, err
}

func codecEchoActivity(_ context.Context, in codecEchoInput) (codecEchoResult, error) {
	return codecEchoResult{Echo: in.Secret}, nil
}

// secretTraces returns the secret in clear, hex, and as every base64
// alignment it can take inside a longer encoded blob (standard and URL
// alphabets), so a search finds it however the CLI renders a payload.
func secretTraces(secret string) []string {
	out := []string{secret, hex.EncodeToString([]byte(secret))}
	for shift := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, shift), secret...))
		start := (shift*8 + 5) / 6 // characters mixing in the preceding bytes
		inner := enc[start : len(enc)-4]
		out = append(out, inner, strings.NewReplacer("+", "-", "/", "_").Replace(inner))
	}
	return out
}

// TestCodecEncryptsHistory runs a workflow through the encrypting data
// converter on the real dev server, then reads its history with the pinned
// CLI: without the codec server the secret is nowhere in it, with the codec
// server (and its bearer token) it is.
func TestCodecEncryptsHistory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	hsm, _ := hsmtest.Manager(t)
	store, err := codec.NewFileKeyStore(filepath.Join(t.TempDir(), "codec-keys"))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := codec.OpenKeyRing(ctx, hsm, store)
	if err != nil {
		t.Fatalf("open key ring: %v", err)
	}
	c := testenv.Client(t, client.Options{DataConverter: codec.NewDataConverter(ring)})
	tq := "codec-" + uuid.NewString()
	testenv.Worker(t, c, tq, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(codecEchoWorkflow, workflow.RegisterOptions{Name: codecEchoWorkflowName})
		r.RegisterActivity(codecEchoActivity)
	})

	secret := "iru-secret-" + uuid.NewString()
	wfID := "codec-test-" + uuid.NewString()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wfID, TaskQueue: tq}, codecEchoWorkflowName, codecEchoInput{Secret: secret})
	if err != nil {
		t.Fatalf("start workflow: %v", err)
	}
	var res codecEchoResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if res.Echo != secret {
		t.Fatalf("workflow returned %q, want the secret", res.Echo)
	}

	cli, err := testenv.TemporalCLI()
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.Temporal(t)
	show := func(t *testing.T, extra ...string) (string, error) {
		t.Helper()
		args := append([]string{"workflow", "show", "--workflow-id", wfID,
			"--address", srv.Address(), "--namespace", srv.Namespace(), "--output", "json"}, extra...)
		cmd := exec.CommandContext(ctx, cli, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String() + stderr.String(), err
	}

	const token = "codec-integration-token-0123456789"
	auth, err := codec.NewStaticTokenAuthenticator(token, "integration-test")
	if err != nil {
		t.Fatal(err)
	}
	handler, err := codec.NewServer(codec.ServerOptions{Codec: codec.NewCodec(ring), Authenticator: auth})
	if err != nil {
		t.Fatal(err)
	}
	codecSrv := httptest.NewServer(handler) // a free port on 127.0.0.1
	defer codecSrv.Close()

	encryptedMarker := base64.StdEncoding.EncodeToString([]byte("binary/encrypted"))
	tests := []struct {
		name       string
		extra      []string
		wantSecret bool
		wantFail   bool
	}{
		{"without codec server", nil, false, false},
		// The CLI retries a refused decode until its timeout, then fails.
		{"codec server with a wrong token", []string{"--codec-endpoint", codecSrv.URL, "--codec-auth", "Bearer wrong-token-0123456789", "--command-timeout", "3s"}, false, true},
		{"codec server with its token", []string{"--codec-endpoint", codecSrv.URL, "--codec-auth", "Bearer " + token}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := show(t, tc.extra...)
			if tc.wantSecret {
				if err != nil {
					t.Fatalf("temporal workflow show: %v\n%s", err, out)
				}
				if n := countSecret(out, secret); n < 4 {
					t.Errorf("decoded history shows the secret %d times, want at least 4 (workflow input, activity input and result, workflow result):\n%s", n, out)
				}
				if strings.Contains(out, encryptedMarker) {
					t.Errorf("decoded history still holds encrypted payloads:\n%s", out)
				}
				return
			}
			if tc.wantFail {
				if err == nil {
					t.Errorf("temporal workflow show succeeded with a refused codec token:\n%s", out)
				}
			} else {
				if err != nil {
					t.Fatalf("temporal workflow show: %v\n%s", err, out)
				}
				if !strings.Contains(out, encryptedMarker) || !strings.Contains(out, wfID) {
					t.Fatalf("history shows no encrypted payload of %s, so the search below proves nothing:\n%s", wfID, out)
				}
			}
			for _, trace := range secretTraces(secret) {
				if strings.Contains(out, trace) {
					t.Fatalf("history output contains a trace of the secret (%q):\n%s", trace, out)
				}
			}
		})
	}
}

// payloadData matches the base64 data of a payload in the CLI's JSON.
var payloadData = regexp.MustCompile(`"data":\s*"([A-Za-z0-9+/=]*)"`)

// countSecret counts the secret in out, in clear (JSON shorthand) and
// inside base64 payload data (the CLI prints decoded payloads that way).
func countSecret(out, secret string) int {
	n := strings.Count(out, secret)
	for _, m := range payloadData.FindAllStringSubmatch(out, -1) {
		if b, err := base64.StdEncoding.DecodeString(m[1]); err == nil {
			n += strings.Count(string(b), secret)
		}
	}
	return n
}

// TestSecretTracesFindsEncodings guards the trace search itself: a secret
// embedded in a base64 blob at any offset must be found.
func TestSecretTracesFindsEncodings(t *testing.T) {
	const secret = "iru-secret-0f3c2b1a"
	for _, prefix := range []string{`{"Secret":"`, `{"Secret": "`, `{"Secret":  "`} {
		blob := []byte(prefix + secret + `"}`)
		for name, enc := range map[string]string{
			"std": base64.StdEncoding.EncodeToString(blob),
			"url": base64.URLEncoding.EncodeToString(blob),
			"hex": hex.EncodeToString([]byte(secret)),
		} {
			found := false
			for _, trace := range secretTraces(secret) {
				found = found || strings.Contains(enc, trace)
			}
			if !found {
				t.Errorf("%s encoding of %q: no trace found", name, blob)
			}
		}
	}
}
