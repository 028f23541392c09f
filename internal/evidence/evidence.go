// Package evidence is the evidence locker of IRU Responder: write-once,
// encrypted, content-addressed storage with a chain of custody.
//
// An object is addressed by the SHA-256 of its plaintext within an
// incident ([Ref], evidence://<incident>/sha256:<hex>), so workflows carry
// references, not content. Each object is encrypted at rest with AES-256-GCM
// under its own random data key, in segments of 256 KiB (see stream.go), so any
// size goes in and out in constant memory; the data key is stored only
// wrapped by a [KeyWrapper] (the HSM key manager in production).
//
// Every object has a data [Class] whose retention decides when it may be
// deleted: nothing can be overwritten, and nothing deleted before its
// retention ends. [Locker.Sweep] destroys expired objects by shredding the
// wrapped data key first (the ciphertext is then unrecoverable) and then
// removing the ciphertext.
//
// Each incident has a custody log (custody/<incident>.jsonl): hash-chained
// JSON lines recording who collected each object, from where and when, and
// every read with who and why. [Locker.Manifest] returns it and
// [Locker.Verify] re-hashes every object against it. The log's head hash
// ([Manifest.Head]) is meant to be recorded in the audit ledger, which is
// what detects a log cut short at its end.
//
// The blobs go to a [Backend]: a local folder ([FSBackend]), or an S3
// bucket with Object Lock ([S3Backend]), where the store itself keeps each
// blob under a legal hold while its incident is open and locked in
// compliance mode until its retention ends. The custody logs stay in the
// locker's folder.
//
// A Locker assumes it is the only process writing its folder.
package evidence

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// Sentinel errors callers branch on.
var (
	// ErrInvalid is returned for a malformed request or reference.
	ErrInvalid = errors.New("evidence: invalid request")
	// ErrNotFound is returned for an object or blob that does not exist.
	ErrNotFound = errors.New("evidence: not found")
	// ErrDeleted is returned for an object whose retention ended and that
	// was destroyed.
	ErrDeleted = errors.New("evidence: object deleted")
	// ErrExists is returned by a [Backend] asked to overwrite a blob.
	ErrExists = errors.New("evidence: blob exists")
	// ErrRetained is returned when deleting an object before its retention ends.
	ErrRetained = errors.New("evidence: object under retention")
	// ErrIntegrity is returned when an object, its wrapped key or the
	// custody log does not verify.
	ErrIntegrity = errors.New("evidence: integrity check failed")
)

// Class is the data class of an object; it decides the retention.
type Class string

// Data classes.
const (
	ClassPII         Class = "pii"         // personal data: user records, mailboxes, HR data
	ClassFinancial   Class = "financial"   // payment, invoicing, accounting data
	ClassOperational Class = "operational" // logs, process lists, images, network captures
)

// DefaultRetention is how long each class is kept when [Options] does not
// say otherwise:
//
//   - pii, 30 days: personal data may be kept only as long as the purpose
//     needs it (GDPR Art. 5(1)(e), storage limitation); an investigation
//     extracts what it needs within weeks, and longer holds are set
//     explicitly for a case.
//   - financial, 7 years: accounting and tax records must be kept 6 to 10
//     years in most jurisdictions (7 in the US under SOX/IRS practice, 6 to
//     10 in the EU member states); 7 years covers the common case.
//   - operational, 1 year: PCI DSS 10.5.1 asks for a year of audit log
//     history, and a year covers the look-back of most follow-up incidents.
var DefaultRetention = map[Class]time.Duration{
	ClassPII:         30 * 24 * time.Hour,
	ClassFinancial:   (7*365 + 2) * 24 * time.Hour,
	ClassOperational: 365 * 24 * time.Hour,
}

// Wrapped is a data key encrypted under a key-encryption key.
type Wrapped struct {
	KeyID      string `json:"key_id"`     // the key-encryption key
	Nonce      []byte `json:"nonce"`      // as the wrapper needs it
	Ciphertext []byte `json:"ciphertext"` // the wrapped data key
}

// KeyWrapper wraps and unwraps data keys. The HSM key manager implements
// it; Unwrap must fail for a modified Wrapped.
type KeyWrapper interface {
	Wrap(ctx context.Context, dek []byte) (Wrapped, error)
	Unwrap(ctx context.Context, w Wrapped) ([]byte, error)
}

// Ref references one object: evidence://<incident>/sha256:<hex>.
type Ref string

const refScheme = "evidence://"

var (
	incidentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	sumRE      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// NewRef returns the reference of the object with plaintext SHA-256 sum
// (lowercase hex) in incident.
func NewRef(incident, sum string) Ref {
	return Ref(refScheme + incident + "/sha256:" + sum)
}

// String returns the reference.
func (r Ref) String() string { return string(r) }

// Parse returns the incident and the hex SHA-256 of r.
func (r Ref) Parse() (incident, sum string, err error) {
	rest, ok := strings.CutPrefix(string(r), refScheme)
	if ok {
		incident, sum, ok = strings.Cut(rest, "/sha256:")
	}
	if !ok || !incidentRE.MatchString(incident) || !sumRE.MatchString(sum) {
		return "", "", fmt.Errorf("%w: reference %q: want evidence://<incident>/sha256:<64 hex>", ErrInvalid, string(r))
	}
	return incident, sum, nil
}

// PutRequest is an object to put into the locker.
type PutRequest struct {
	Incident    string
	Name        string    // file name as collected
	Class       Class     // decides retention
	MediaType   string    // MIME type
	CollectedBy string    // verified identity, "issuer:subject"
	Source      string    // where it was collected: system, host, path
	Body        io.Reader // the content; read once, to EOF
}

// Reader is who reads an object and why; both are recorded.
type Reader struct {
	Identity string // verified identity, "issuer:subject"
	Reason   string // why, e.g. "investigation step 3: malware triage"
}

// Meta describes a stored object, as its custody log recorded it.
type Meta struct {
	Ref         Ref       `json:"ref"`
	Incident    string    `json:"incident"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Name        string    `json:"name"`
	MediaType   string    `json:"media_type"`
	Class       Class     `json:"class"`
	CollectedBy string    `json:"collected_by"`
	Source      string    `json:"source"`
	CollectedAt time.Time `json:"collected_at"`
	RetainUntil time.Time `json:"retain_until"`
	KeyID       string    `json:"key_id"`
	Deleted     bool      `json:"deleted"`
	blob        string
}

func metaOf(e Event) Meta {
	return Meta{
		Ref: NewRef(e.Incident, e.SHA256), Incident: e.Incident, SHA256: e.SHA256, Size: e.Size,
		Name: e.Name, MediaType: e.MediaType, Class: e.Class, CollectedBy: e.Actor, Source: e.Source,
		CollectedAt: e.Time, RetainUntil: e.RetainUntil, KeyID: e.KeyID, blob: e.Blob,
	}
}

// Manifest is an incident's objects and full custody log.
type Manifest struct {
	Incident string  `json:"incident"`
	Objects  []Meta  `json:"objects"` // every object ever collected, in collection order
	Events   []Event `json:"events"`  // the custody log
	Head     string  `json:"head"`    // hash of the last event; record it in the audit ledger
	// Held is true while the object store keeps the incident's objects
	// under a legal hold (S3 backend, incident open): nothing of it can
	// be destroyed, retention ended or not.
	Held bool `json:"held,omitempty"`
}

// Options configure a [Locker].
type Options struct {
	// Backend stores the blobs; default an [FSBackend] in <dir>/blobs.
	Backend Backend
	// Retention overrides [DefaultRetention] per class.
	Retention map[Class]time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// SegmentSize is the plaintext size of an encrypted segment; default
	// 256 KiB (64 KiB before; objects keep the size they were written with).
	SegmentSize int
	// CustodyInStore keeps the custody logs in the blob store, one blob per
	// event, instead of files in the locker's folder: set it when hosts
	// share the store (S3), so that each sees every event.
	CustodyInStore bool
}

// Locker is the evidence locker. It is safe for concurrent use.
type Locker struct {
	dir       string
	wrapper   KeyWrapper
	backend   Backend
	retention map[Class]time.Duration
	now       func() time.Time
	segment   int

	custody custodyStore

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per incident, guards its custody log
}

// Open opens (creating when missing) the locker in dir.
func Open(dir string, wrapper KeyWrapper, opts Options) (*Locker, error) {
	if wrapper == nil {
		return nil, fmt.Errorf("%w: no key wrapper", ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Join(dir, "custody"), 0o750); err != nil {
		return nil, fmt.Errorf("evidence: open %s: %w", dir, err)
	}
	l := &Locker{
		dir:       dir,
		wrapper:   wrapper,
		backend:   opts.Backend,
		retention: map[Class]time.Duration{},
		now:       opts.Now,
		segment:   opts.SegmentSize,
		locks:     map[string]*sync.Mutex{},
	}
	if l.backend == nil {
		b, err := NewFSBackend(filepath.Join(dir, "blobs"))
		if err != nil {
			return nil, err
		}
		l.backend = b
	}
	l.custody = fileCustody{dir: dir}
	if opts.CustodyInStore {
		l.custody = &blobCustody{b: l.backend}
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.segment == 0 {
		l.segment = defaultSegment
	}
	if l.segment < 1 || l.segment > maxSegment {
		return nil, fmt.Errorf("%w: segment size %d: want 1 to %d", ErrInvalid, l.segment, maxSegment)
	}
	for c, d := range DefaultRetention {
		l.retention[c] = d
	}
	for c, d := range opts.Retention {
		if _, ok := DefaultRetention[c]; !ok || d <= 0 {
			return nil, fmt.Errorf("%w: retention %s=%s: unknown class or not positive", ErrInvalid, c, d)
		}
		l.retention[c] = d
	}
	return l, nil
}

// Retention returns the retention of class c, or false for an unknown class.
func (l *Locker) Retention(c Class) (time.Duration, bool) {
	d, ok := l.retention[c]
	return d, ok
}

func (l *Locker) lock(incident string) func() {
	l.mu.Lock()
	m, ok := l.locks[incident]
	if !ok {
		m = &sync.Mutex{}
		l.locks[incident] = m
	}
	l.mu.Unlock()
	m.Lock()
	// Other processes (the worker and the API server share the locker)
	// are kept out by an advisory lock on a per-incident lock file.
	f, err := os.OpenFile(filepath.Join(l.dir, "custody", incident+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		// Without the file no other process can hold it either; the
		// custody writes that follow report their own errors.
		return m.Unlock
	}
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != syscall.EINTR {
			break
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
		m.Unlock()
	}
}

func objectKey(incident, blob string) string { return incident + "/" + blob + ".obj" }
func wrapKey(incident, blob string) string   { return incident + "/" + blob + ".key" }

func checkIdentity(what, id string) string {
	iss, sub, ok := strings.Cut(id, ":")
	if !ok || iss == "" || sub == "" || len(id) > 256 || !utf8.ValidString(id) {
		return fmt.Sprintf("%s %q is not a verified identity of the form issuer:subject", what, id)
	}
	return ""
}

func checkText(what, v string, required bool) string {
	if (required && v == "") || len(v) > 1024 || !utf8.ValidString(v) || strings.ContainsAny(v, "\r\n") {
		return fmt.Sprintf("%s must be one line of valid UTF-8, at most 1024 bytes%s", what, map[bool]string{true: ", not empty"}[required])
	}
	return ""
}

func (r PutRequest) validate(retention map[Class]time.Duration) error {
	var p []string
	add := func(s string) {
		if s != "" {
			p = append(p, s)
		}
	}
	if !incidentRE.MatchString(r.Incident) {
		add(fmt.Sprintf("incident %q: want [A-Za-z0-9._-], at most 128, not starting with . or -", r.Incident))
	}
	if _, ok := retention[r.Class]; !ok {
		add(fmt.Sprintf("class %q: want pii, financial or operational", r.Class))
	}
	add(checkIdentity("collected by", r.CollectedBy))
	add(checkText("name", r.Name, true))
	add(checkText("source", r.Source, true))
	add(checkText("media type", r.MediaType, true))
	if r.Body == nil {
		add("no body")
	}
	if len(p) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p, "; "))
	}
	return nil
}

// countingHash hashes and counts what passes through it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// Put stores r.Body and records its collection. Content already stored for
// the incident is not stored again: Put returns the existing reference and
// records the repeated collection as a duplicate event. The body is
// streamed: memory use does not grow with its size.
func (l *Locker) Put(ctx context.Context, r PutRequest) (Ref, error) {
	if err := r.validate(l.retention); err != nil {
		return "", err
	}
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return "", fmt.Errorf("evidence: put: data key: %w", err)
	}
	defer clear(dek)
	wrapped, err := l.wrapper.Wrap(ctx, dek)
	if err != nil {
		return "", fmt.Errorf("evidence: put: wrap data key: %w", err)
	}
	blob := randomID()
	sum := &countingHash{h: sha256.New()}
	// The hash runs on a pipeline stage of its own, beside the reading.
	enc, err := newEncryptReader(dek, r.Body, l.segment, func(b []byte) { _, _ = sum.Write(b) })
	if err != nil {
		return "", fmt.Errorf("evidence: put: %w", err)
	}
	// The wrapped key is stored (and synced) while the object is written,
	// not after it; a failure of either stops the other, and both are
	// discarded.
	putCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	keyStored := make(chan error, 1)
	go func() {
		err := putJSON(putCtx, l.backend, wrapKey(r.Incident, blob), wrapped)
		if err != nil {
			cancel(err)
		}
		keyStored <- err
	}()
	_, err = l.backend.Put(putCtx, objectKey(r.Incident, blob), enc)
	_ = enc.Close() // no longer reads r.Body
	if err != nil {
		cancel(err)
	}
	keyErr := <-keyStored
	if err != nil || keyErr != nil {
		l.discard(ctx, r.Incident, blob)
		if err == nil || (keyErr != nil && !errors.Is(keyErr, context.Canceled)) {
			return "", fmt.Errorf("evidence: put %s: store wrapped key: %w", r.Name, keyErr)
		}
		return "", fmt.Errorf("evidence: put %s: store object: %w", r.Name, err)
	}
	hexSum := hex.EncodeToString(sum.h.Sum(nil))
	ref := NewRef(r.Incident, hexSum)

	unlock := l.lock(r.Incident)
	defer unlock()
	log, err := l.custody.read(ctx, r.Incident)
	if err != nil {
		l.discard(ctx, r.Incident, blob)
		return "", err
	}
	now := l.now().UTC()
	ev := Event{Time: now, SHA256: hexSum, Actor: r.CollectedBy, Source: r.Source, Name: r.Name, MediaType: r.MediaType}
	if first, deleted, ok := log.object(hexSum); ok && !deleted {
		// Identical content is already locked away: keep it, record who
		// collected it again and from where, and drop the new copy.
		l.discard(ctx, r.Incident, blob)
		ev.Kind = EventDuplicate
		if _, err := log.append(ctx, l.custody, ev); err != nil {
			return "", err
		}
		// A put retried after its store lock failed lands here: lock the
		// first copy now (setting the same retention again is harmless).
		if err := l.storeLock(ctx, log, metaOf(first)); err != nil {
			return "", fmt.Errorf("evidence: put %s: %w", r.Name, err)
		}
		return ref, nil
	}
	ev.Kind = EventCollected
	ev.Class = r.Class
	ev.Size = sum.n
	ev.RetainUntil = now.Add(l.retention[r.Class])
	if _, ok := l.backend.(Holder); ok {
		// The store keeps whole seconds: the custody log says the same.
		ev.RetainUntil = ceilSecond(ev.RetainUntil)
	}
	ev.Blob = blob
	ev.KeyID = wrapped.KeyID
	recorded, err := log.append(ctx, l.custody, ev)
	if err != nil {
		l.discard(ctx, r.Incident, blob)
		return "", err
	}
	if err := l.storeLock(ctx, log, metaOf(recorded)); err != nil {
		// Recorded but not locked yet (the legal hold still protects it):
		// the caller's retry finds the duplicate and locks it then.
		return "", fmt.Errorf("evidence: put %s: %w", r.Name, err)
	}
	return ref, nil
}

// storeLock has a [Holder] backend lock m's blobs in compliance mode until
// m's retention ends, and releases their legal hold when the incident's
// holds were released already (evidence put after the close). The wrapped
// key is retained exactly as long as the ciphertext, so that it can be
// shredded when the retention ends. The caller holds the incident lock.
func (l *Locker) storeLock(ctx context.Context, log *custodyLog, m Meta) error {
	h, ok := l.backend.(Holder)
	if !ok {
		return nil
	}
	for _, key := range []string{objectKey(m.Incident, m.blob), wrapKey(m.Incident, m.blob)} {
		if err := h.Retain(ctx, key, m.RetainUntil); err != nil {
			return fmt.Errorf("lock %s in the store: %w", key, err)
		}
		if log.released() {
			if err := h.SetLegalHold(ctx, key, false); err != nil {
				return fmt.Errorf("release the legal hold of %s: %w", key, err)
			}
		}
	}
	return nil
}

// discard removes the blobs of an object that was never recorded.
func (l *Locker) discard(ctx context.Context, incident, blob string) {
	if h, ok := l.backend.(Holder); ok {
		// Written under a legal hold, never retained: releasing the hold
		// makes them deletable.
		_ = h.SetLegalHold(ctx, wrapKey(incident, blob), false)
		_ = h.SetLegalHold(ctx, objectKey(incident, blob), false)
	}
	_ = l.shred(ctx, wrapKey(incident, blob))
	_ = l.backend.Delete(ctx, objectKey(incident, blob))
}

// held reports whether the store holds log's objects: a [Holder] backend
// keeps a legal hold on an incident's objects until [Locker.ReleaseHold].
func (l *Locker) held(log *custodyLog) bool {
	_, ok := l.backend.(Holder)
	return ok && !log.released()
}

// storeLocker is a backend that tells how its store holds a blob.
type storeLocker interface {
	Lock(ctx context.Context, key string) (StoreLock, error)
}

// StoreLock returns how the object store holds the ciphertext of ref (its
// retention mode and date, and its legal hold), as the store itself
// reports it. Backends that keep no lock (the folder) fail with ErrInvalid.
func (l *Locker) StoreLock(ctx context.Context, ref Ref) (StoreLock, error) {
	sl, ok := l.backend.(storeLocker)
	if !ok {
		return StoreLock{}, fmt.Errorf("%w: the %T backend keeps no store lock", ErrInvalid, l.backend)
	}
	incident, sum, err := ref.Parse()
	if err != nil {
		return StoreLock{}, err
	}
	unlock := l.lock(incident)
	log, err := l.custody.read(ctx, incident)
	unlock()
	if err != nil {
		return StoreLock{}, err
	}
	m, err := l.lookup(log, ref, sum)
	if err != nil {
		return StoreLock{}, err
	}
	return sl.Lock(ctx, objectKey(m.Incident, m.blob))
}

// HoldReleaser is the actor recorded when an incident's close releases its
// legal holds.
const HoldReleaser = "system:incident-close"

// ReleaseHold releases the legal hold on incident's objects (the incident
// closed) on behalf of who, and records the release in the custody log;
// evidence put later is not held. The objects stay locked in the store
// until their retention ends. Each object's lock is set again first, which
// repairs a put whose lock failed. It reports how many objects were
// released; with a backend that is not a [Holder] it does nothing.
// Releasing twice is harmless.
func (l *Locker) ReleaseHold(ctx context.Context, incident string, who Reader) (int, error) {
	h, ok := l.backend.(Holder)
	if !ok {
		return 0, nil
	}
	if !incidentRE.MatchString(incident) {
		return 0, fmt.Errorf("%w: incident %q", ErrInvalid, incident)
	}
	if p := checkIdentity("releaser", who.Identity) + checkText("reason", who.Reason, true); p != "" {
		return 0, fmt.Errorf("%w: %s", ErrInvalid, p)
	}
	unlock := l.lock(incident)
	defer unlock()
	log, err := l.custody.read(ctx, incident)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range manifestOf(log).Objects {
		if m.Deleted {
			continue
		}
		for _, key := range []string{objectKey(m.Incident, m.blob), wrapKey(m.Incident, m.blob)} {
			if err := h.Retain(ctx, key, m.RetainUntil); err != nil {
				return n, fmt.Errorf("evidence: release hold of %s: lock %s: %w", incident, key, err)
			}
			if err := h.SetLegalHold(ctx, key, false); err != nil {
				return n, fmt.Errorf("evidence: release hold of %s: %s: %w", incident, key, err)
			}
		}
		n++
	}
	if !log.released() {
		if _, err := log.append(ctx, l.custody, Event{
			Time: l.now().UTC(), Kind: EventHoldReleased, Actor: who.Identity, Reason: who.Reason,
		}); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (l *Locker) shred(ctx context.Context, key string) error {
	if s, ok := l.backend.(Shredder); ok {
		return s.Shred(ctx, key)
	}
	return l.backend.Delete(ctx, key)
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// lookup returns the live object ref points at.
func (l *Locker) lookup(log *custodyLog, ref Ref, sum string) (Meta, error) {
	e, deleted, ok := log.object(sum)
	switch {
	case !ok:
		return Meta{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
	case deleted:
		return Meta{}, fmt.Errorf("%w: %s", ErrDeleted, ref)
	}
	return metaOf(e), nil
}

// Get opens the object ref for reading by who, after recording the read
// in the custody log. The plaintext is hashed as it is read: at the end of
// the stream, Read returns an error wrapping ErrIntegrity instead of io.EOF
// when the content does not match the reference. The caller must Close the
// reader and must not act on content before reading it to the end without
// error.
func (l *Locker) Get(ctx context.Context, ref Ref, who Reader) (io.ReadCloser, Meta, error) {
	incident, sum, err := ref.Parse()
	if err != nil {
		return nil, Meta{}, err
	}
	if p := checkIdentity("reader", who.Identity) + checkText("reason", who.Reason, true); p != "" {
		return nil, Meta{}, fmt.Errorf("%w: %s", ErrInvalid, p)
	}
	unlock := l.lock(incident)
	log, err := l.custody.read(ctx, incident)
	var meta Meta
	if err == nil {
		meta, err = l.lookup(log, ref, sum)
	}
	if err == nil {
		_, err = log.append(ctx, l.custody, Event{
			Time: l.now(), Kind: EventRead, SHA256: sum, Actor: who.Identity, Reason: who.Reason,
		})
	}
	unlock()
	if err != nil {
		return nil, Meta{}, err
	}
	rc, err := l.open(ctx, meta)
	if err != nil {
		return nil, Meta{}, err
	}
	return rc, meta, nil
}

// unwrapKey returns the data key of m. With a [Versioned] backend it
// takes the newest version of the wrapped key that unwraps: a rewrap adds
// a version, and a version written by anyone else does not unwrap.
func (l *Locker) unwrapKey(ctx context.Context, m Meta) ([]byte, error) {
	key := wrapKey(m.Incident, m.blob)
	vb, ok := l.backend.(Versioned)
	if !ok {
		var w Wrapped
		if err := getJSON(ctx, l.backend, key, &w); err != nil {
			return nil, fmt.Errorf("%w: %s: wrapped key: %w", ErrIntegrity, m.Ref, err)
		}
		dek, err := l.wrapper.Unwrap(ctx, w)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: wrapped key does not unwrap: %w", ErrIntegrity, m.Ref, err)
		}
		return dek, nil
	}
	versions, err := vb.Versions(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: wrapped key: %w", ErrIntegrity, m.Ref, err)
	}
	var errs []error
	for _, v := range versions {
		w, err := readWrappedVersion(ctx, vb, key, v)
		if err == nil {
			var dek []byte
			if dek, err = l.wrapper.Unwrap(ctx, w); err == nil {
				return dek, nil
			}
		}
		errs = append(errs, fmt.Errorf("version %s: %w", v, err))
	}
	return nil, fmt.Errorf("%w: %s: no version of the wrapped key unwraps: %w", ErrIntegrity, m.Ref, errors.Join(errs...))
}

// readWrappedVersion reads one version of a wrapped key blob.
func readWrappedVersion(ctx context.Context, vb Versioned, key, version string) (Wrapped, error) {
	var w Wrapped
	rc, err := vb.GetVersion(ctx, key, version)
	if err != nil {
		return w, err
	}
	defer func() { _ = rc.Close() }()
	data, err := io.ReadAll(io.LimitReader(rc, maxJSONBlob+1))
	if err != nil {
		return w, err
	}
	if len(data) > maxJSONBlob {
		return w, fmt.Errorf("blob %s is larger than %d bytes", key, maxJSONBlob)
	}
	if err := decodeJSON(data, &w); err != nil {
		return w, fmt.Errorf("blob %s: %w", key, err)
	}
	return w, nil
}

// ErrWrappedKeyChanged is returned by [Locker.ReplaceWrappedKey] when the
// wrapped key is no longer the one the caller read (or its object was
// destroyed).
var ErrWrappedKeyChanged = errors.New("evidence: wrapped key changed")

// WrappedKeyRef is one object's wrapped data key, named
// <incident>/<blob>.key.
type WrappedKeyRef struct {
	Ref     string
	Wrapped Wrapped
}

// StaleWrappedKeys lists up to limit live objects whose current wrapped
// key (the newest version) is not under currentKEK, for a KEK rotation on
// a [Versioned] backend; other backends fail with ErrInvalid (their keys
// are rewritten in place, see activities/keyops).
func (l *Locker) StaleWrappedKeys(ctx context.Context, currentKEK string, limit int) ([]WrappedKeyRef, error) {
	vb, ok := l.backend.(Versioned)
	if !ok {
		return nil, fmt.Errorf("%w: the %T backend keeps no key versions", ErrInvalid, l.backend)
	}
	incidents, err := l.custody.incidents(ctx)
	if err != nil {
		return nil, err
	}
	var out []WrappedKeyRef
	for _, inc := range incidents {
		m, err := l.Manifest(ctx, inc)
		if err != nil {
			return out, err
		}
		for _, o := range m.Objects {
			if len(out) >= limit {
				return out, nil
			}
			if o.Deleted {
				continue
			}
			key := wrapKey(o.Incident, o.blob)
			w, _, err := currentWrapped(ctx, vb, key)
			if errors.Is(err, ErrNotFound) {
				continue // destroyed since the manifest was read
			}
			if err != nil {
				return out, err
			}
			if w.KeyID != currentKEK {
				out = append(out, WrappedKeyRef{Ref: key, Wrapped: w})
			}
		}
	}
	return out, nil
}

// currentWrapped returns the newest version of a wrapped key blob that
// parses, and its version.
func currentWrapped(ctx context.Context, vb Versioned, key string) (Wrapped, string, error) {
	versions, err := vb.Versions(ctx, key)
	if err != nil {
		return Wrapped{}, "", err
	}
	var errs []error
	for _, v := range versions {
		w, err := readWrappedVersion(ctx, vb, key, v)
		if err == nil {
			return w, v, nil
		}
		errs = append(errs, err)
	}
	return Wrapped{}, "", fmt.Errorf("%w: %s: no version parses: %w", ErrIntegrity, key, errors.Join(errs...))
}

// ReplaceWrappedKey writes updated as the wrapped key ref
// (<incident>/<blob>.key) when its current one is still old, as a new
// version on a [Versioned] backend (the old version stays locked until the
// object's retention ends, useless once the old KEK is retired). It fails
// with ErrWrappedKeyChanged when the key changed or its object was
// destroyed.
func (l *Locker) ReplaceWrappedKey(ctx context.Context, ref string, old, updated Wrapped) error {
	vb, ok := l.backend.(Versioned)
	if !ok {
		return fmt.Errorf("%w: the %T backend keeps no key versions", ErrInvalid, l.backend)
	}
	incident, file, ok := strings.Cut(ref, "/")
	blob, isKey := strings.CutSuffix(file, ".key")
	if !ok || !isKey || !incidentRE.MatchString(incident) || checkBlobKey(ref) != nil {
		return fmt.Errorf("%w: wrapped key reference %q", ErrInvalid, ref)
	}
	unlock := l.lock(incident)
	defer unlock()
	log, err := l.custody.read(ctx, incident)
	if err != nil {
		return err
	}
	live := false
	for _, o := range manifestOf(log).Objects {
		if o.blob == blob && !o.Deleted {
			live = true
		}
	}
	if !live {
		return fmt.Errorf("%w: %s: no live object", ErrWrappedKeyChanged, ref)
	}
	cur, _, err := currentWrapped(ctx, vb, ref)
	if err != nil {
		return err
	}
	if cur.KeyID != old.KeyID || !bytes.Equal(cur.Nonce, old.Nonce) || !bytes.Equal(cur.Ciphertext, old.Ciphertext) {
		return fmt.Errorf("%w: %s", ErrWrappedKeyChanged, ref)
	}
	body, err := json.Marshal(updated)
	if err != nil {
		return fmt.Errorf("evidence: encode wrapped key %s: %w", ref, err)
	}
	return vb.PutVersion(ctx, ref, bytes.NewReader(body))
}

// open decrypts and verifies the object m.
func (l *Locker) open(ctx context.Context, m Meta) (io.ReadCloser, error) {
	dek, err := l.unwrapKey(ctx, m)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	obj, err := l.backend.Get(ctx, objectKey(m.Incident, m.blob))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: object file: %w", ErrIntegrity, m.Ref, err)
	}
	dr, err := newDecryptReader(dek, obj)
	if err != nil {
		_ = obj.Close()
		return nil, fmt.Errorf("%w: %s: object file: %w", ErrIntegrity, m.Ref, err)
	}
	return &verifyingReader{r: dr, c: closerFunc(func() error {
		var err error
		dr.close(func() { err = obj.Close() })
		return err
	}), h: sha256.New(), meta: m}, nil
}

// closerFunc is an io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// verifyingReader hashes plaintext and checks it against the manifest at EOF.
type verifyingReader struct {
	r    *decryptReader
	c    io.Closer
	h    hash.Hash
	n    int64
	meta Meta
	err  error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err != nil {
		return n, v.end(err)
	}
	return n, nil
}

// WriteTo writes the plaintext to w a whole segment at a time (io.Copy
// uses it). Like Read, it fails with ErrIntegrity when the content does
// not match the manifest; a short read then has already been written.
func (v *verifyingReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for v.err == nil {
		b, err := v.r.chunk()
		if err != nil {
			if err = v.end(err); errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
		v.h.Write(b)
		v.n += int64(len(b))
		n, err := w.Write(b)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	if errors.Is(v.err, io.EOF) {
		return total, nil
	}
	return total, v.err
}

// end records the stream's end: io.EOF when everything matched the
// manifest, else the error to return from now on.
func (v *verifyingReader) end(err error) error {
	switch {
	case errors.Is(err, io.EOF):
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.meta.SHA256 || v.n != v.meta.Size {
			v.err = fmt.Errorf("%w: %s: object file: content has sha256 %s and %d bytes, manifest says %s and %d bytes",
				ErrIntegrity, v.meta.Ref, got, v.n, v.meta.SHA256, v.meta.Size)
		} else {
			v.err = io.EOF
		}
	case errors.Is(err, errSegment):
		v.err = fmt.Errorf("%w: %s: object file: %w", ErrIntegrity, v.meta.Ref, err)
	default:
		v.err = fmt.Errorf("evidence: read %s: %w", v.meta.Ref, err)
	}
	return v.err
}

func (v *verifyingReader) Close() error { return v.c.Close() }

// List returns the live (not deleted) objects of incident in collection order.
func (l *Locker) List(ctx context.Context, incident string) ([]Meta, error) {
	m, err := l.Manifest(ctx, incident)
	if err != nil {
		return nil, err
	}
	out := make([]Meta, 0, len(m.Objects))
	for _, o := range m.Objects {
		if !o.Deleted {
			out = append(out, o)
		}
	}
	return out, nil
}

// Manifest returns incident's objects and verified custody log.
func (l *Locker) Manifest(ctx context.Context, incident string) (Manifest, error) {
	if !incidentRE.MatchString(incident) {
		return Manifest{}, fmt.Errorf("%w: incident %q", ErrInvalid, incident)
	}
	unlock := l.lock(incident)
	log, err := l.custody.read(ctx, incident)
	unlock()
	if err != nil {
		return Manifest{}, err
	}
	m := manifestOf(log)
	m.Held = l.held(log)
	return m, nil
}

func manifestOf(log *custodyLog) Manifest {
	m := Manifest{Incident: log.incident, Events: log.events, Head: log.head}
	index := map[string]int{}
	for _, e := range log.events {
		switch e.Kind {
		case EventCollected:
			index[e.SHA256] = len(m.Objects)
			m.Objects = append(m.Objects, metaOf(e))
		case EventDeleted:
			if i, ok := index[e.SHA256]; ok {
				m.Objects[i].Deleted = true
			}
		}
	}
	return m
}

// Delete destroys the object ref on behalf of who, when its retention has
// ended; before that it fails with ErrRetained. It is what [Locker.Sweep]
// does for each expired object.
func (l *Locker) Delete(ctx context.Context, ref Ref, who Reader) error {
	incident, sum, err := ref.Parse()
	if err != nil {
		return err
	}
	if p := checkIdentity("deleter", who.Identity) + checkText("reason", who.Reason, true); p != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, p)
	}
	unlock := l.lock(incident)
	defer unlock()
	log, err := l.custody.read(ctx, incident)
	if err != nil {
		return err
	}
	m, err := l.lookup(log, ref, sum)
	if err != nil {
		return err
	}
	if l.held(log) {
		return fmt.Errorf("%w: %s is under the legal hold of its open incident", ErrRetained, ref)
	}
	return l.destroy(ctx, log, m, l.now().UTC(), who)
}

// destroy shreds the wrapped key, removes the ciphertext and records it.
// The caller holds the incident lock.
func (l *Locker) destroy(ctx context.Context, log *custodyLog, m Meta, now time.Time, who Reader) error {
	if now.Before(m.RetainUntil) {
		return fmt.Errorf("%w: %s (%s) is retained until %s", ErrRetained, m.Ref, m.Class, m.RetainUntil.Format(time.RFC3339))
	}
	if err := l.shred(ctx, wrapKey(m.Incident, m.blob)); err != nil {
		return fmt.Errorf("evidence: delete %s: wrapped key: %w", m.Ref, err)
	}
	if err := l.backend.Delete(ctx, objectKey(m.Incident, m.blob)); err != nil {
		return fmt.Errorf("evidence: delete %s: object: %w", m.Ref, err)
	}
	_, err := log.append(ctx, l.custody, Event{
		Time: now, Kind: EventDeleted, SHA256: m.SHA256, Actor: who.Identity, Reason: who.Reason,
	})
	return err
}

// SweepReport lists what a sweep destroyed.
type SweepReport struct {
	Deleted []Ref
	// Objects describe the destroyed objects, in the order of Deleted.
	Objects []Meta
}

// Expired lists the live objects whose retention ended at or before now,
// incident by incident in collection order: what [Locker.Sweep] would
// destroy at now. It changes nothing.
func (l *Locker) Expired(ctx context.Context, now time.Time) ([]Meta, error) {
	incidents, err := l.custody.incidents(ctx)
	if err != nil {
		return nil, err
	}
	var out []Meta
	for _, inc := range incidents {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		m, err := l.Manifest(ctx, inc)
		if err != nil {
			return out, err
		}
		for _, o := range m.Objects {
			if !m.Held && !o.Deleted && !now.Before(o.RetainUntil) {
				out = append(out, o)
			}
		}
	}
	return out, nil
}

// SweeperIdentity is the actor recorded for deletions by [Locker.Sweep].
const SweeperIdentity = "system:evidence-sweeper"

// Sweep destroys every object whose retention ended at or before now (see
// [Locker.Delete]) and records each deletion. It goes on past an incident
// it cannot process and returns those errors joined.
func (l *Locker) Sweep(ctx context.Context, now time.Time) (SweepReport, error) {
	return l.SweepEach(ctx, now, nil)
}

// SweepEach is [Locker.Sweep] calling after (when not nil) for each object
// right after it was destroyed, so the caller can record it elsewhere (the
// audit ledger). An error from after stops the sweep and is returned: no
// further object is destroyed unrecorded.
func (l *Locker) SweepEach(ctx context.Context, now time.Time, after func(Meta) error) (SweepReport, error) {
	var rep SweepReport
	incidents, err := l.custody.incidents(ctx)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, inc := range incidents {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		deleted, err := l.sweepIncident(ctx, inc, now.UTC(), after)
		for _, m := range deleted {
			rep.Deleted = append(rep.Deleted, m.Ref)
			rep.Objects = append(rep.Objects, m)
		}
		var stop *afterError
		if errors.As(err, &stop) {
			return rep, errors.Join(append(errs, err)...)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// afterError is an error of SweepEach's callback: it stops the sweep.
type afterError struct {
	ref Ref
	err error
}

func (e *afterError) Error() string {
	return fmt.Sprintf("evidence: sweep: after destroying %s: %v", e.ref, e.err)
}
func (e *afterError) Unwrap() error { return e.err }

func (l *Locker) sweepIncident(ctx context.Context, incident string, now time.Time, after func(Meta) error) ([]Meta, error) {
	unlock := l.lock(incident)
	defer unlock()
	log, err := l.custody.read(ctx, incident)
	if err != nil {
		return nil, err
	}
	if l.held(log) {
		// Open incident: its legal hold outlasts any retention.
		return nil, nil
	}
	var deleted []Meta
	for _, m := range manifestOf(log).Objects {
		if m.Deleted || now.Before(m.RetainUntil) {
			continue
		}
		why := Reader{Identity: SweeperIdentity, Reason: fmt.Sprintf("retention of class %s ended %s", m.Class, m.RetainUntil.Format(time.RFC3339))}
		if err := l.destroy(ctx, log, m, now, why); err != nil {
			return deleted, err
		}
		m.Deleted = true
		deleted = append(deleted, m)
		if after != nil {
			if err := after(m); err != nil {
				return deleted, &afterError{ref: m.Ref, err: err}
			}
		}
	}
	return deleted, nil
}

// Problem is one thing that does not verify.
type Problem struct {
	Ref    Ref    `json:"ref,omitempty"`  // the object, when the problem is one object's
	Line   int64  `json:"line,omitempty"` // the custody log line, when it is the log's
	Detail string `json:"detail"`
}

// Report is the result of [Locker.Verify].
type Report struct {
	Incident string    `json:"incident"`
	Events   int       `json:"events"`   // custody log lines verified
	Objects  int       `json:"objects"`  // live objects re-hashed
	Bytes    int64     `json:"bytes"`    // plaintext bytes re-hashed
	Head     string    `json:"head"`     // custody log head hash
	Problems []Problem `json:"problems"` // empty when everything verified
}

// Verify checks incident's custody log chain, then decrypts and re-hashes
// every live object against the manifest. When something does not verify
// it returns the report with the problems named and an error wrapping
// ErrIntegrity. Verification reads are not recorded as custody events.
func (l *Locker) Verify(ctx context.Context, incident string) (Report, error) {
	rep := Report{Incident: incident}
	m, err := l.Manifest(ctx, incident)
	var ce *CustodyError
	if errors.As(err, &ce) {
		rep.Problems = append(rep.Problems, Problem{Line: ce.Line, Detail: ce.Error()})
		return rep, fmt.Errorf("evidence: verify %s: %w", incident, err)
	}
	if err != nil {
		return rep, err
	}
	rep.Events, rep.Head = len(m.Events), m.Head
	for _, o := range m.Objects {
		if o.Deleted {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.Objects++
		n, err := l.rehash(ctx, o)
		rep.Bytes += n
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{Ref: o.Ref, Detail: err.Error()})
		}
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("evidence: verify %s: %d problem(s), first: %s: %w", incident, len(rep.Problems), rep.Problems[0].Detail, ErrIntegrity)
	}
	return rep, nil
}

func (l *Locker) rehash(ctx context.Context, m Meta) (int64, error) {
	rc, err := l.open(ctx, m)
	if err != nil {
		return 0, err
	}
	defer func() { _ = rc.Close() }()
	return io.Copy(io.Discard, ctxReader{ctx, rc})
}
