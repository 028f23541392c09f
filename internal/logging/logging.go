// Package logging builds the structured (slog) logger of a binary.
package logging

import (
	"io"
	"log/slog"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/redact"
)

// New returns a logger writing to w in the configured format and level,
// tagged with the binary's name. URLs in every value are redacted (see
// package redact): a credential carried by a URL never reaches the log.
func New(w io.Writer, cfg config.Log, binary string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel(), ReplaceAttr: redact.Attr}
	var h slog.Handler
	if cfg.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("bin", binary)
}
