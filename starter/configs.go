package main

import (
	"context"
	"errors"
	"log/slog"

	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/internal/temporalclient"
)

// ProtectionConfig is what a command needs to encrypt Temporal payloads:
// the HSM, the codec, and the shared state that holds the codec's keys when
// IRU_CODEC_KEY_STORE=shared.
type ProtectionConfig struct {
	Keys   keys.Config
	Codec  codec.Config
	Shared sharedstate.Config
}

func (p ProtectionConfig) validate() error {
	var both error
	if p.Codec.KeyStore == codec.KeyStoreShared && !p.Shared.Enabled() {
		both = errors.New("IRU_CODEC_KEY_STORE=shared: set IRU_SHARED_STATE_DSN (the database that holds the keys)")
	}
	return errors.Join(p.Keys.Validate(), p.Codec.Validate(), p.Shared.Validate(), both)
}

// openProtection opens the HSM and the codec key ring, in the shared
// state's database when p says so (closed with the protection).
func openProtection(ctx context.Context, p ProtectionConfig) (*codec.Protection, error) {
	if p.Codec.KeyStore != codec.KeyStoreShared {
		return codec.OpenProtection(ctx, p.Keys, p.Codec, nil)
	}
	st, err := sharedstate.Open(ctx, p.Shared, nil)
	if err != nil {
		return nil, err
	}
	prot, err := codec.OpenProtection(ctx, p.Keys, p.Codec, st.CodecKeys())
	if err != nil {
		st.Close()
		return nil, err
	}
	prot.CloseAlso(st.Close)
	return prot, nil
}

// clientConfig configures the client commands (selftest and the operator
// commands).
type clientConfig struct {
	config.Client
	Protection ProtectionConfig
}

// Validate implements config.Validator.
func (c *clientConfig) Validate() error {
	return errors.Join(c.Client.Validate(), c.Protection.validate())
}

// dial opens the payload protection and a Temporal client that uses it.
// The caller closes both.
func dial(ctx context.Context, t config.Temporal, p ProtectionConfig, log *slog.Logger) (client.Client, *codec.Protection, error) {
	prot, err := openProtection(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	c, err := temporalclient.Dial(ctx, t, temporalclient.Options{Logger: log, DataConverter: prot.DataConverter()})
	if err != nil {
		_ = prot.Close()
		return nil, nil, err
	}
	return c, prot, nil
}
