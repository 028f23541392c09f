// Package secretsink stores secrets minted by the platform (rotated client
// secrets, API tokens) where operators can pick them up, and hands back
// only a reference. The first implementation writes one 0600 file per
// secret version in a 0700 folder.
package secretsink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/fsutil"
)

// File stores secrets as files under Dir.
type File struct {
	Dir string
}

// StoreSecret implements [activities.SecretSink]. The file name carries the
// secret's name and a short digest of its value, so storing the same
// secret again is idempotent and versions never overwrite each other.
func (f File) StoreSecret(_ context.Context, item activities.SecretItem) (string, error) {
	if item.Name == "" || strings.Contains(item.Name, "..") {
		return "", fmt.Errorf("secretsink: invalid secret name %q", item.Name)
	}
	if len(item.Value) == 0 {
		return "", errors.New("secretsink: empty secret")
	}
	sum := sha256.Sum256(item.Value)
	rel := filepath.Join(filepath.FromSlash(item.Name), hex.EncodeToString(sum[:4]))
	path := filepath.Join(f.Dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("secretsink: %w", err)
	}
	if err := fsutil.WriteFile(path, item.Value, 0o600); err != nil {
		return "", fmt.Errorf("secretsink: %w", err)
	}
	return "secret://" + filepath.ToSlash(rel), nil
}

// Read returns the secret a reference points at (operators and rotation
// follow-up steps use it).
func (f File) Read(ref string) ([]byte, error) {
	rel, ok := strings.CutPrefix(ref, "secret://")
	if !ok || strings.Contains(rel, "..") {
		return nil, fmt.Errorf("secretsink: not a secret reference: %q", ref)
	}
	b, err := os.ReadFile(filepath.Join(f.Dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, fmt.Errorf("secretsink: %w", err)
	}
	return b, nil
}
