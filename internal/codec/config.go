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
	KeyDir      string   `env:"IRU_CODEC_KEY_DIR" envDefault:"/var/lib/iru/codec-keys" doc:"Folder (0700) of the codec data keys, stored wrapped by the HSM key-encryption key (IRU_CODEC_KEY_STORE=folder)."`
	KeyStore    string   `env:"IRU_CODEC_KEY_STORE" envDefault:"folder" doc:"Where the codec data keys live: folder (IRU_CODEC_KEY_DIR, one host) or shared (the database of IRU_SHARED_STATE_DSN: every API server, worker and operator command on any host encrypts and decrypts with the same keys)."`
	ServerAddr  string   `env:"IRU_CODEC_SERVER_ADDR" envDefault:"127.0.0.1:8089" doc:"Listen address of the codec server used by the Temporal CLI and Web UI."`
	CORSOrigins []string `env:"IRU_CODEC_CORS_ORIGINS" envSeparator:"," doc:"Comma-separated Web UI origins (scheme://host[:port]) allowed to call the codec server."`
	Token       string   `env:"IRU_CODEC_TOKEN" secret:"true" doc:"Static bearer token for the codec server, until OIDC authentication replaces it (at least 16 characters)."`
}

// Validate implements config.Validator. It does not require Token: only
// the codec server needs it.
func (c *Config) Validate() error {
	var problems []error
	switch c.KeyStore {
	case KeyStoreFolder, "":
		if c.KeyDir == "" {
			problems = append(problems, errors.New("IRU_CODEC_KEY_DIR: must not be empty"))
		}
	case KeyStoreShared:
	default:
		problems = append(problems, fmt.Errorf("IRU_CODEC_KEY_STORE=%q: want %s or %s", c.KeyStore, KeyStoreFolder, KeyStoreShared))
	}
	if _, _, err := net.SplitHostPort(c.ServerAddr); err != nil {
		problems = append(problems, fmt.Errorf("IRU_CODEC_SERVER_ADDR=%q: want host:port: %w", c.ServerAddr, err))
	}
	if c.Token != "" && len(c.Token) < MinStaticTokenLen {
		problems = append(problems, fmt.Errorf("IRU_CODEC_TOKEN: want at least %d characters (secret, not shown)", MinStaticTokenLen))
	}
	return errors.Join(problems...)
}

// Where the data keys live ([Config.KeyStore]).
const (
	// KeyStoreFolder keeps them in IRU_CODEC_KEY_DIR ([FileKeyStore]).
	KeyStoreFolder = "folder"
	// KeyStoreShared keeps them in the shared state's database, whose
	// store the caller passes to [Open].
	KeyStoreShared = "shared"
)

// Open opens the key ring, unwrapping its keys with wrapper: in shared
// when cfg.KeyStore is [KeyStoreShared], else in cfg.KeyDir.
func Open(ctx context.Context, cfg Config, wrapper KeyWrapper, shared KeyStore) (*KeyRing, error) {
	if cfg.KeyStore == KeyStoreShared {
		if shared == nil {
			return nil, errors.New("codec: IRU_CODEC_KEY_STORE=shared needs the shared state (IRU_SHARED_STATE_DSN)")
		}
		return OpenKeyRing(ctx, wrapper, shared)
	}
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
	// closers run after the HSM session closes (see [Protection.CloseAlso]).
	closers []func()
}

// CloseAlso makes [Protection.Close] run f too (the shared key store's
// connection, say).
func (p *Protection) CloseAlso(f func()) { p.closers = append(p.closers, f) }

// DataConverter returns the encrypting data converter for Temporal clients.
func (p *Protection) DataConverter() converter.DataConverter { return NewDataConverter(p.Ring) }

// ObservedDataConverter is [Protection.DataConverter] reporting refused
// unencrypted payloads to refused.
func (p *Protection) ObservedDataConverter(refused func(Refusal)) converter.DataConverter {
	return NewObservedDataConverter(p.Ring, refused)
}

// Close closes the HSM session, then what [Protection.CloseAlso] added.
func (p *Protection) Close() error {
	err := p.Keys.Close()
	for _, f := range p.closers {
		f()
	}
	return err
}

// OpenProtection opens the HSM key manager and the codec key ring: what
// every process that creates a Temporal client needs so that payloads are
// encrypted before they leave it.
func OpenProtection(ctx context.Context, kcfg keys.Config, ccfg Config, shared KeyStore) (*Protection, error) {
	km, err := keys.Open(kcfg)
	if err != nil {
		return nil, err
	}
	ring, err := Open(ctx, ccfg, km, shared)
	if err != nil {
		_ = km.Close()
		return nil, err
	}
	return &Protection{Ring: ring, Keys: km}, nil
}
