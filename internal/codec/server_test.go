package codec_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/iru-responder/responder/internal/codec"
)

const (
	testToken  = "codec-test-token-0123456789"
	testOrigin = "http://localhost:8233"
)

func newTestServer(t *testing.T) (*httptest.Server, *codec.Codec) {
	t.Helper()
	f := newFixture(t)
	auth, err := codec.NewStaticTokenAuthenticator(testToken, "ops")
	if err != nil {
		t.Fatal(err)
	}
	c := codec.NewCodec(f.ring)
	h, err := codec.NewServer(codec.ServerOptions{
		Codec:          c,
		Authenticator:  auth,
		AllowedOrigins: []string{testOrigin},
		Log:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, c
}

func payloadsJSON(t *testing.T, ps ...*commonpb.Payload) []byte {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServerAuthAndCodec(t *testing.T) {
	srv, c := newTestServer(t)
	const secret = "db-password=hunter2-but-longer"
	plain, err := converter.GetDefaultDataConverter().ToPayload(secret)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	tampered := &commonpb.Payload{Metadata: enc[0].Metadata, Data: bytes.Clone(enc[0].Data)}
	tampered.Data[15] ^= 1

	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		body       []byte
		wantStatus int
		wantBody   string // substring of the response body
	}{
		{"decode without credentials", "POST", "/decode", "", payloadsJSON(t, enc[0]), 401, "unauthorized"},
		{"decode with a wrong token", "POST", "/decode", "Bearer wrong-token-0123456789", payloadsJSON(t, enc[0]), 401, "unauthorized"},
		{"decode with basic auth", "POST", "/decode", "Basic " + testToken, payloadsJSON(t, enc[0]), 401, "unauthorized"},
		{"encode without credentials", "POST", "/encode", "", payloadsJSON(t, plain), 401, "unauthorized"},
		{"decode", "POST", "/decode", "Bearer " + testToken, payloadsJSON(t, enc[0]), 200, "anNvbi9wbGFpbg"},                      // base64("json/plain")
		{"decode under a prefix", "POST", "/codec/decode", "bearer " + testToken, payloadsJSON(t, enc[0]), 200, "anNvbi9wbGFpbg"}, // base64("json/plain")
		{"encode", "POST", "/encode", "Bearer " + testToken, payloadsJSON(t, plain), 200, "YmluYXJ5L2VuY3J5cHRlZA"},               // base64("binary/encrypted")
		{"decode tampered", "POST", "/decode", "Bearer " + testToken, payloadsJSON(t, tampered), 400, "tampered"},
		{"bad body", "POST", "/decode", "Bearer " + testToken, []byte("{not json"), 400, ""},
		{"GET", "GET", "/decode", "Bearer " + testToken, nil, 405, ""},
		{"unknown path", "POST", "/other", "Bearer " + testToken, payloadsJSON(t, plain), 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Namespace", "default")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.wantStatus, body)
			}
			if !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("body %s does not contain %q", body, tc.wantBody)
			}
			if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if resp.StatusCode != 200 && strings.Contains(string(body), secret) {
				t.Error("error response contains the secret")
			}
			if tc.name == "decode" {
				var out commonpb.Payloads
				if err := protojson.Unmarshal(body, &out); err != nil || len(out.Payloads) != 1 {
					t.Fatalf("decode response %s: %v", body, err)
				}
				var got string
				if err := converter.GetDefaultDataConverter().FromPayload(out.Payloads[0], &got); err != nil || got != secret {
					t.Errorf("decoded %q, %v; want the secret", got, err)
				}
			}
			if tc.name == "encode" {
				var out commonpb.Payloads
				if err := protojson.Unmarshal(body, &out); err != nil || len(out.Payloads) != 1 {
					t.Fatalf("encode response %s: %v", body, err)
				}
				dec, err := c.Decode(out.Payloads)
				if err != nil || !bytes.Equal(dec[0].Data, plain.Data) {
					t.Errorf("server-encoded payload does not decode: %v", err)
				}
			}
		})
	}
}

func TestServerCORS(t *testing.T) {
	srv, _ := newTestServer(t)
	tests := []struct {
		name       string
		method     string
		origin     string
		reqMethod  string
		auth       bool
		wantStatus int
		wantACAO   string
	}{
		{"preflight from the Web UI", "OPTIONS", testOrigin, "POST", false, 204, testOrigin},
		{"preflight from another origin", "OPTIONS", "https://evil.example", "POST", false, 403, ""},
		{"OPTIONS that is not a preflight", "OPTIONS", testOrigin, "", false, 403, testOrigin},
		{"request from the Web UI", "POST", testOrigin, "", true, 200, testOrigin},
		{"unauthenticated request from the Web UI", "POST", testOrigin, "", false, 401, testOrigin},
		{"request from another origin", "POST", "https://evil.example", "", true, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+"/decode", bytes.NewReader(payloadsJSON(t)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Origin", tc.origin)
			if tc.reqMethod != "" {
				req.Header.Set("Access-Control-Request-Method", tc.reqMethod)
				req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-namespace")
			}
			if tc.auth {
				req.Header.Set("Authorization", "Bearer "+testToken)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.wantACAO {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tc.wantACAO)
			}
			if resp.Header.Get("Vary") != "Origin" {
				t.Errorf("Vary = %q, want Origin", resp.Header.Get("Vary"))
			}
			if tc.wantStatus == 204 {
				allow := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
				for _, h := range []string{"authorization", "content-type", "x-namespace"} {
					if !strings.Contains(allow, h) {
						t.Errorf("Access-Control-Allow-Headers %q lacks %s", allow, h)
					}
				}
				if !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
					t.Errorf("Access-Control-Allow-Methods = %q", resp.Header.Get("Access-Control-Allow-Methods"))
				}
				if resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
					t.Error("credentials not allowed")
				}
			}
		})
	}
}

func TestServerOptions(t *testing.T) {
	auth, err := codec.NewStaticTokenAuthenticator(testToken, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.NewStaticTokenAuthenticator("short", "ops"); err == nil {
		t.Error("NewStaticTokenAuthenticator accepted a 5-character token")
	}
	f := newFixture(t)
	tests := []struct {
		name string
		opts codec.ServerOptions
	}{
		{"no authenticator", codec.ServerOptions{Codec: codec.NewCodec(f.ring)}},
		{"no codec", codec.ServerOptions{Authenticator: auth}},
		{"origin with a path", codec.ServerOptions{Codec: codec.NewCodec(f.ring), Authenticator: auth, AllowedOrigins: []string{"http://ui/"}}},
		{"origin without a scheme", codec.ServerOptions{Codec: codec.NewCodec(f.ring), Authenticator: auth, AllowedOrigins: []string{"ui.example"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := codec.NewServer(tc.opts); err == nil {
				t.Error("NewServer accepted the options")
			}
		})
	}
}
