package codec

import (
	"context"
	"errors"
	"fmt"
	"net"

	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/internal/keys"
)

// Config is the codec's part of a binary's configuration.
type Config struct {
	KeyDir      string   `env:"IRU_CODEC_KEY_DIR" envDefault:"/var/lib/iru/codec-keys" doc:"Folder (0700) of the codec data keys, stored wrapped by the HSM key-encryption key."`
	ServerAddr  string   `env:"IRU_CODEC_SERVER_ADDR" envDefault:"127.0.0.1:8089" doc:"Listen address of the codec server used by the Temporal CLI and Web UI."`
	CORSOrigins []string `env:"IRU_CODEC_CORS_ORIGINS" envSeparator:"," doc:"Comma-separated Web UI origins (scheme://host[:port]) allowed to call the codec server."`
	Token       string   `env:"IRU_CODEC_TOKEN" secret:"true" doc:"Static bearer token for the codec server, until OIDC authentication replaces it (at least 16 characters)."`
}

// Validate implements config.Validator. It does not require Token: only
// the codec server needs it.
func (c *Config) Validate() error {
	var problems []error
	if c.KeyDir == "" {
		problems = append(problems, errors.New("IRU_CODEC_KEY_DIR: must not be empty"))
	}
	if _, _, err := net.SplitHostPort(c.ServerAddr); err != nil {
		problems = append(problems, fmt.Errorf("IRU_CODEC_SERVER_ADDR=%q: want host:port: %w", c.ServerAddr, err))
	}
	if c.Token != "" && len(c.Token) < MinStaticTokenLen {
		problems = append(problems, fmt.Errorf("IRU_CODEC_TOKEN: want at least %d characters (secret, not shown)", MinStaticTokenLen))
	}
	return errors.Join(problems...)
}

// Open opens the key ring of cfg.KeyDir, unwrapping its keys with wrapper.
func Open(ctx context.Context, cfg Config, wrapper KeyWrapper) (*KeyRing, error) {
	store, err := NewFileKeyStore(cfg.KeyDir)
	if err != nil {
		return nil, err
	}
	return OpenKeyRing(ctx, wrapper, store)
}

// Protection is an open payload key ring with the HSM session behind it.
type Protection struct {
	Ring *KeyRing
	Keys *keys.Manager
}

// DataConverter returns the encrypting data converter for Temporal clients.
func (p *Protection) DataConverter() converter.DataConverter { return NewDataConverter(p.Ring) }

// ObservedDataConverter is [Protection.DataConverter] reporting refused
// unencrypted payloads to refused.
func (p *Protection) ObservedDataConverter(refused func(Refusal)) converter.DataConverter {
	return NewObservedDataConverter(p.Ring, refused)
}

// Close closes the HSM session.
func (p *Protection) Close() error { return p.Keys.Close() }

// OpenProtection opens the HSM key manager and the codec key ring: what
// every process that creates a Temporal client needs so that payloads are
// encrypted before they leave it.
func OpenProtection(ctx context.Context, kcfg keys.Config, ccfg Config) (*Protection, error) {
	km, err := keys.Open(kcfg)
	if err != nil {
		return nil, err
	}
	ring, err := Open(ctx, ccfg, km)
	if err != nil {
		_ = km.Close()
		return nil, err
	}
	return &Protection{Ring: ring, Keys: km}, nil
}
