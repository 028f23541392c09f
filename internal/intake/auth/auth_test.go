package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

var now = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

const secret = "0123456789abcdef0123456789abcdef-hmac"

func detectors() []Detector {
	return []Detector{
		{Name: "am", Format: "alertmanager", APIKeys: []APIKey{
			{ID: "old", SHA256: HashKey("old", "old-key"), NotAfter: now.Add(time.Hour)},
			{ID: "new", SHA256: HashKey("new", "new-key"), NotBefore: now.Add(-time.Minute)},
			{ID: "future", SHA256: HashKey("future", "future-key"), NotBefore: now.Add(time.Hour)},
			{ID: "gone", SHA256: HashKey("gone", "gone-key"), NotAfter: now.Add(-time.Second)},
		}},
		{Name: "wazuh", Format: "wazuh", HMACSecrets: []HMACSecret{{ID: "s1", Secret: secret}}},
		{Name: "falco", Format: "falco", APIKeys: []APIKey{{ID: "k", SHA256: HashKey("k", "falco-key")}},
			MTLS: MTLS{Require: true, Subjects: []string{"falcosidekick.pve1"}}},
	}
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) ObserveAuth(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func withCert(cn string, dns ...string) func(*http.Request) {
	return func(r *http.Request) {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	}
}

func header(k, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(k, v) } }

func signed(at time.Time, body string, sec string) func(*http.Request) {
	return func(r *http.Request) {
		ts, sig := SignatureHeader([]byte(sec), at, []byte(body))
		r.Header.Set(HeaderTimestamp, ts)
		r.Header.Set(HeaderSignature, sig)
	}
}

func TestAuthenticate(t *testing.T) {
	body := `{"x":1}`
	tests := []struct {
		name     string
		detector string
		setup    []func(*http.Request)
		keyID    string
		reason   string // "" for success
	}{
		{"bearer old key in overlap", "am", []func(*http.Request){header("Authorization", "Bearer old-key")}, "old", ""},
		{"x-iru-key new key", "am", []func(*http.Request){header(HeaderKey, "new-key")}, "new", ""},
		{"bearer lower case", "am", []func(*http.Request){header("Authorization", "bearer new-key")}, "new", ""},
		{"no credentials", "am", nil, "", "no credentials"},
		{"wrong key", "am", []func(*http.Request){header(HeaderKey, "guess")}, "", "wrong api key"},
		{"key not yet valid", "am", []func(*http.Request){header(HeaderKey, "future-key")}, "future", "validity"},
		{"key expired", "am", []func(*http.Request){header(HeaderKey, "gone-key")}, "gone", "validity"},
		{"key of another detector", "am", []func(*http.Request){header(HeaderKey, "falco-key")}, "", "wrong api key"},
		{"unknown detector", "splunk", []func(*http.Request){header(HeaderKey, "new-key")}, "", "unknown detector"},
		{"signature ok", "wazuh", []func(*http.Request){signed(now.Add(-time.Minute), body, secret)}, "s1", ""},
		{"signature wrong secret", "wazuh", []func(*http.Request){signed(now, body, strings.Repeat("x", 40))}, "", "bad signature"},
		{"signature other body", "wazuh", []func(*http.Request){signed(now, `{"x":2}`, secret)}, "", "bad signature"},
		{"signature stale", "wazuh", []func(*http.Request){signed(now.Add(-6*time.Minute), body, secret)}, "", "replay window"},
		{"signature from the future", "wazuh", []func(*http.Request){signed(now.Add(6*time.Minute), body, secret)}, "", "replay window"},
		{"signature no timestamp", "wazuh", []func(*http.Request){signed(now, body, secret), header(HeaderTimestamp, "")}, "", "without timestamp"},
		{"signature malformed", "wazuh", []func(*http.Request){header(HeaderTimestamp, "1714564800"), header(HeaderSignature, "md5=abc")}, "", "malformed"},
		{"api key to hmac detector", "wazuh", []func(*http.Request){header(HeaderKey, "new-key")}, "", "no credentials"},
		{"mtls ok by SAN", "falco", []func(*http.Request){header(HeaderKey, "falco-key"), withCert("sidekick", "falcosidekick.pve1")}, "k", ""},
		{"mtls ok by CN", "falco", []func(*http.Request){header(HeaderKey, "falco-key"), withCert("falcosidekick.pve1")}, "k", ""},
		{"mtls missing", "falco", []func(*http.Request){header(HeaderKey, "falco-key")}, "", "no verified client certificate"},
		{"mtls wrong subject", "falco", []func(*http.Request){header(HeaderKey, "falco-key"), withCert("intruder")}, "", "not allowed"},
		{"mtls unverified chain", "falco", []func(*http.Request){header(HeaderKey, "falco-key"), withCert("falcosidekick.pve1"), func(r *http.Request) { r.TLS.VerifiedChains = nil }}, "", "no verified client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			a, err := New(detectors(), Options{Observer: rec, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodPost, "/v1/alerts/"+tt.detector, strings.NewReader(body))
			for _, f := range tt.setup {
				f(r)
			}
			id, err := a.Authenticate(r, tt.detector, []byte(body))
			if len(rec.events) != 1 {
				t.Fatalf("%d events, want 1", len(rec.events))
			}
			ev := rec.events[0]
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("rejected: %v (reason %q)", err, ev.Reason)
				}
				if id.KeyID != tt.keyID || id.Detector != tt.detector || !ev.Success {
					t.Errorf("identity %+v event %+v, want key %q", id, ev, tt.keyID)
				}
				return
			}
			if !errors.Is(err, ErrUnauthorized) || err.Error() != "unauthorized" {
				t.Fatalf("error = %v, want ErrUnauthorized", err)
			}
			if ev.Success || !strings.Contains(ev.Reason, tt.reason) || ev.KeyID != tt.keyID {
				t.Errorf("event %+v, want failure with reason %q key %q", ev, tt.reason, tt.keyID)
			}
		})
	}
}

func TestReplayRejected(t *testing.T) {
	clock := now
	a, err := New(detectors(), Options{Now: func() time.Time { return clock }, ReplayWindow: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"a":1}`)
	req := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		signed(now, string(body), secret)(r)
		return r
	}
	if _, err := a.Authenticate(req(), "wazuh", body); err != nil {
		t.Fatalf("first: %v", err)
	}
	clock = now.Add(4 * time.Minute)
	if _, err := a.Authenticate(req(), "wazuh", body); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("replay within the window accepted: %v", err)
	}
	clock = now.Add(6 * time.Minute)
	if _, err := a.Authenticate(req(), "wazuh", body); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("replay after the window accepted: %v", err)
	}
}

func TestReplayCacheBounded(t *testing.T) {
	c := newReplayCache(2)
	exp := now.Add(time.Minute)
	for i := range 2 {
		if err := c.Remember(context.Background(), "d", [32]byte{byte(i)}, exp, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Remember(context.Background(), "d", [32]byte{9}, exp, now); !errors.Is(err, ErrReplayFull) {
		t.Fatalf("full cache: %v", err)
	}
	if err := c.Remember(context.Background(), "d", [32]byte{9}, exp.Add(time.Minute), exp); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		d    Detector
	}{
		{"no credentials", Detector{Name: "x"}},
		{"bad name", Detector{Name: "a/b", APIKeys: []APIKey{{ID: "k", SHA256: HashKey("k", "v")}}}},
		{"bad hash", Detector{Name: "x", APIKeys: []APIKey{{ID: "k", SHA256: "abc"}}}},
		{"short secret", Detector{Name: "x", HMACSecrets: []HMACSecret{{ID: "s", Secret: "short"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New([]Detector{tt.d}, Options{}); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := New(append(detectors(), detectors()[0]), Options{}); err == nil {
		t.Error("duplicate detector accepted")
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKey()
	if a == b || !strings.HasPrefix(a, "iru_") || len(a) != 47 {
		t.Errorf("keys %q %q", a, b)
	}
	if HashKey("a", a) == HashKey("b", a) {
		t.Error("key id does not salt the hash")
	}
}
