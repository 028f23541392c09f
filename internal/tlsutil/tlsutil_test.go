package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCertPool(t *testing.T) {
	dir := t.TempDir()
	ca, caPEM := selfSigned(t)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("ca.pem", caPEM)
	noPEM := write("empty.pem", "not a certificate\n")
	tests := []struct {
		name    string
		path    string
		system  bool
		wantErr error // nil: success; errNotExist stands for a read error
	}{
		{"CA alone", good, false, nil},
		{"CA and system roots", good, true, nil},
		{"no PEM", noPEM, false, ErrNoCertificate},
		{"missing file", filepath.Join(dir, "missing.pem"), false, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := CertPool(tt.path, tt.system)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The pool verifies a certificate the CA signed (here: the CA itself).
			if _, err := ca.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
				t.Errorf("the pool does not trust the CA: %v", err)
			}
		})
	}
}

func selfSigned(t *testing.T) (*x509.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
