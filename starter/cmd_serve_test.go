package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate signed by ca, as a tls.Certificate and PEM files.
func (ca testCA) issue(t *testing.T, cn string, server bool) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c, certPEM, keyPEM
}

// TestServerTLS checks the API server's TLS policy with real handshakes:
// TLS 1.3 only; a client certificate from the detectors' CA is verified and
// reaches the handler; none is also accepted (responders use tokens); one
// from another CA is refused.
func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, rogueCA := newTestCA(t, "server-ca"), newTestCA(t, "detector-ca"), newTestCA(t, "rogue-ca")
	_, certPEM, keyPEM := serverCA.issue(t, "iru-api", true)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := ServerTLS{Cert: write("cert.pem", certPEM), Key: write("key.pem", keyPEM), ClientCA: write("ca.pem", clientCA.pem)}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	tc, err := serverTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := "none"
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "%s %x", cn, r.TLS.Version)
	})}
	go func() { _ = srv.Serve(tls.NewListener(ln, tc)) }()
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	detector, _, _ := clientCA.issue(t, "falco", false)
	rogue, _, _ := rogueCA.issue(t, "falco", false)
	tests := []struct {
		name    string
		conf    *tls.Config
		want    string
		wantErr bool
	}{
		{"tls 1.3 with the detector certificate", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{detector}}, "falco 304", false},
		{"tls 1.3 without a certificate", &tls.Config{RootCAs: roots}, "none 304", false},
		{"tls 1.2 refused", &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12}, "", true},
		// Sent even though the server asks for certificates of its own CA
		// (a plain Certificates list would silently send none).
		{"certificate from another CA refused", &tls.Config{RootCAs: roots,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &rogue, nil }}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: tt.conf}, Timeout: 5 * time.Second}
			resp, err := c.Get("https://" + ln.Addr().String() + "/")
			if tt.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b [64]byte
			n, _ := resp.Body.Read(b[:])
			if got := string(b[:n]); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	for _, bad := range []ServerTLS{{Cert: "x"}, {ClientCA: "y"}} {
		if bad.validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
