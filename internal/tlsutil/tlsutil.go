// Package tlsutil loads the certificate authorities that the platform's
// TLS clients and servers trust.
package tlsutil

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrNoCertificate is returned for a CA file without a PEM certificate.
var ErrNoCertificate = errors.New("no PEM certificate")

// CertPool returns the certificates of the PEM file path as a pool; with
// system set, they are added to the system's roots (or to an empty pool
// where the system has none).
func CertPool(path string, system bool) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	var pool *x509.CertPool
	if system {
		pool, _ = x509.SystemCertPool()
	}
	if pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: %w", path, ErrNoCertificate)
	}
	return pool, nil
}
