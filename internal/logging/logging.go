// Package logging builds the structured (slog) logger of a binary.
package logging

import (
	"io"
	"log/slog"

	"github.com/iru-responder/responder/internal/config"
)

// New returns a logger writing to w in the configured format and level,
// tagged with the binary's name.
func New(w io.Writer, cfg config.Log, binary string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	var h slog.Handler
	if cfg.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("bin", binary)
}
