// Package softhsm prepares a SoftHSM2 token for local development and the
// lab: its own token folder and configuration under a state folder, a token
// labelled for the platform, and a random user PIN kept in a 0600 file.
// Production uses a real PKCS#11 HSM and does not use this package.
package softhsm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/iru-responder/responder/internal/keys"
)

// Token is a prepared development token.
type Token struct {
	// Conf is the SoftHSM2 configuration file; processes using the token
	// need SOFTHSM2_CONF set to it.
	Conf string
	// PINFile holds the user PIN (for IRU_HSM_PIN_FILE).
	PINFile string
	// Config opens the token.
	Config keys.Config
}

// Env returns the variables that point a process at the token.
func (t Token) Env() []string {
	return []string{
		"SOFTHSM2_CONF=" + t.Conf,
		"IRU_HSM_MODULE=" + t.Config.Module,
		"IRU_HSM_TOKEN_LABEL=" + t.Config.TokenLabel,
		"IRU_HSM_PIN_FILE=" + t.PINFile,
	}
}

// Ensure creates (once) and returns the development token under dir. It
// also sets SOFTHSM2_CONF in this process, since SoftHSM2 reads it when the
// module is loaded.
func Ensure(dir, label string) (Token, error) {
	module := os.Getenv("IRU_HSM_MODULE")
	if module == "" {
		module = keys.DefaultModule
	}
	if _, err := os.Stat(module); err != nil {
		return Token{}, fmt.Errorf("softhsm: PKCS#11 module %s missing (apt-get install softhsm2): %w", module, err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return Token{}, fmt.Errorf("softhsm: %w", err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return Token{}, fmt.Errorf("softhsm: %w", err)
	}
	pinFile := filepath.Join(dir, "pin")
	t := Token{Conf: conf, PINFile: pinFile}
	pinBytes, err := os.ReadFile(pinFile)
	switch {
	case err == nil:
		t.Config = keys.Config{Module: module, TokenLabel: label, PIN: strings.TrimSpace(string(pinBytes))}
	case errors.Is(err, os.ErrNotExist):
		pin, soPIN := random(), random()
		util, err := exec.LookPath("softhsm2-util")
		if err != nil {
			return Token{}, fmt.Errorf("softhsm: softhsm2-util missing (apt-get install softhsm2): %w", err)
		}
		cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", soPIN)
		cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
		if out, err := cmd.CombinedOutput(); err != nil {
			return Token{}, fmt.Errorf("softhsm: init token: %w: %s", err, out)
		}
		if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
			return Token{}, fmt.Errorf("softhsm: %w", err)
		}
		t.Config = keys.Config{Module: module, TokenLabel: label, PIN: pin}
	default:
		return Token{}, fmt.Errorf("softhsm: %w", err)
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return Token{}, fmt.Errorf("softhsm: %w", err)
	}
	return t, nil
}

func random() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
