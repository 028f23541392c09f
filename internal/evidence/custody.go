package evidence

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// EventKind is what a custody event records.
type EventKind string

// Custody event kinds.
const (
	EventCollected EventKind = "collected" // an object was put
	EventDuplicate EventKind = "duplicate" // identical content was put again; the stored object was kept
	EventRead      EventKind = "read"      // an object was opened by Get (recorded before any byte is returned)
	EventDeleted   EventKind = "deleted"   // an object's data key and ciphertext were destroyed
	// EventHoldReleased: the incident closed and the object store's legal
	// hold on its objects was released (S3 backend); retention still holds.
	EventHoldReleased EventKind = "hold_released"
)

// Event is one line of an incident's custody log. The log is hash-chained:
// Hash = hex(SHA-256("iru-evidence/custody/v1\n" || JSON of the event
// without its hash)), and Prev is the Hash of the line before (64 zeros on
// the first). Each line must be exactly the JSON encoding of its event, so
// any edited byte, removed, inserted or reordered line is detected.
type Event struct {
	Seq         int64     `json:"seq"`                   // 1, 2, 3… per incident
	Time        time.Time `json:"time"`                  // UTC
	Kind        EventKind `json:"kind"`                  // what happened
	Incident    string    `json:"incident"`              // incident id
	SHA256      string    `json:"sha256"`                // object, hex SHA-256 of its plaintext
	Actor       string    `json:"actor"`                 // who: collector, reader or deleter
	Reason      string    `json:"reason,omitempty"`      // why (reads and deletions)
	Source      string    `json:"source,omitempty"`      // collected from where (system, host, path)
	Name        string    `json:"name,omitempty"`        // collected: file name
	MediaType   string    `json:"media_type,omitempty"`  // collected: MIME type
	Class       Class     `json:"class,omitempty"`       // collected: data class
	Size        int64     `json:"size,omitempty"`        // collected: plaintext bytes
	RetainUntil time.Time `json:"retain_until,omitzero"` // collected: not deletable before
	Blob        string    `json:"blob,omitempty"`        // collected: backend blob id
	KeyID       string    `json:"key_id,omitempty"`      // collected: key that wraps the data key
	Prev        string    `json:"prev"`                  // hash of the previous event
	Hash        string    `json:"hash,omitempty"`        // hash of this event
}

const custodyDomain = "iru-evidence/custody/v1\n"

var zeroHash = hex.EncodeToString(make([]byte, sha256.Size))

// computeHash returns the hash of e (ignoring e.Hash).
func (e Event) computeHash() (string, error) {
	e.Hash = ""
	b, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(custodyDomain))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CustodyError names the custody log line that does not verify.
type CustodyError struct {
	Incident string
	Line     int64 // 1-based line (= expected seq)
	Reason   string
}

func (e *CustodyError) Error() string {
	return fmt.Sprintf("evidence: custody log of %s: line %d: %s", e.Incident, e.Line, e.Reason)
}

// Unwrap makes a CustodyError match ErrIntegrity.
func (e *CustodyError) Unwrap() error { return ErrIntegrity }

// custodyLog is a verified, parsed custody log.
type custodyLog struct {
	incident string
	events   []Event
	head     string
}

// readCustody reads and verifies the log at path. A missing file is an
// empty log.
func readCustody(path, incident string) (*custodyLog, error) {
	log := &custodyLog{incident: incident, head: zeroHash}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return log, nil
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: custody log of %s: %w", incident, err)
	}
	defer func() { _ = f.Close() }()
	if err := log.parse(f); err != nil {
		return nil, err
	}
	return log, nil
}

// parse verifies the lines of r as the events that follow the log's, and
// adds them.
func (log *custodyLog) parse(r io.Reader) error {
	incident := log.incident
	br := bufio.NewReader(r)
	for line := int64(len(log.events)) + 1; ; line++ {
		raw, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) && len(raw) == 0 {
			return nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("evidence: custody log of %s: %w", incident, err)
		}
		bad := func(format string, args ...any) error {
			return &CustodyError{Incident: incident, Line: line, Reason: fmt.Sprintf(format, args...)}
		}
		if !bytes.HasSuffix(raw, []byte("\n")) {
			return bad("unterminated line")
		}
		var e Event
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return bad("not a custody event: %v", err)
		}
		canon, err := json.Marshal(e)
		if err != nil {
			return bad("%v", err)
		}
		if !bytes.Equal(append(canon, '\n'), raw) {
			return bad("line is not in canonical form (edited)")
		}
		if e.Seq != line {
			return bad("seq %d, want %d", e.Seq, line)
		}
		if e.Incident != incident {
			return bad("event belongs to incident %q", e.Incident)
		}
		if e.Prev != log.head {
			return bad("prev %s, but line %d has hash %s", e.Prev, line-1, log.head)
		}
		want, err := e.computeHash()
		if err != nil {
			return bad("%v", err)
		}
		if e.Hash != want {
			return bad("hash %s, recomputed %s (edited)", e.Hash, want)
		}
		log.events = append(log.events, e)
		log.head = e.Hash
	}
}

// append chains e onto the log and writes it to store.
func (log *custodyLog) append(ctx context.Context, store custodyStore, e Event) (Event, error) {
	e.Seq = int64(len(log.events)) + 1
	e.Incident = log.incident
	e.Time = e.Time.UTC()
	e.Prev = log.head
	h, err := e.computeHash()
	if err != nil {
		return Event{}, fmt.Errorf("evidence: custody event: %w", err)
	}
	e.Hash = h
	line, err := json.Marshal(e)
	if err != nil {
		return Event{}, fmt.Errorf("evidence: custody event: %w", err)
	}
	if err := store.write(ctx, log, e, append(line, '\n')); err != nil {
		return Event{}, err
	}
	log.events = append(log.events, e)
	log.head = e.Hash
	return e, nil
}

// ErrCustodyConflict is returned when another process appended to an
// incident's custody log between this one's read and its write (hosts that
// share a blob store): nothing was written; the operation can be tried again.
var ErrCustodyConflict = errors.New("evidence: custody log changed by another process; try again")

// custodyStore keeps the incidents' custody logs. A process serializes its
// own operations on an incident (see [Locker.lock]); the store keeps
// another process from writing the same seq.
type custodyStore interface {
	// read returns the incident's verified log.
	read(ctx context.Context, incident string) (*custodyLog, error)
	// write stores line, the encoded e, as the next event of log.
	write(ctx context.Context, log *custodyLog, e Event, line []byte) error
	// incidents lists the incidents that have a log, sorted.
	incidents(ctx context.Context) ([]string, error)
}

// fileCustody keeps each log as a file of lines in dir, appended with
// fsync: the processes of one host, kept apart by the lock file. The
// first event of an incident creates its file, and the folder is synced
// too, so that the file's name is as durable as its first line.
type fileCustody struct {
	dir string
	// syncDir syncs a folder; nil means syncDir (tests observe it).
	syncDir func(dir string) error
}

func (f fileCustody) path(incident string) string {
	return filepath.Join(f.dir, "custody", incident+".jsonl")
}

func (f fileCustody) read(_ context.Context, incident string) (*custodyLog, error) {
	return readCustody(f.path(incident), incident)
}

func (f fileCustody) incidents(context.Context) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(f.dir, "custody"))
	if err != nil {
		return nil, fmt.Errorf("evidence: list incidents: %w", err)
	}
	var out []string
	for _, e := range entries {
		if inc, ok := strings.CutSuffix(e.Name(), ".jsonl"); ok && e.Type().IsRegular() && incidentRE.MatchString(inc) {
			out = append(out, inc)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (f fileCustody) write(_ context.Context, log *custodyLog, _ Event, line []byte) error {
	file, err := os.OpenFile(f.path(log.incident), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("evidence: custody log of %s: %w", log.incident, err)
	}
	_, werr := file.Write(line)
	serr := file.Sync()
	cerr := file.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("evidence: custody log of %s: append: %w", log.incident, err)
	}
	if len(log.events) == 0 { // this write may have created the file
		sync := f.syncDir
		if sync == nil {
			sync = syncDir
		}
		if err := sync(filepath.Dir(f.path(log.incident))); err != nil {
			return fmt.Errorf("evidence: custody log of %s: sync folder: %w", log.incident, err)
		}
	}
	return nil
}

// blobCustody keeps each event as its own blob (custody/<incident>/<seq>)
// in the locker's blob store, so that hosts sharing the store (S3) share
// the logs. An event's blob is written with the store's never-overwrite
// put: of two processes appending at once, one gets [ErrCustodyConflict].
// The verified events are cached per incident; a read fetches only the
// events written since.
type blobCustody struct {
	b     Backend
	mu    sync.Mutex
	cache map[string]*custodyLog
}

func custodyKey(incident string, seq int64) string {
	return fmt.Sprintf("custody/%s/%012d.event", incident, seq)
}

func (c *blobCustody) read(ctx context.Context, incident string) (*custodyLog, error) {
	c.mu.Lock()
	log := c.cache[incident]
	c.mu.Unlock()
	if log == nil {
		log = &custodyLog{incident: incident, head: zeroHash}
	} else {
		log = log.clone()
	}
	for {
		rc, err := c.b.Get(ctx, custodyKey(incident, int64(len(log.events))+1))
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("evidence: custody log of %s: %w", incident, err)
		}
		perr := log.parse(rc)
		_ = rc.Close()
		if perr != nil {
			return nil, perr
		}
	}
	c.keep(log)
	return log, nil
}

func (c *blobCustody) incidents(ctx context.Context) ([]string, error) {
	l, ok := c.b.(Lister)
	if !ok {
		return nil, fmt.Errorf("%w: the blob store cannot list the custody logs", ErrInvalid)
	}
	names, err := l.Children(ctx, "custody/")
	if err != nil {
		return nil, fmt.Errorf("evidence: list incidents: %w", err)
	}
	var out []string
	for _, n := range names {
		if incidentRE.MatchString(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (c *blobCustody) write(ctx context.Context, log *custodyLog, e Event, line []byte) error {
	_, err := c.b.Put(ctx, custodyKey(log.incident, e.Seq), bytes.NewReader(line))
	if errors.Is(err, ErrExists) {
		c.mu.Lock()
		delete(c.cache, log.incident)
		c.mu.Unlock()
		return fmt.Errorf("%w (incident %s, event %d)", ErrCustodyConflict, log.incident, e.Seq)
	}
	if err != nil {
		return fmt.Errorf("evidence: custody log of %s: append: %w", log.incident, err)
	}
	next := log.clone()
	next.events = append(next.events, e)
	next.head = e.Hash
	c.keep(next)
	return nil
}

// keep caches log as the incident's verified events.
func (c *blobCustody) keep(log *custodyLog) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil {
		c.cache = map[string]*custodyLog{}
	}
	if old := c.cache[log.incident]; old == nil || len(old.events) <= len(log.events) {
		c.cache[log.incident] = log.clone()
	}
}

// clone copies the log (its events are values).
func (log *custodyLog) clone() *custodyLog {
	return &custodyLog{incident: log.incident, events: slices.Clone(log.events), head: log.head}
}

// released reports whether the log records the release of the incident's
// legal holds.
func (log *custodyLog) released() bool {
	for _, e := range log.events {
		if e.Kind == EventHoldReleased {
			return true
		}
	}
	return false
}

// object returns the latest collected event for sum and whether it has
// been deleted since.
func (log *custodyLog) object(sum string) (collected Event, deleted bool, ok bool) {
	for _, e := range log.events {
		if e.SHA256 != sum {
			continue
		}
		switch e.Kind {
		case EventCollected:
			collected, deleted, ok = e, false, true
		case EventDeleted:
			deleted = true
		}
	}
	return collected, deleted, ok
}
