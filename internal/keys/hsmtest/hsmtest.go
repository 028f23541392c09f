// Package hsmtest gives tests a fresh SoftHSM2 token: its own token folder
// in a temporary directory, its own label and PINs. A missing SoftHSM2
// (Debian package softhsm2) fails the test; it never skips.
//
// SoftHSM2 reads SOFTHSM2_CONF when the module is first initialised in the
// process, and crypto11 finalises the module when its last context closes.
// So tests using this package must not run in parallel, and every
// [keys.Manager] must be closed before the test ends; [Manager] does that.
package hsmtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/iru-responder/responder/internal/keys"
)

// TokenLabel is the label of the tokens this package creates.
const TokenLabel = "iru-test"

// Config creates an initialised, empty SoftHSM2 token for this test, points
// SOFTHSM2_CONF at it for the test's duration, and returns the
// configuration that opens it.
func Config(tb testing.TB) keys.Config {
	tb.Helper()
	module := os.Getenv("IRU_HSM_MODULE")
	if module == "" {
		module = keys.DefaultModule
	}
	if _, err := os.Stat(module); err != nil {
		tb.Fatalf("hsmtest: SoftHSM2 PKCS#11 module missing (apt-get install -y softhsm2): %v", err)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		tb.Fatalf("hsmtest: softhsm2-util missing (apt-get install -y softhsm2): %v", err)
	}
	dir := tb.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		tb.Fatalf("hsmtest: %v", err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatalf("hsmtest: write %s: %v", conf, err)
	}
	tb.Setenv("SOFTHSM2_CONF", conf)
	pin, soPIN := randomPIN(tb), randomPIN(tb)
	cmd := exec.Command(util, "--init-token", "--free", "--label", TokenLabel, "--pin", pin, "--so-pin", soPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("hsmtest: softhsm2-util --init-token: %v\n%s", err, out)
	}
	return keys.Config{Module: module, TokenLabel: TokenLabel, PIN: pin}
}

// Manager opens a [keys.Manager] on a fresh token (see [Config]) and closes
// it when the test ends.
func Manager(tb testing.TB) (*keys.Manager, keys.Config) {
	tb.Helper()
	cfg := Config(tb)
	m, err := keys.Open(cfg)
	if err != nil {
		tb.Fatalf("hsmtest: open key manager: %v", err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("hsmtest: %v", err)
		}
	})
	return m, cfg
}

func randomPIN(tb testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("hsmtest: %v", err)
	}
	return hex.EncodeToString(b)
}
