// Package spool is the intake's durable queue: alerts are appended to
// segment files on local disk and fsynced before the detector gets its 2xx,
// so no accepted alert is lost when the process or Temporal goes away.
//
// Design. One writer goroutine owns the active segment and commits in
// groups: every Append waiting while the previous fsync ran is written in
// one write and made durable by one fsync, so thousands of alerts per
// second cost tens of fsyncs, not thousands. Each Append is one framed
// record ([length][CRC-32C][payload]) holding all items of one request, so
// a request is recovered whole or not at all (a torn tail frame fails its
// checksum and is cut off at reopen). Appending to a segment was chosen
// over one file per batch: one fsync per group instead of a file create,
// an fsync of the file and one of the directory per batch.
//
// Delivery is acknowledged per item in a separate ack log (also framed and
// fsynced). Reopening replays the segments, drops acknowledged items and
// returns the rest in their original order. A segment whose items are all
// acknowledged is deleted; the ack log is rewritten without entries of
// deleted segments when it grows.
package spool

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"sync"
	"time"
)

// Errors Append returns.
var (
	// ErrFull means the spool reached its size limit; retry later.
	ErrFull = errors.New("spool: full")
	// ErrUnavailable means the disk refused a write; retry later.
	ErrUnavailable = errors.New("spool: unavailable")
	// ErrClosed means the spool was closed.
	ErrClosed = errors.New("spool: closed")
	// ErrQuota means the items' owner (a detector) has reached its share
	// of the spool; retry later. Other owners are unaffected.
	ErrQuota = errors.New("spool: owner over its quota")
)

// ID names one item: its record's sequence number and its index in it.
type ID struct {
	Seq   uint64
	Index uint32
}

// String renders the id as "seq.index".
func (id ID) String() string {
	return strconv.FormatUint(id.Seq, 10) + "." + strconv.FormatUint(uint64(id.Index), 10)
}

// Item is one spooled item: an opaque payload under a key (the forwarder
// keeps items of one key in order).
type Item struct {
	ID   ID
	Key  string
	Data []byte
	// Owner is who appended the item (the detector); all items of one
	// Append have the first item's owner. It is charged against Quota.
	Owner string
	// Decoded, if set by the appender, is Data already decoded: the spool
	// keeps it in memory beside Data until the item is acknowledged, so
	// the consumer need not decode Data again. It is never written: an
	// item read back from disk has none, and the consumer decodes Data.
	Decoded any
}

// Options tune the spool.
type Options struct {
	// MaxBytes bounds the segment bytes on disk (default 256 MiB); an
	// Append that would exceed it fails with ErrFull.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment starts (default 16 MiB).
	SegmentBytes int64
	// AckCompactBytes is the ack log size that triggers its rewrite
	// (default 4 MiB).
	AckCompactBytes int64
	// Quota, if set, bounds the bytes of unacknowledged records one owner
	// may hold (<= 0: no bound beyond MaxBytes); an Append over it fails
	// with ErrQuota.
	Quota func(owner string) int64
	// NoSync skips fsync (tests and benchmarks of the rest only; never in
	// production).
	NoSync bool
}

const (
	segPrefix = "seg-"
	segSuffix = ".log"
	ackName   = "acks.log"
	frameHead = 8
	// maxFrame bounds one frame when reading (a corrupt length).
	maxFrame = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Spool is a durable, ordered, acknowledged queue in a directory. It is
// safe for concurrent use.
type Spool struct {
	dir  string
	opts Options

	reqs    chan *appendReq
	stop    chan struct{}
	stopped chan struct{}

	appends sync.WaitGroup // Appends between their closed check and their result

	// ackMu serializes Acks (and Close's closing of the ack log); it is
	// taken before mu.
	ackMu sync.Mutex

	mu      sync.Mutex
	closed  bool
	commits int64
	segs    []*segment // oldest first; the last is active when active != nil
	active  *segment
	file    *os.File // the active segment's file
	bytes   int64    // total segment bytes
	nextSeq uint64
	byID    map[ID]*entry // every item of a live segment
	// keys indexes the unacknowledged items by key; firstKey..lastKey
	// lists those keys in the order of their oldest one (keys.go).
	keys              map[string]*keyQueue
	firstKey, lastKey *keyQueue
	// lastAppend is when items were last committed.
	lastAppend time.Time
	owned      map[string]int64 // bytes of records with unacknowledged items, per owner
	notify     chan struct{}
	ackFile    *os.File
	ackBytes   int64
	failed     error // set when the disk state is unknown

	// writeHook, if set, replaces the write to the active segment (tests).
	writeHook func(f *os.File, b []byte) error
	// ackSyncHook, if set, runs in Ack between its write and its fsync
	// (tests).
	ackSyncHook func()
}

type segment struct {
	first   uint64
	path    string
	size    int64
	live    int      // unacknowledged items
	entries []*entry // all items, acknowledged or not
}

type entry struct {
	Item
	seg   *segment
	rec   *record
	acked bool
	// at is when the item was committed (when the spool was opened, for
	// a recovered one).
	at time.Time
}

// record is one Append's frame: its owner is charged its size until every
// item is acknowledged.
type record struct {
	owner string
	size  int64
	live  int
}

type appendReq struct {
	items []Item
	done  chan appendRes
}

type appendRes struct {
	ids []ID
	err error
}

// Open opens (creating) the spool in dir and recovers its state.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 16 << 20
	}
	if opts.AckCompactBytes <= 0 {
		opts.AckCompactBytes = 4 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create dir: %w", err)
	}
	s := &Spool{
		dir: dir, opts: opts,
		reqs:    make(chan *appendReq, 4096),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		byID:    map[ID]*entry{},
		keys:    map[string]*keyQueue{},
		owned:   map[string]int64{},
		notify:  make(chan struct{}),
		nextSeq: 1,
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	go s.writer()
	return s, nil
}

// Append durably records items (one request's worth, all or nothing) and
// returns their ids once they are on disk.
func (s *Spool) Append(ctx context.Context, items []Item) ([]ID, error) {
	if len(items) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.appends.Add(1)
	s.mu.Unlock()
	defer s.appends.Done()
	req := &appendReq{items: items, done: make(chan appendRes, 1)}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		return nil, fmt.Errorf("spool: append: %w", ctx.Err())
	}
	// Once queued the request is committed or failed by the writer; wait
	// for it even if ctx ends, so the caller never answers while the
	// outcome is unknown.
	res := <-req.done
	return res.ids, res.err
}

// Pending returns up to max unacknowledged items in append order, leaving
// out items whose key skip returns true for (nil: none). It reads the
// items of every live segment in order; the forwarder picks keys instead
// (Keys, Leading).
func (s *Spool) Pending(max int, skip func(key string) bool) []Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Item
	for _, seg := range s.segs {
		for _, e := range seg.entries {
			if len(out) >= max {
				return out
			}
			if e.acked || (skip != nil && skip(e.Key)) {
				continue
			}
			out = append(out, e.Item)
		}
	}
	return out
}

// Ready returns a channel closed when items are next appended.
func (s *Spool) Ready() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notify
}

// Stats describes the spool.
type Stats struct {
	// Pending is the number of unacknowledged items.
	Pending int
	// Commits is the number of group commits (one write and fsync each)
	// since Open.
	Commits int64
	// Bytes is the size of the segments on disk.
	Bytes int64
	// Segments is the number of segment files.
	Segments int
}

// Stats returns the spool's current figures.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, seg := range s.segs {
		n += seg.live
	}
	return Stats{Pending: n, Commits: s.commits, Bytes: s.bytes, Segments: len(s.segs)}
}

// Close lets running appends finish, stops the writer and closes the
// files; later calls fail with ErrClosed. Everything acknowledged to a caller is already on disk.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.appends.Wait()
	close(s.stop)
	<-s.stopped
	s.ackMu.Lock() // a running Ack finishes with the ack log
	defer s.ackMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.file != nil {
		errs = append(errs, s.file.Close())
	}
	if s.ackFile != nil {
		errs = append(errs, s.ackFile.Close())
	}
	return errors.Join(errs...)
}
