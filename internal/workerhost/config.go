package workerhost

import (
	"errors"

	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/keys"
)

// Config is the whole configuration of the worker binary.
type Config struct {
	config.Worker
	Keys  keys.Config
	Codec codec.Config
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	return errors.Join(c.Worker.Validate(), c.Keys.Validate(), c.Codec.Validate())
}
