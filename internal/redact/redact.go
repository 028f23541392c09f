// Package redact removes credentials from text that goes into errors and
// logs: URLs that carry a secret in their user information, query or path
// (a Slack incoming webhook URL is itself the credential), and the errors
// of HTTP clients, which quote the URL they failed to reach.
//
// The rule for a URL: the scheme, host and port stay (they say where a
// failure happened); user information goes, every query value goes, and a
// path segment that looks like a token (8 or more bytes with a digit, or
// 20 or more bytes, or a known webhook layout) is replaced by [Mask]. What
// is kept never contains a byte of a redacted part.
package redact

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Mask replaces what was redacted.
const Mask = "REDACTED"

// urlRE finds URLs in free text: a scheme, "://" and everything up to a
// space, quote or angle bracket.
var urlRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>\x60]+`)

// URL returns raw with its credentials redacted. A string that does not
// parse as an absolute URL is redacted whole after its scheme (it may still
// be a credential), except that one without "://" is returned unchanged.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		scheme, _, ok := strings.Cut(raw, "://")
		if !ok {
			return raw
		}
		return scheme + "://" + Mask
	}
	out := url.URL{Scheme: u.Scheme, Host: u.Host}
	if u.User != nil {
		out.User = url.User(Mask)
	}
	out.Path = redactPath(u.Host, u.EscapedPath())
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			out.RawQuery = Mask
		} else {
			keys := make([]string, 0, len(q))
			for k := range q {
				keys = append(keys, url.QueryEscape(safeKey(k))+"="+Mask)
			}
			slices.Sort(keys)
			out.RawQuery = strings.Join(keys, "&")
		}
	}
	if u.Fragment != "" {
		out.Fragment = Mask
	}
	s := out.String()
	// url.URL escapes the path again; undo it for readability.
	if p, err := url.PathUnescape(s); err == nil {
		return p
	}
	return s
}

// safeKey keeps a query parameter's name unless it looks like a token.
func safeKey(k string) string {
	if tokenLike(k) {
		return Mask
	}
	return k
}

// webhookHosts are hosts whose whole path is the credential.
var webhookHosts = []string{"hooks.slack.com", "discord.com", "discordapp.com", "outlook.office.com", "webhook.office.com", "chat.googleapis.com"}

func redactPath(host, escaped string) string {
	if escaped == "" || escaped == "/" {
		return escaped
	}
	h := strings.ToLower(host)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	for _, w := range webhookHosts {
		if h == w || strings.HasSuffix(h, "."+w) {
			return "/" + Mask
		}
	}
	segs := strings.Split(escaped, "/")
	for i, s := range segs {
		if un, err := url.PathUnescape(s); err == nil {
			s = un
		}
		if tokenLike(s) {
			segs[i] = Mask
		} else {
			segs[i] = s
		}
	}
	return strings.Join(segs, "/")
}

// tokenLike reports whether s looks like a secret rather than a word: 8 or
// more bytes containing a digit, or 20 or more bytes.
func tokenLike(s string) bool {
	if len(s) >= 20 {
		return true
	}
	if len(s) < 8 {
		return false
	}
	return strings.IndexFunc(s, unicode.IsDigit) >= 0
}

// String returns s with every URL in it redacted (see [URL]).
func String(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlRE.ReplaceAllStringFunc(s, func(m string) string {
		// A URL quoted by fmt's %q ends before the closing quote; one in
		// parentheses or followed by a colon keeps that punctuation.
		trail := ""
		for len(m) > 0 && strings.ContainsRune(").,;:]}", rune(m[len(m)-1])) &&
			(m[len(m)-1] != ']' || strings.Count(m, "[") < strings.Count(m, "]")) { // keep an IPv6 host's bracket
			trail = m[len(m)-1:] + trail
			m = m[:len(m)-1]
		}
		return URL(m) + trail
	})
}

// Error returns err with every URL in its message redacted; it unwraps to
// err, so errors.Is and errors.As still see the cause (a *url.Error in the
// chain has its URL field redacted in place, so the cause prints no secret
// either). Error(nil) is nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = URL(ue.URL)
	}
	msg := err.Error()
	clean := String(msg)
	if clean == msg {
		return err
	}
	return &redacted{msg: clean, err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// Attr redacts the URLs in a log attribute's value: strings, errors,
// string slices and anything printed with fmt. Use it as
// slog.HandlerOptions.ReplaceAttr.
func Attr(_ []string, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); strings.Contains(s, "://") {
			a.Value = slog.StringValue(String(s))
		}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			if s := x.Error(); strings.Contains(s, "://") {
				a.Value = slog.StringValue(String(s))
			}
		case []string:
			out := make([]string, len(x))
			for i, s := range x {
				out[i] = String(s)
			}
			a.Value = slog.AnyValue(out)
		case fmt.Stringer:
			if s := x.String(); strings.Contains(s, "://") {
				a.Value = slog.StringValue(String(s))
			}
		}
	}
	return a
}
