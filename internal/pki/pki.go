// Package pki is the certificate layout of the Temporal cluster mode: a CA,
// the server certificates of the frontend and of the services' internode
// traffic, and the client certificates of the worker, the API server and the
// operator (codec server, setup, the temporal CLI).
//
// [Ensure] creates a local CA and the certificates the first time (ECDSA
// P-256, private keys 0600 in a 0700 folder) and keeps them after; in
// production the same files are put in the folder by the organisation's PKI
// and Ensure only checks them. Nothing here reaches the network.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/iru-responder/responder/internal/fsutil"
)

// Names of the certificates in a [Layout]. The server names are the DNS
// names clients verify.
const (
	Frontend  = "frontend"
	Internode = "internode"
	Worker    = "worker"
	API       = "api"
	Operator  = "operator"

	FrontendServerName  = "frontend.temporal.iru"
	InternodeServerName = "internode.temporal.iru"
)

// Validity of what [Ensure] creates: the CA for a year, the leaves for the
// 90 days of the hardening guide's rotation. A leaf with less than a third
// of its life left is reissued by the next Ensure.
const (
	CAValidity   = 365 * 24 * time.Hour
	LeafValidity = 90 * 24 * time.Hour
)

// Pair is a certificate and its private key, as PEM files.
type Pair struct {
	Cert string
	Key  string
}

// Layout is the set of files in a folder.
type Layout struct {
	Dir string
}

// CA is the CA certificate file.
func (l Layout) CA() string { return filepath.Join(l.Dir, "ca.pem") }

// CAKey is the CA's private key file (only for a local CA).
func (l Layout) CAKey() string { return filepath.Join(l.Dir, "ca-key.pem") }

// Pair returns the files of the certificate name.
func (l Layout) Pair(name string) Pair {
	return Pair{Cert: filepath.Join(l.Dir, name+".pem"), Key: filepath.Join(l.Dir, name+"-key.pem")}
}

// leafSpec says what a certificate is for.
type leafSpec struct {
	name  string
	usage []x509.ExtKeyUsage
	dns   []string
	ips   []net.IP
}

func specs(hosts []string) []leafSpec {
	dns, ips := []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if h != "" {
			dns = append(dns, h)
		}
	}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return []leafSpec{
		{name: Frontend, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, dns: append([]string{FrontendServerName}, dns...), ips: ips},
		// The services present the internode certificate both as servers and
		// as clients of each other.
		{name: Internode, usage: both, dns: append([]string{InternodeServerName}, dns...), ips: ips},
		{name: Worker, usage: client, dns: []string{"worker.iru"}},
		{name: API, usage: client, dns: []string{"api.iru"}},
		{name: Operator, usage: client, dns: []string{"operator.iru"}},
	}
}

// Ensure makes sure dir holds a CA and every certificate of the layout,
// valid now and signed by that CA. Missing files are created with a local
// CA (created too if missing); a leaf near its end is reissued when the CA
// key is there. hosts are extra names or addresses of the server
// certificates (loopback is always included).
func Ensure(dir string, hosts []string, now time.Time) (Layout, error) {
	l := Layout{Dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return l, fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return l, fmt.Errorf("pki: %w", err)
	}
	ca, err := loadOrCreateCA(l, now)
	if err != nil {
		return l, err
	}
	for _, s := range specs(hosts) {
		p := l.Pair(s.name)
		cert, err := LoadPair(p)
		switch {
		case err == nil && fresh(cert.Leaf, now) && verifies(cert.Leaf, ca.Cert, s.usage):
			continue
		case err == nil && ca.Key == nil:
			return l, fmt.Errorf("pki: %s is expired, expiring or not signed by %s, and there is no CA key to reissue it", p.Cert, l.CA())
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return l, err
		case ca.Key == nil:
			return l, fmt.Errorf("pki: %s is missing and there is no CA key (%s) to issue it", p.Cert, l.CAKey())
		}
		if err := ca.issueTo(p, s, now); err != nil {
			return l, err
		}
	}
	return l, nil
}

func fresh(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return !now.Before(c.NotBefore) && c.NotAfter.Sub(now) > life/3
}

func verifies(c, ca *x509.Certificate, usage []x509.ExtKeyUsage) bool {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, u := range usage {
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}, CurrentTime: c.NotBefore.Add(time.Minute)}); err != nil {
			return false
		}
	}
	return true
}

// Authority is a CA that can issue certificates.
type Authority struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey // nil when only the certificate is known
	PEM  []byte
}

// NewAuthority creates a CA in memory (tests use one as "another CA").
func NewAuthority(name string, now time.Time) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"IRU Responder"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return &Authority{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// IssueClient issues a client certificate for commonName, valid from now
// for d, and writes it to p.
func (a *Authority) IssueClient(p Pair, commonName string, now time.Time, d time.Duration) error {
	return a.issue(p, leafSpec{name: commonName, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, now, d)
}

func (a *Authority) issueTo(p Pair, s leafSpec, now time.Time) error {
	return a.issue(p, s, now, LeafValidity)
}

func (a *Authority) issue(p Pair, s leafSpec, now time.Time, d time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: s.name, Organization: []string{"IRU Responder"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(d),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  s.usage,
		DNSNames:     s.dns,
		IPAddresses:  s.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, &key.PublicKey, a.Key)
	if err != nil {
		return fmt.Errorf("pki: issue %s: %w", s.name, err)
	}
	if err := writeKey(p.Key, key); err != nil {
		return err
	}
	return fsutil.WriteFile(p.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func loadOrCreateCA(l Layout, now time.Time) (*Authority, error) {
	certPEM, err := os.ReadFile(l.CA())
	if errors.Is(err, os.ErrNotExist) {
		if _, kerr := os.Stat(l.CAKey()); kerr == nil {
			return nil, fmt.Errorf("pki: %s exists without %s", l.CAKey(), l.CA())
		}
		a, err := NewAuthority("IRU Responder local Temporal CA", now)
		if err != nil {
			return nil, err
		}
		if err := writeKey(l.CAKey(), a.Key); err != nil {
			return nil, err
		}
		return a, fsutil.WriteFile(l.CA(), a.PEM, 0o644)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, fmt.Errorf("pki: %s: no PEM certificate", l.CA())
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", l.CA(), err)
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("pki: the CA %s expired on %s", l.CA(), cert.NotAfter.Format(time.DateOnly))
	}
	a := &Authority{Cert: cert, PEM: certPEM}
	keyPEM, err := os.ReadFile(l.CAKey())
	switch {
	case errors.Is(err, os.ErrNotExist):
		return a, nil // an external CA: only its certificate is here
	case err != nil:
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := checkMode(l.CAKey()); err != nil {
		return nil, err
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("pki: %s: no PEM key", l.CAKey())
	}
	k, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", l.CAKey(), err)
	}
	a.Key = k
	return a, nil
}

// LoadPair loads a certificate and key, checking that the key file is not
// readable by others.
func LoadPair(p Pair) (tls.Certificate, error) {
	if _, err := os.Stat(p.Cert); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	if err := checkMode(p.Key); err != nil {
		return tls.Certificate{}, err
	}
	c, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %s: %w", p.Cert, err)
	}
	return c, nil
}

func checkMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("pki: private key %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	return nil
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return fsutil.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}
