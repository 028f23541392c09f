// Package auth authenticates detectors posting alerts: API keys (stored as
// salted SHA-256 hashes, compared in constant time, several valid at once
// for rotation), HMAC-SHA256 request signatures with a replay window and a
// replay cache, and an optional mutual-TLS requirement. Every attempt is
// reported to an [Observer] (the audit ledger, failed-auth counters).
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Headers a detector sends.
const (
	// HeaderKey carries an API key (alternative to Authorization: Bearer).
	HeaderKey = "X-IRU-Key"
	// HeaderTimestamp is the Unix time (seconds) a signed request was made.
	HeaderTimestamp = "X-IRU-Timestamp"
	// HeaderSignature is "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
	HeaderSignature = "X-IRU-Signature"
)

// Method is how a request authenticated.
type Method string

// Methods.
const (
	MethodAPIKey Method = "api_key"
	MethodHMAC   Method = "hmac"
	MethodNone   Method = ""
)

// ErrUnauthorized is the one error a client learns about: no detail that
// helps an attacker. The reason is in the [Event].
var ErrUnauthorized = errors.New("unauthorized")

// APIKey is one API key of a detector, stored as HashKey(ID, key).
type APIKey struct {
	ID string `yaml:"id" json:"id"`
	// SHA256 is HashKey(ID, key), hex.
	SHA256    string    `yaml:"sha256" json:"sha256"`
	NotBefore time.Time `yaml:"not_before,omitempty" json:"not_before,omitzero"`
	NotAfter  time.Time `yaml:"not_after,omitempty" json:"not_after,omitzero"`
	// SecretRef, if set, references where the key itself was stored when
	// the platform minted it (a secret sink reference, never the key). The
	// rotation uses it to recognise a key it already minted.
	SecretRef string `yaml:"secret_ref,omitempty" json:"secret_ref,omitempty"`
}

// HMACSecret is one signing secret of a detector.
type HMACSecret struct {
	ID        string    `yaml:"id" json:"id"`
	Secret    string    `yaml:"secret" json:"secret"`
	NotBefore time.Time `yaml:"not_before" json:"not_before"`
	NotAfter  time.Time `yaml:"not_after" json:"not_after"`
}

// MTLS requires a verified client certificate.
type MTLS struct {
	// Require makes a verified client certificate mandatory.
	Require bool `yaml:"require" json:"require"`
	// Subjects, if set, lists the accepted subject common names and
	// DNS/URI/e-mail subject alternative names.
	Subjects []string `yaml:"subjects" json:"subjects"`
}

// Detector is one configured detector: its name (the path segment it posts
// to), its payload format and its credentials. A request must carry a valid
// API key or a valid signature (whichever is configured), and a client
// certificate when MTLS.Require is set.
type Detector struct {
	Name        string       `yaml:"name" json:"name"`
	Format      string       `yaml:"format" json:"format"`
	APIKeys     []APIKey     `yaml:"api_keys" json:"api_keys"`
	HMACSecrets []HMACSecret `yaml:"hmac_secrets" json:"hmac_secrets"`
	MTLS        MTLS         `yaml:"mtls" json:"mtls"`
	// Limits override the intake's default limits for this detector (a
	// zero field keeps the default).
	Limits Limits `yaml:"limits,omitempty" json:"limits,omitzero"`
	// Scope limits the assets and accounts its alerts may be about.
	Scope Scope `yaml:"scope,omitempty" json:"scope,omitzero"`
	// SpoolQuotaBytes bounds its undelivered alerts in the spool (0: the
	// intake's default quota).
	SpoolQuotaBytes int64 `yaml:"spool_quota_bytes,omitempty" json:"spool_quota_bytes,omitempty"`
}

// Limits are a detector's own intake limits; zero fields mean the
// intake's defaults.
type Limits struct {
	// Rate is requests per second (token bucket).
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
	// Burst is the bucket's size.
	Burst int `yaml:"burst,omitempty" json:"burst,omitempty"`
	// Concurrency bounds the detector's requests in flight.
	Concurrency int `yaml:"concurrency,omitempty" json:"concurrency,omitempty"`
	// MaxBodyBytes bounds a request body of the detector (at most the
	// intake's own limit).
	MaxBodyBytes int64 `yaml:"max_body_bytes,omitempty" json:"max_body_bytes,omitempty"`
}

// Identity is an authenticated detector.
type Identity struct {
	Detector string
	Format   string
	Method   Method
	KeyID    string
	// CertSubject is the client certificate's common name, with mTLS.
	CertSubject string
}

// String renders the identity for OpenedBy fields: "detector/key-id".
func (id Identity) String() string { return id.Detector + "/" + id.KeyID }

// Event is one authentication attempt.
type Event struct {
	Time       time.Time
	Detector   string
	RemoteAddr string
	Method     Method
	KeyID      string
	Success    bool
	// Reason says why a failure failed (for the ledger, never the client).
	Reason string
}

// Observer receives every authentication attempt; it must be quick and
// safe for concurrent use.
type Observer interface {
	ObserveAuth(Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(Event)

// ObserveAuth calls f.
func (f ObserverFunc) ObserveAuth(e Event) { f(e) }

// Options tune the authenticator.
type Options struct {
	// ReplayWindow is how far a signature timestamp may be from now
	// (default 5 minutes).
	ReplayWindow time.Duration
	// ReplayCacheMax bounds the remembered signatures (default 1,000,000);
	// when full, signed requests are refused until entries expire. It
	// applies to the in-process cache only (Replay nil).
	ReplayCacheMax int
	// Replay, if set, remembers accepted signatures instead of the
	// in-process cache: a store shared by every API server (PostgreSQL,
	// package sharedstate) refuses a request replayed to another replica.
	Replay ReplayGuard
	// Observer receives events (nil: none).
	Observer Observer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Authenticator checks requests against the configured detectors. It is
// safe for concurrent use, including [Authenticator.SetDetectors] while
// requests are being authenticated.
type Authenticator struct {
	// detectors is never modified once stored: SetDetectors builds a new
	// map and swaps the pointer, so a request sees one consistent set.
	detectors atomic.Pointer[map[string]Detector]
	opts      Options
	replay    ReplayGuard
}

// ErrReplayed is returned by a [ReplayGuard] for a signature it already
// holds, unexpired.
var ErrReplayed = errors.New("replayed signature")

// ErrReplayFull is returned by a [ReplayGuard] that has no room left.
var ErrReplayFull = errors.New("replay cache full")

// ReplayGuard remembers the signatures of accepted signed requests until
// they leave the replay window. Remember records detector's signature sig
// until expires and returns nil, or [ErrReplayed] when it already holds sig
// unexpired at now; any other error (its store is unreachable) refuses the
// request too: a replay guard fails closed. It must be safe for concurrent
// use.
type ReplayGuard interface {
	Remember(ctx context.Context, detector string, sig [sha256.Size]byte, expires, now time.Time) error
}

// New validates the detectors and returns an authenticator.
func New(detectors []Detector, opts Options) (*Authenticator, error) {
	if opts.ReplayWindow <= 0 {
		opts.ReplayWindow = 5 * time.Minute
	}
	if opts.ReplayCacheMax <= 0 {
		opts.ReplayCacheMax = 1_000_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := buildDetectors(detectors)
	if err != nil {
		return nil, err
	}
	a := &Authenticator{opts: opts, replay: opts.Replay}
	if a.replay == nil {
		a.replay = newReplayCache(opts.ReplayCacheMax)
	}
	a.detectors.Store(&m)
	return a, nil
}

// SetDetectors validates detectors and, if they are all valid, replaces the
// configured detectors with them at once: requests authenticated after it
// returns see only the new set, requests in flight finish with the old one.
// On an error nothing changes. The replay cache is kept.
func (a *Authenticator) SetDetectors(detectors []Detector) error {
	m, err := buildDetectors(detectors)
	if err != nil {
		return err
	}
	a.detectors.Store(&m)
	return nil
}

// buildDetectors validates detectors and indexes them by name. The
// returned map shares no slices with the caller's detectors.
func buildDetectors(detectors []Detector) (map[string]Detector, error) {
	m := make(map[string]Detector, len(detectors))
	for i, d := range detectors {
		if err := validate(d); err != nil {
			return nil, fmt.Errorf("auth: detector %d (%q): %w", i+1, d.Name, err)
		}
		if _, dup := m[d.Name]; dup {
			return nil, fmt.Errorf("auth: detector %q configured twice", d.Name)
		}
		m[d.Name] = cloneDetector(d)
	}
	return m, nil
}

// cloneDetector copies the slices of d, so that a caller changing its
// slices later cannot change the authenticator's detectors.
func cloneDetector(d Detector) Detector {
	d.APIKeys = slices.Clone(d.APIKeys)
	d.HMACSecrets = slices.Clone(d.HMACSecrets)
	d.MTLS.Subjects = slices.Clone(d.MTLS.Subjects)
	d.Scope.Assets, d.Scope.Accounts = slices.Clone(d.Scope.Assets), slices.Clone(d.Scope.Accounts)
	return d
}

// current returns the configured detectors; callers must not modify it.
func (a *Authenticator) current() map[string]Detector { return *a.detectors.Load() }

func validate(d Detector) error {
	if d.Name == "" || strings.ContainsAny(d.Name, "/ \t\r\n") {
		return errors.New("name must be non-empty without slashes or spaces")
	}
	if len(d.APIKeys) == 0 && len(d.HMACSecrets) == 0 {
		return errors.New("no api_keys and no hmac_secrets")
	}
	if err := d.Scope.Validate(); err != nil {
		return err
	}
	if d.SpoolQuotaBytes < 0 {
		return errors.New("spool_quota_bytes must not be negative")
	}
	for _, k := range d.APIKeys {
		if k.ID == "" {
			return errors.New("api key without id")
		}
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("api key %q: sha256 must be 64 hex digits", k.ID)
		}
	}
	if l := d.Limits; l.Rate < 0 || l.Burst < 0 || l.Concurrency < 0 || l.MaxBodyBytes < 0 {
		return errors.New("limits must not be negative")
	}
	for _, s := range d.HMACSecrets {
		if s.ID == "" {
			return errors.New("hmac secret without id")
		}
		if len(s.Secret) < 32 {
			return fmt.Errorf("hmac secret %q: at least 32 bytes", s.ID)
		}
	}
	return nil
}

// Detector returns (a copy of) the configured detector called name.
func (a *Authenticator) Detector(name string) (Detector, bool) {
	d, ok := a.current()[name]
	if !ok {
		return Detector{}, false
	}
	return cloneDetector(d), true
}

// Detectors returns the configured detector names.
func (a *Authenticator) Detectors() []string {
	m := a.current()
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Authenticate checks r (whose body is body) as a post from detector name.
// It returns an error matching [ErrUnauthorized] for every failure (see
// [Reason]) and reports each attempt.
func (a *Authenticator) Authenticate(r *http.Request, name string, body []byte) (Identity, error) {
	p, err := a.Precheck(r, name)
	if err != nil {
		return Identity{}, err
	}
	return p.Finish(body)
}

// Pending is a request that passed every check its headers allow; when
// NeedsBody, its signature still has to be checked against the body with
// [Pending.Finish].
type Pending struct {
	a   *Authenticator
	r   *http.Request
	d   Detector
	id  Identity
	ev  Event
	now time.Time
	// NeedsBody says the credential (an HMAC signature) covers the body.
	NeedsBody bool
}

// Detector is the (claimed, until Finish) detector of the request.
func (p *Pending) Detector() Detector { return p.d }

// Identity is the authenticated identity once Finish succeeded, or at once
// when the request carried an API key (NeedsBody false).
func (p *Pending) Identity() Identity { return p.id }

// Precheck does everything that needs no body, cheapest first: the
// detector exists, its client certificate, and either the whole API key
// check (then the request is authenticated and reported) or the signature
// header's form and its timestamp's freshness (then [Pending.Finish] checks
// the signature over the body). A request refused here is reported and
// never needs its body read.
func (a *Authenticator) Precheck(r *http.Request, name string) (*Pending, error) {
	now := a.opts.Now()
	p := &Pending{a: a, r: r, now: now, ev: Event{Time: now, Detector: name, RemoteAddr: r.RemoteAddr}}
	reason := p.headers(name)
	if reason != "" || !p.NeedsBody {
		return p, p.report(reason)
	}
	return p, nil
}

// Finish checks the signature over body (when NeedsBody) and reports the
// attempt; it returns the identity or an error matching [ErrUnauthorized].
func (p *Pending) Finish(body []byte) (Identity, error) {
	if !p.NeedsBody {
		return p.id, nil
	}
	kid, reason := p.a.checkSignature(p.r.Context(), p.d.Name, p.d.HMACSecrets, p.r.Header.Get(HeaderTimestamp), p.r.Header.Get(HeaderSignature), body, p.now)
	p.ev.KeyID = kid
	if reason == "" {
		p.id.Method, p.id.KeyID = MethodHMAC, kid
	}
	p.NeedsBody = false
	if err := p.report(reason); err != nil {
		return Identity{}, err
	}
	return p.id, nil
}

func (p *Pending) report(reason string) error {
	p.ev.Success = reason == ""
	p.ev.Reason = reason
	if p.a.opts.Observer != nil {
		p.a.opts.Observer.ObserveAuth(p.ev)
	}
	if reason != "" {
		return &failure{reason: reason}
	}
	return nil
}

// failure is an authentication failure: it matches [ErrUnauthorized] and
// carries the reason for the audit trail (never for the client).
type failure struct{ reason string }

func (f *failure) Error() string        { return ErrUnauthorized.Error() }
func (f *failure) Is(target error) bool { return target == ErrUnauthorized }

// Reason returns why err, an authentication failure, failed ("" if err is
// not one). It is for the audit trail; clients only learn "unauthorized".
func Reason(err error) string {
	var f *failure
	if errors.As(err, &f) {
		return f.reason
	}
	return ""
}

// headers runs the checks the headers allow and fills p; "" means passed.
func (p *Pending) headers(name string) string {
	d, ok := p.a.current()[name]
	if !ok {
		return "unknown detector"
	}
	p.d = d
	p.id = Identity{Detector: d.Name, Format: d.Format}
	if d.MTLS.Require {
		cn, reason := checkCert(p.r, d.MTLS.Subjects)
		if reason != "" {
			return reason
		}
		p.id.CertSubject = cn
	}
	key := presentedKey(p.r)
	sig := p.r.Header.Get(HeaderSignature)
	switch {
	case key != "" && len(d.APIKeys) > 0:
		p.ev.Method = MethodAPIKey
		kid, reason := checkKey(d.APIKeys, key, p.now)
		p.ev.KeyID = kid
		if reason != "" {
			return reason
		}
		p.id.Method, p.id.KeyID = MethodAPIKey, kid
		return ""
	case sig != "" && len(d.HMACSecrets) > 0:
		p.ev.Method = MethodHMAC
		if reason := p.a.checkSignatureHeaders(d.HMACSecrets, p.r.Header.Get(HeaderTimestamp), sig, p.now); reason != "" {
			return reason
		}
		p.NeedsBody = true
		return ""
	}
	return "no credentials of a configured kind"
}

func presentedKey(r *http.Request) string {
	if k := r.Header.Get(HeaderKey); k != "" {
		return k
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func active(notBefore, notAfter, now time.Time) bool {
	return (notBefore.IsZero() || !now.Before(notBefore)) && (notAfter.IsZero() || now.Before(notAfter))
}

// checkKey compares the key against every key of the detector (all of
// them, in constant time each, so timing tells nothing about which).
func checkKey(keys []APIKey, presented string, now time.Time) (keyID, reason string) {
	matched, expired := "", ""
	for _, k := range keys {
		want, _ := hex.DecodeString(k.SHA256) // validated in New
		got := hashKey(k.ID, presented)
		if subtle.ConstantTimeCompare(want, got[:]) == 1 {
			if active(k.NotBefore, k.NotAfter, now) {
				matched = k.ID
			} else {
				expired = k.ID
			}
		}
	}
	switch {
	case matched != "":
		return matched, ""
	case expired != "":
		return expired, "api key outside its validity period"
	}
	return "", "wrong api key"
}

// checkSignatureHeaders checks what a signed request's headers show
// without its body: a fresh timestamp, a well-formed signature and a
// secret active now.
func (a *Authenticator) checkSignatureHeaders(secrets []HMACSecret, ts, sig string, now time.Time) string {
	_, _, reason := a.parseSignature(ts, sig, now)
	if reason != "" {
		return reason
	}
	if !slices.ContainsFunc(secrets, func(s HMACSecret) bool { return active(s.NotBefore, s.NotAfter, now) }) {
		return "no hmac secret active"
	}
	return ""
}

// parseSignature parses the timestamp and signature headers and checks the
// timestamp is within the replay window.
func (a *Authenticator) parseSignature(ts, sig string, now time.Time) (when time.Time, mac []byte, reason string) {
	if ts == "" {
		return time.Time{}, nil, "signature without timestamp"
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, nil, "malformed timestamp"
	}
	when = time.Unix(sec, 0)
	if d := now.Sub(when); d > a.opts.ReplayWindow || d < -a.opts.ReplayWindow {
		return time.Time{}, nil, "timestamp outside the replay window"
	}
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	mac, err = hex.DecodeString(hexSig)
	if !ok || err != nil || len(mac) != sha256.Size {
		return time.Time{}, nil, "malformed signature"
	}
	return when, mac, ""
}

func (a *Authenticator) checkSignature(ctx context.Context, detector string, secrets []HMACSecret, ts, sig string, body []byte, now time.Time) (keyID, reason string) {
	when, got, reason := a.parseSignature(ts, sig, now)
	if reason != "" {
		return "", reason
	}
	matched := ""
	for _, s := range secrets {
		if !active(s.NotBefore, s.NotAfter, now) {
			continue
		}
		if hmac.Equal(got, Sign([]byte(s.Secret), ts, body)) {
			matched = s.ID
		}
	}
	if matched == "" {
		return "", "bad signature"
	}
	switch err := a.replay.Remember(ctx, detector, [sha256.Size]byte(got), when.Add(a.opts.ReplayWindow), now); {
	case err == nil:
		return matched, ""
	case errors.Is(err, ErrReplayed):
		return matched, "replayed signature"
	case errors.Is(err, ErrReplayFull):
		return matched, "replay cache full"
	default:
		return matched, "replay store unavailable"
	}
}

func checkCert(r *http.Request, subjects []string) (string, string) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		return "", "no verified client certificate"
	}
	leaf := r.TLS.PeerCertificates[0]
	if len(subjects) == 0 {
		return leaf.Subject.CommonName, ""
	}
	names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	names = append(names, leaf.EmailAddresses...)
	for _, u := range leaf.URIs {
		names = append(names, u.String())
	}
	for _, n := range names {
		if n != "" && slices.Contains(subjects, n) {
			return leaf.Subject.CommonName, ""
		}
	}
	return leaf.Subject.CommonName, "client certificate subject not allowed"
}

// Sign returns HMAC-SHA256(secret, timestamp + "." + body), as detectors
// compute it.
func Sign(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// SignatureHeader returns the X-IRU-Signature value for body signed at ts.
func SignatureHeader(secret []byte, ts time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(ts.Unix(), 10)
	return timestamp, "sha256=" + hex.EncodeToString(Sign(secret, timestamp, body))
}

func hashKey(id, key string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return [sha256.Size]byte(h.Sum(nil))
}

// HashKey returns the stored form of API key key with id: hex SHA-256 of
// id, a NUL byte and the key. The id salts the hash.
func HashKey(id, key string) string {
	h := hashKey(id, key)
	return hex.EncodeToString(h[:])
}

// GenerateKey returns a new random API key ("iru_" + 43 base64url chars).
func GenerateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: generate key: %w", err)
	}
	return "iru_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// replayCache remembers accepted signatures until their timestamp leaves
// the window.
type replayCache struct {
	mu        sync.Mutex
	max       int
	seen      map[[sha256.Size]byte]time.Time
	lastSweep time.Time
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: make(map[[sha256.Size]byte]time.Time)}
}

// Remember implements [ReplayGuard] in this process's memory. The
// detector is not part of the key: a signature covers a secret only its
// detector holds.
func (c *replayCache) Remember(_ context.Context, _ string, sig [sha256.Size]byte, expires, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[sig]; ok && now.Before(exp) {
		return ErrReplayed
	}
	if len(c.seen) >= c.max || now.Sub(c.lastSweep) > time.Minute {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
		c.lastSweep = now
		if len(c.seen) >= c.max {
			return ErrReplayFull
		}
	}
	c.seen[sig] = expires
	return nil
}
