package keys

import (
	"errors"
	"fmt"
	"os"
)

// DefaultModule is the PKCS#11 module of SoftHSM2 on Debian, the token used
// in development, tests and CI.
const DefaultModule = "/usr/lib/softhsm/libsofthsm2.so"

// Config says which PKCS#11 token holds the platform's keys and how to log
// in to it. It is loaded with [config.Load] like the other settings.
//
// [config.Load]: github.com/iru-responder/responder/internal/config.Load
type Config struct {
	Module     string `env:"IRU_HSM_MODULE" envDefault:"/usr/lib/softhsm/libsofthsm2.so" doc:"Path of the PKCS#11 module (shared library) of the HSM; SoftHSM2 in development."`
	TokenLabel string `env:"IRU_HSM_TOKEN_LABEL" envDefault:"iru" doc:"Label of the PKCS#11 token that holds the key-encryption and signing keys."`
	PIN        string `env:"IRU_HSM_PIN" secret:"true" doc:"User PIN of the token (or IRU_HSM_PIN_FILE with the PIN in a file)."`
	// SoftHSMConf is SoftHSM2's own configuration file. SoftHSM2 reads it
	// from the process environment when the module loads; Open exports it
	// there when it is set here (for example from an env file).
	SoftHSMConf string `env:"SOFTHSM2_CONF" doc:"SoftHSM2 only: its configuration file (token folder); other HSMs ignore it."`
}

// Validate implements config.Validator. Errors name the variable and never
// contain the PIN.
func (c *Config) Validate() error {
	var problems []error
	if c.Module == "" {
		problems = append(problems, errors.New("IRU_HSM_MODULE: must not be empty"))
	} else if _, err := os.Stat(c.Module); err != nil {
		problems = append(problems, fmt.Errorf("IRU_HSM_MODULE=%s: PKCS#11 module not readable: %w", c.Module, err))
	}
	if c.TokenLabel == "" {
		problems = append(problems, errors.New("IRU_HSM_TOKEN_LABEL: must not be empty"))
	}
	if c.PIN == "" {
		problems = append(problems, errors.New("IRU_HSM_PIN: must be set (secret, not shown)"))
	}
	return errors.Join(problems...)
}
