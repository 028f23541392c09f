package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DeadLetterDir is the dead-letter folder inside a spool directory.
const DeadLetterDir = "dead-letters"

// DefaultDeadLetterMaxBytes bounds the dead-letter queue by default.
const DefaultDeadLetterMaxBytes = 64 << 20

// Dead-letter store errors.
var (
	// ErrDeadLetterFull means the dead-letter queue reached its bound: the
	// item stays in the spool (only its key waits) until room is made.
	ErrDeadLetterFull = errors.New("spool: dead-letter queue full")
	// ErrNoDeadLetter means no dead letter has the id.
	ErrNoDeadLetter = errors.New("spool: no such dead letter")
)

// DeadLetter is a spooled item that Temporal refused for good (an invalid
// argument, a payload over the server's limits, a record that cannot be
// decoded). It is kept whole, with why, so an operator can inspect it,
// replay it or drop it; it never blocks the items behind it.
type DeadLetter struct {
	// ID is the item's spool id ("seq.index"); it names the dead letter.
	ID string `json:"id"`
	// Key is the correlation key the item was for.
	Key string `json:"key"`
	// Owner is the detector that posted it.
	Owner string `json:"owner,omitempty"`
	// Reason is the refusal.
	Reason string `json:"reason"`
	// At is when it was dead-lettered.
	At time.Time `json:"at"`
	// Data is the spooled record, byte for byte.
	Data []byte `json:"data"`
}

// DeadLetters is the dead-letter queue: one file per dead letter in a
// folder beside the spool's segments, each written to a temporary file,
// fsynced, renamed into place, and the folder fsynced, so a dead letter is
// durable before its item is acknowledged in the spool. Safe for
// concurrent use in one process; the starter reads and removes files of a
// running server's queue (each file is whole or absent).
type DeadLetters struct {
	dir      string
	maxBytes int64
	noSync   bool

	mu sync.Mutex
}

// OpenDeadLetters opens (creating) the dead-letter queue of the spool in
// spoolDir, bounded to maxBytes (<= 0: DefaultDeadLetterMaxBytes).
func OpenDeadLetters(spoolDir string, maxBytes int64) (*DeadLetters, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultDeadLetterMaxBytes
	}
	dir := filepath.Join(spoolDir, DeadLetterDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create dead-letter folder: %w", err)
	}
	return &DeadLetters{dir: dir, maxBytes: maxBytes}, nil
}

// Dir is the queue's folder.
func (d *DeadLetters) Dir() string { return d.dir }

func (d *DeadLetters) path(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/\\") || strings.HasPrefix(id, ".") {
		return "", fmt.Errorf("%w: %q", ErrNoDeadLetter, id)
	}
	return filepath.Join(d.dir, id+".json"), nil
}

// Add stores dl durably. A dead letter with the same id is replaced (the
// same item refused again after a crash).
func (d *DeadLetters) Add(dl DeadLetter) error {
	p, err := d.path(dl.ID)
	if err != nil {
		return err
	}
	b, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("spool: encode dead letter: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	used, err := d.bytes()
	if err != nil {
		return err
	}
	if used+int64(len(b)) > d.maxBytes {
		return fmt.Errorf("%w: %d of %d bytes used", ErrDeadLetterFull, used, d.maxBytes)
	}
	tmp, err := os.CreateTemp(d.dir, ".dl-*.tmp")
	if err != nil {
		return fmt.Errorf("spool: write dead letter: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil && !d.noSync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("spool: write dead letter: %w", err)
	}
	return d.syncDir()
}

func (d *DeadLetters) syncDir() error {
	if d.noSync {
		return nil
	}
	f, err := os.Open(d.dir)
	if err != nil {
		return fmt.Errorf("spool: sync dead-letter folder: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool: sync dead-letter folder: %w", err)
	}
	return nil
}

// bytes is the size of the stored dead letters.
func (d *DeadLetters) bytes() (int64, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return 0, fmt.Errorf("spool: list dead letters: %w", err)
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".json") {
			n += fi.Size()
		}
	}
	return n, nil
}

// List returns the dead letters, oldest spool id first, without their data.
func (d *DeadLetters) List() ([]DeadLetter, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: list dead letters: %w", err)
	}
	var out []DeadLetter
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(id, ".") {
			continue
		}
		dl, err := d.Get(id)
		if errors.Is(err, ErrNoDeadLetter) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		dl.Data = nil
		out = append(out, dl)
	}
	slices.SortFunc(out, func(a, b DeadLetter) int { return compareIDs(a.ID, b.ID) })
	return out, nil
}

// Count is the number of dead letters.
func (d *DeadLetters) Count() int {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

// Get returns one dead letter with its data.
func (d *DeadLetters) Get(id string) (DeadLetter, error) {
	p, err := d.path(id)
	if err != nil {
		return DeadLetter{}, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return DeadLetter{}, fmt.Errorf("%w: %q", ErrNoDeadLetter, id)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("spool: read dead letter: %w", err)
	}
	var dl DeadLetter
	if err := json.Unmarshal(b, &dl); err != nil {
		return DeadLetter{}, fmt.Errorf("spool: dead letter %s: %w", id, err)
	}
	return dl, nil
}

// Drop removes a dead letter for good.
func (d *DeadLetters) Drop(id string) error {
	p, err := d.path(id)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Remove(p); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %q", ErrNoDeadLetter, id)
	} else if err != nil {
		return fmt.Errorf("spool: drop dead letter: %w", err)
	}
	return d.syncDir()
}

// compareIDs orders "seq.index" ids numerically (others after, by text).
func compareIDs(a, b string) int {
	pa, oka := parseID(a)
	pb, okb := parseID(b)
	switch {
	case oka && okb:
		if pa.Seq != pb.Seq {
			return cmpU(pa.Seq, pb.Seq)
		}
		return cmpU(uint64(pa.Index), uint64(pb.Index))
	case oka:
		return -1
	case okb:
		return 1
	}
	return strings.Compare(a, b)
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func parseID(s string) (ID, bool) {
	seq, idx, ok := strings.Cut(s, ".")
	if !ok {
		return ID{}, false
	}
	q, err1 := strconv.ParseUint(seq, 10, 64)
	i, err2 := strconv.ParseUint(idx, 10, 32)
	if err1 != nil || err2 != nil {
		return ID{}, false
	}
	return ID{Seq: q, Index: uint32(i)}, true
}
