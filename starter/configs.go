package main

import (
	"context"
	"errors"
	"log/slog"

	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/temporalclient"
)

// ProtectionConfig is what a command needs to encrypt Temporal payloads.
type ProtectionConfig struct {
	Keys  keys.Config
	Codec codec.Config
}

func (p ProtectionConfig) validate() error { return errors.Join(p.Keys.Validate(), p.Codec.Validate()) }

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
	prot, err := codec.OpenProtection(ctx, p.Keys, p.Codec)
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
