package detectors_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/internal/intake"
	"github.com/iru-responder/responder/internal/intake/auth"
)

// sidekickConfig is the part of Falcosidekick's config.yaml the kit sets
// (keys as Falcosidekick's documentation names them).
type sidekickConfig struct {
	MutualTLSClient struct {
		CertFile   string `yaml:"certfile"`
		KeyFile    string `yaml:"keyfile"`
		CACertFile string `yaml:"cacertfile"`
	} `yaml:"mutualtlsclient"`
	Webhook struct {
		Address         string            `yaml:"address"`
		Method          string            `yaml:"method"`
		CustomHeaders   map[string]string `yaml:"customheaders"`
		MinimumPriority string            `yaml:"minimumpriority"`
		CheckCert       *bool             `yaml:"checkcert"`
		MutualTLS       bool              `yaml:"mutualtls"`
	} `yaml:"webhook"`
}

func loadSidekick(t *testing.T, file string) sidekickConfig {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c sidekickConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if c.Webhook.Address != "https://iru.example.internal/v1/alerts/falco" || c.Webhook.Method != "POST" || c.Webhook.MinimumPriority != "notice" {
		t.Errorf("%s: webhook %+v", file, c.Webhook)
	}
	return c
}

// falcoEvent is a Falco event as Falcosidekick's webhook output posts it:
// Falco's JSON output (json_output: true, json_include_output_property,
// json_include_tags_property) with Falcosidekick's uuid, as its
// documentation gives the body (Falcosidekick's module is not served by
// the module proxy here, so its sender code cannot run in the test).
const falcoEvent = `{"uuid":"5d6b1e8c-7d0a-4b9f-9c33-6a2f3e3f1a01","output":"17:01:02.123456789: Notice A shell was spawned in a container with an attached terminal (user=root container_id=3ad7b26ded6d container_name=web-1 shell=bash)","priority":"Notice","rule":"Terminal shell in container","time":"2026-12-05T17:01:02.123456789Z","output_fields":{"container.id":"3ad7b26ded6d","container.name":"web-1","evt.time":1796490062123456789,"proc.cmdline":"bash","user.name":"root"},"source":"syscall","tags":["container","mitre_execution","shell"],"hostname":"pve1"}`

// sidekickPost sends the event as Falcosidekick's webhook output does:
// the configured method, JSON, and the custom headers.
func sidekickPost(t *testing.T, client *http.Client, c sidekickConfig, url string) int {
	t.Helper()
	req, err := http.NewRequest(c.Webhook.Method, url, bytes.NewBufferString(falcoEvent))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Falcosidekick")
	for k, v := range c.Webhook.CustomHeaders {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestFalcosidekickKeyKit: the key header of falcosidekick.yaml
// authenticates; the event becomes a container-compromise alert for the
// inventory's web-1; a wrong key is refused and nothing is spooled.
func TestFalcosidekickKeyKit(t *testing.T) {
	const key = "falco-kit-key-0123456789"
	c := loadSidekick(t, "falcosidekick.yaml")
	if c.Webhook.CheckCert == nil || !*c.Webhook.CheckCert {
		t.Error("checkcert must stay on")
	}
	if _, ok := c.Webhook.CustomHeaders[auth.HeaderKey]; !ok {
		t.Fatalf("customheaders %v lack %s", c.Webhook.CustomHeaders, auth.HeaderKey)
	}
	in := newKitIntake(t, auth.Detector{Name: "falco", Format: "falco", APIKeys: []auth.APIKey{{ID: "f1", SHA256: auth.HashKey("f1", key)}}})
	url := in.URL + "/v1/alerts/falco"

	if got := sidekickPost(t, http.DefaultClient, c, url); got != http.StatusUnauthorized {
		t.Errorf("the kit's placeholder key: status %d, want 401", got)
	}
	c.Webhook.CustomHeaders[auth.HeaderKey] = key
	if got := sidekickPost(t, http.DefaultClient, c, url); got != http.StatusAccepted {
		t.Fatalf("status %d, want 202", got)
	}
	recs := in.records(t)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if r.Alert.Asset != "web-1" || !r.Mapped || r.Playbook != "container-compromise" || r.Alert.Rule != "Terminal shell in container" || r.OpenedBy != "falco/f1" {
		t.Errorf("record %+v", r)
	}
}

// TestFalcosidekickMTLSKit: with falcosidekick-mtls.yaml's client
// certificate files and the key the intake accepts the detector; with the
// right key but no certificate, or one of another subject, it refuses.
func TestFalcosidekickMTLSKit(t *testing.T) {
	c := loadSidekick(t, "falcosidekick-mtls.yaml")
	if !c.Webhook.MutualTLS || c.MutualTLSClient.CertFile == "" || c.MutualTLSClient.KeyFile == "" || c.MutualTLSClient.CACertFile == "" {
		t.Fatalf("mtls kit: %+v", c)
	}
	dir := t.TempDir()
	ca := newCA(t)
	ca.issue(t, "iru-intake", filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), x509.ExtKeyUsageServerAuth)
	// The kit's file names, under the test's directory.
	certFile, keyFile, caFile := filepath.Join(dir, filepath.Base(c.MutualTLSClient.CertFile)), filepath.Join(dir, filepath.Base(c.MutualTLSClient.KeyFile)), filepath.Join(dir, filepath.Base(c.MutualTLSClient.CACertFile))
	ca.issue(t, "falcosidekick", certFile, keyFile, x509.ExtKeyUsageClientAuth)
	ca.issue(t, "someone-else", filepath.Join(dir, "other.crt"), filepath.Join(dir, "other.key"), x509.ExtKeyUsageClientAuth)
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}

	const key = "falco-mtls-key-0123456789"
	in := newKitIntake(t, auth.Detector{Name: "falco", Format: "falco", APIKeys: []auth.APIKey{{ID: "f1", SHA256: auth.HashKey("f1", key)}},
		MTLS: auth.MTLS{Require: true, Subjects: []string{"falcosidekick"}}})
	c.Webhook.CustomHeaders[auth.HeaderKey] = key
	mux := http.NewServeMux()
	mux.Handle(intake.Pattern, in.h)
	srv := httptest.NewUnstartedServer(mux)
	serverCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	url := srv.URL + "/v1/alerts/falco"

	client := func(cert, key string) *http.Client {
		tc := &tls.Config{RootCAs: ca.pool, ServerName: "iru-intake", MinVersion: tls.VersionTLS12}
		if cert != "" {
			kp, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{kp}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
	}
	if got := sidekickPost(t, client("", ""), c, url); got != http.StatusUnauthorized {
		t.Errorf("no client certificate: status %d, want 401", got)
	}
	if got := sidekickPost(t, client(filepath.Join(dir, "other.crt"), filepath.Join(dir, "other.key")), c, url); got != http.StatusUnauthorized {
		t.Errorf("certificate of another subject: status %d, want 401", got)
	}
	if n := len(in.records(t)); n != 0 {
		t.Fatalf("%d records spooled from refused requests", n)
	}
	if got := sidekickPost(t, client(certFile, keyFile), c, url); got != http.StatusAccepted {
		t.Fatalf("kit certificate: status %d, want 202", got)
	}
	recs := in.records(t)
	if len(recs) != 1 || recs[0].Alert.Asset != "web-1" || recs[0].Alert.Source != "falco" {
		t.Fatalf("records %+v", recs)
	}
}

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kit test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate for cn (also its DNS name; 127.0.0.1 as IP)
// and its key to PEM files.
func (ca *testCA) issue(t *testing.T, cn, certFile, keyFile string, usage x509.ExtKeyUsage) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
