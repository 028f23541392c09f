package pki

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func allPairs(l Layout) map[string]Pair {
	out := map[string]Pair{}
	for _, n := range []string{Frontend, Internode, Worker, API, Operator} {
		out[n] = l.Pair(n)
	}
	return out
}

func TestEnsureCreatesLayoutWithPrivateKeys(t *testing.T) {
	now := time.Now()
	dir := filepath.Join(t.TempDir(), "pki")
	l, err := Ensure(dir, []string{"temporal", "10.0.0.5"}, now)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	keys := []string{l.CAKey()}
	for _, p := range allPairs(l) {
		keys = append(keys, p.Key)
	}
	for _, k := range keys {
		fi, err := os.Stat(k)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", k, fi.Mode().Perm())
		}
	}
	caPEM, _ := os.ReadFile(l.CA())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cases := []struct {
		name   string
		usage  x509.ExtKeyUsage
		dns    string
		wantOK bool
	}{
		{Frontend, x509.ExtKeyUsageServerAuth, FrontendServerName, true},
		{Frontend, x509.ExtKeyUsageServerAuth, "temporal", true},
		{Frontend, x509.ExtKeyUsageClientAuth, "", false}, // a server certificate cannot be a client
		{Internode, x509.ExtKeyUsageServerAuth, InternodeServerName, true},
		{Internode, x509.ExtKeyUsageClientAuth, "", true},
		{Worker, x509.ExtKeyUsageClientAuth, "", true},
		{Worker, x509.ExtKeyUsageServerAuth, "", false}, // a client certificate cannot serve
		{API, x509.ExtKeyUsageClientAuth, "", true},
		{Operator, x509.ExtKeyUsageClientAuth, "", true},
	}
	for _, c := range cases {
		cert, err := LoadPair(l.Pair(c.name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.dns, KeyUsages: []x509.ExtKeyUsage{c.usage}})
		if (err == nil) != c.wantOK {
			t.Errorf("%s for %v (name %q): verify error %v, want ok=%v", c.name, c.usage, c.dns, err, c.wantOK)
		}
	}
	ip, _ := LoadPair(l.Pair(Frontend))
	if err := ip.Leaf.VerifyHostname("10.0.0.5"); err != nil {
		t.Errorf("frontend certificate does not name the extra address: %v", err)
	}
}

func TestEnsureKeepsValidFilesAndReissuesExpiring(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	l, err := Ensure(dir, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(l.Pair(Worker).Cert)
	caBefore, _ := os.ReadFile(l.CA())
	if _, err := Ensure(dir, nil, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	same, _ := os.ReadFile(l.Pair(Worker).Cert)
	if !bytes.Equal(before, same) {
		t.Fatal("a valid certificate was reissued")
	}
	// 70 days on, less than a third of the 90 days is left: reissued by the same CA.
	later := now.Add(70 * 24 * time.Hour)
	if _, err := Ensure(dir, nil, later); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(l.Pair(Worker).Cert)
	caAfter, _ := os.ReadFile(l.CA())
	if bytes.Equal(before, after) {
		t.Fatal("an expiring certificate was kept")
	}
	if !bytes.Equal(caBefore, caAfter) {
		t.Fatal("the CA changed")
	}
}

func TestEnsureRefusesUnsafeOrForeignFiles(t *testing.T) {
	now := time.Now()
	t.Run("world-readable key", func(t *testing.T) {
		dir := t.TempDir()
		l, err := Ensure(dir, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(l.Pair(API).Key, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Ensure(dir, nil, now); err == nil || !strings.Contains(err.Error(), "readable by others") {
			t.Fatalf("err = %v, want a refusal naming the mode", err)
		}
	})
	t.Run("leaf from another CA is replaced", func(t *testing.T) {
		dir := t.TempDir()
		l, err := Ensure(dir, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		other, err := NewAuthority("intruder", now)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.IssueClient(l.Pair(Worker), "worker", now, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := Ensure(dir, nil, now); err != nil {
			t.Fatal(err)
		}
		c, _ := LoadPair(l.Pair(Worker))
		if c.Leaf.Issuer.CommonName == "intruder" {
			t.Fatal("a certificate from another CA was kept")
		}
	})
	t.Run("external CA without key cannot fill a gap", func(t *testing.T) {
		dir := t.TempDir()
		l, err := Ensure(dir, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(l.CAKey()); err != nil {
			t.Fatal(err)
		}
		if _, err := Ensure(dir, nil, now); err != nil {
			t.Fatalf("complete external layout refused: %v", err)
		}
		if err := os.Remove(l.Pair(Operator).Cert); err != nil {
			t.Fatal(err)
		}
		if _, err := Ensure(dir, nil, now); err == nil || !strings.Contains(err.Error(), "no CA key") {
			t.Fatalf("err = %v, want missing CA key", err)
		}
	})
}
