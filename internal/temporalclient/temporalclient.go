// Package temporalclient creates the one Temporal client a process uses,
// from the typed configuration: address, namespace, TLS or mTLS, API key
// or a renewed client-credentials token, logging, metrics and the payload
// codec.
package temporalclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/tlsutil"
)

// Options are what a process adds to the configuration when it dials.
type Options struct {
	Logger        *slog.Logger
	Metrics       client.MetricsHandler   // nil: no SDK metrics
	DataConverter converter.DataConverter // nil: the SDK default
	Identity      string                  // "" : the SDK default (pid@host)
}

// ClientOptions builds the SDK client options for cfg.
func ClientOptions(cfg config.Temporal, opts Options) (client.Options, error) {
	co := client.Options{
		HostPort:      cfg.Address,
		Namespace:     cfg.Namespace,
		DataConverter: opts.DataConverter,
		Identity:      opts.Identity,
	}
	if opts.DataConverter != nil {
		// Failure messages and stack traces go through the same converter
		// (and so the codec): they name assets, users and API calls.
		co.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
			DataConverter: opts.DataConverter, EncodeCommonAttributes: true,
		})
	}
	if !cfg.Gzip {
		co.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	if opts.Logger != nil {
		co.Logger = log.NewStructuredLogger(opts.Logger)
	}
	if opts.Metrics != nil {
		co.MetricsHandler = opts.Metrics
	}
	if cfg.UseTLS() {
		tc, err := TLSConfig(cfg)
		if err != nil {
			return client.Options{}, err
		}
		co.ConnectionOptions.TLS = tc
	}
	if cfg.APIKey != "" {
		co.Credentials = client.NewAPIKeyStaticCredentials(cfg.APIKey)
	}
	if cfg.UseToken() {
		co.HeadersProvider = NewTokenHeaders(cfg)
	}
	return co, nil
}

// TLSConfig builds the TLS configuration for the frontend connection.
func TLSConfig(cfg config.Temporal) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLSServerName}
	if tc.ServerName == "" {
		host, _, err := net.SplitHostPort(cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("temporalclient: IRU_TEMPORAL_ADDRESS: %w", err)
		}
		tc.ServerName = host
	}
	if cfg.TLSCA != "" {
		pool, err := tlsutil.CertPool(cfg.TLSCA, false)
		if err != nil {
			return nil, fmt.Errorf("temporalclient: IRU_TEMPORAL_TLS_CA: %w", err)
		}
		tc.RootCAs = pool
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("temporalclient: IRU_TEMPORAL_TLS_CERT/KEY: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Dial connects to Temporal and checks that the frontend answers.
func Dial(ctx context.Context, cfg config.Temporal, opts Options) (client.Client, error) {
	co, err := ClientOptions(cfg, opts)
	if err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, co)
	if err != nil {
		return nil, fmt.Errorf("temporalclient: dial %s (namespace %s): %w", cfg.Address, cfg.Namespace, err)
	}
	return c, nil
}

// DialRetry dials until it succeeds or ctx ends, waiting between attempts.
// Processes started together with the dev server use it.
func DialRetry(ctx context.Context, cfg config.Temporal, opts Options, every time.Duration) (client.Client, error) {
	var last error
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := Dial(attempt, cfg, opts)
		cancel()
		if err == nil {
			return c, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), last)
		case <-time.After(every):
		}
	}
}

// Ready reports whether the frontend answers a health check within ctx.
func Ready(ctx context.Context, c client.Client) error {
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporalclient: health check: %w", err)
	}
	return nil
}
