package evidence

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
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
	br := bufio.NewReader(f)
	for line := int64(1); ; line++ {
		raw, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) && len(raw) == 0 {
			return log, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("evidence: custody log of %s: %w", incident, err)
		}
		bad := func(format string, args ...any) error {
			return &CustodyError{Incident: incident, Line: line, Reason: fmt.Sprintf(format, args...)}
		}
		if !bytes.HasSuffix(raw, []byte("\n")) {
			return nil, bad("unterminated line")
		}
		var e Event
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, bad("not a custody event: %v", err)
		}
		canon, err := json.Marshal(e)
		if err != nil {
			return nil, bad("%v", err)
		}
		if !bytes.Equal(append(canon, '\n'), raw) {
			return nil, bad("line is not in canonical form (edited)")
		}
		if e.Seq != line {
			return nil, bad("seq %d, want %d", e.Seq, line)
		}
		if e.Incident != incident {
			return nil, bad("event belongs to incident %q", e.Incident)
		}
		if e.Prev != log.head {
			return nil, bad("prev %s, but line %d has hash %s", e.Prev, line-1, log.head)
		}
		want, err := e.computeHash()
		if err != nil {
			return nil, bad("%v", err)
		}
		if e.Hash != want {
			return nil, bad("hash %s, recomputed %s (edited)", e.Hash, want)
		}
		log.events = append(log.events, e)
		log.head = e.Hash
	}
}

// append chains e onto the log, writes it to path and syncs it.
func (log *custodyLog) append(path string, e Event) (Event, error) {
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
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return Event{}, fmt.Errorf("evidence: custody log of %s: %w", log.incident, err)
	}
	_, werr := f.Write(append(line, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return Event{}, fmt.Errorf("evidence: custody log of %s: append: %w", log.incident, err)
	}
	log.events = append(log.events, e)
	log.head = e.Hash
	return e, nil
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
