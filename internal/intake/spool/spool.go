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
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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

	mu       sync.Mutex
	closed   bool
	commits  int64
	ackedQ   int        // acknowledged entries still in queue
	segs     []*segment // oldest first; the last is active when active != nil
	active   *segment
	file     *os.File // the active segment's file
	bytes    int64    // total segment bytes
	nextSeq  uint64
	queue    []*entry // pending items in order; acked ones removed lazily
	head     int
	byID     map[ID]*entry    // every item of a live segment
	owned    map[string]int64 // bytes of records with unacknowledged items, per owner
	notify   chan struct{}
	ackFile  *os.File
	ackBytes int64
	failed   error // set when the disk state is unknown

	// writeHook, if set, replaces the write to the active segment (tests).
	writeHook func(f *os.File, b []byte) error
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

func (s *Spool) recover() error {
	names, err := filepath.Glob(filepath.Join(s.dir, segPrefix+"*"+segSuffix))
	if err != nil {
		return fmt.Errorf("spool: list segments: %w", err)
	}
	for _, p := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), segPrefix), segSuffix), 10, 64)
		if err != nil {
			return fmt.Errorf("spool: segment name %s: %w", p, err)
		}
		s.segs = append(s.segs, &segment{first: first, path: p})
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return cmp.Compare(a.first, b.first) })
	for i, seg := range s.segs {
		last := i == len(s.segs)-1
		if err := s.readSegment(seg, last); err != nil {
			return err
		}
		s.bytes += seg.size
		s.nextSeq = max(s.nextSeq, seg.first)
	}
	acks, err := s.readAcks()
	if err != nil {
		return err
	}
	for _, id := range acks {
		if e, ok := s.byID[id]; ok && !e.acked {
			s.markAcked(e)
			s.ackedQ++
		}
	}
	s.compactQueue()
	// Drop fully acknowledged segments (none is active yet).
	if err := s.dropDone(); err != nil {
		return err
	}
	return s.rewriteAcks()
}

func (s *Spool) readSegment(seg *segment, last bool) error {
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("spool: open segment: %w", err)
	}
	defer f.Close()
	var off int64
	for {
		payload, n, err := readFrame(f)
		if err == io.EOF {
			break
		}
		if err != nil {
			if !last {
				return fmt.Errorf("spool: segment %s corrupt at byte %d: %w", seg.path, off, err)
			}
			// A torn write at the end of the newest segment: the request
			// was never acknowledged to its sender. Cut it off.
			if err := f.Truncate(off); err != nil {
				return fmt.Errorf("spool: truncate torn tail of %s: %w", seg.path, err)
			}
			if err := f.Sync(); err != nil {
				return fmt.Errorf("spool: sync %s: %w", seg.path, err)
			}
			break
		}
		seq, items, err := decodeRecord(payload)
		if err != nil {
			return fmt.Errorf("spool: segment %s record at byte %d: %w", seg.path, off, err)
		}
		rec := s.charge(items[0].Owner, n, len(items))
		for i, it := range items {
			e := &entry{Item: Item{ID: ID{Seq: seq, Index: uint32(i)}, Key: it.Key, Data: it.Data, Owner: it.Owner}, seg: seg, rec: rec}
			s.queue = append(s.queue, e)
			s.byID[e.ID] = e
			seg.entries = append(seg.entries, e)
		}
		seg.live += len(items)
		s.nextSeq = max(s.nextSeq, seq+1)
		off += n
	}
	seg.size = off
	return nil
}

func (s *Spool) readAcks() ([]ID, error) {
	p := filepath.Join(s.dir, ackName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: open ack log: %w", err)
	}
	defer f.Close()
	var ids []ID
	var off int64
	for {
		payload, n, err := readFrame(f)
		if err == io.EOF {
			break
		}
		if err != nil || len(payload)%12 != 0 {
			// Torn tail: those acks were never confirmed; the items are
			// delivered again (at least once).
			if err := f.Truncate(off); err != nil {
				return nil, fmt.Errorf("spool: truncate ack log: %w", err)
			}
			break
		}
		for b := payload; len(b) >= 12; b = b[12:] {
			ids = append(ids, ID{Seq: binary.LittleEndian.Uint64(b), Index: binary.LittleEndian.Uint32(b[8:])})
		}
		off += n
	}
	return ids, nil
}

// readFrame reads one frame; io.EOF at a clean end, another error for a
// short or corrupt frame.
func readFrame(r io.Reader) (payload []byte, n int64, err error) {
	var head [frameHead]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		if err == io.EOF {
			return nil, 0, io.EOF
		}
		return nil, 0, fmt.Errorf("short frame header: %w", err)
	}
	size := binary.LittleEndian.Uint32(head[:4])
	if size > maxFrame {
		return nil, 0, fmt.Errorf("frame length %d too large", size)
	}
	payload = make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, 0, fmt.Errorf("short frame: %w", err)
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(head[4:]) {
		return nil, 0, errors.New("frame checksum mismatch")
	}
	return payload, int64(frameHead) + int64(size), nil
}

func appendFrame(buf, payload []byte) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(payload)))
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(payload, castagnoli))
	return append(buf, payload...)
}

// encodeRecord writes seq, the item count, each item's key and data, and
// then the owner (of the first item) when there is one: records written
// before owners existed end after the items and decode with no owner.
func encodeRecord(buf []byte, seq uint64, items []Item) []byte {
	buf = binary.LittleEndian.AppendUint64(buf, seq)
	buf = binary.AppendUvarint(buf, uint64(len(items)))
	for _, it := range items {
		buf = binary.AppendUvarint(buf, uint64(len(it.Key)))
		buf = append(buf, it.Key...)
		buf = binary.AppendUvarint(buf, uint64(len(it.Data)))
		buf = append(buf, it.Data...)
	}
	if len(items) > 0 && items[0].Owner != "" {
		buf = binary.AppendUvarint(buf, uint64(len(items[0].Owner)))
		buf = append(buf, items[0].Owner...)
	}
	return buf
}

func decodeRecord(b []byte) (uint64, []Item, error) {
	if len(b) < 8 {
		return 0, nil, errors.New("short record")
	}
	seq := binary.LittleEndian.Uint64(b)
	b = b[8:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return 0, nil, errors.New("bad item count")
	}
	b = b[k:]
	items := make([]Item, 0, n)
	field := func() ([]byte, error) {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errors.New("bad field length")
		}
		v := b[k : k+int(l)]
		b = b[k+int(l):]
		return v, nil
	}
	for range n {
		key, err := field()
		if err != nil {
			return 0, nil, err
		}
		data, err := field()
		if err != nil {
			return 0, nil, err
		}
		items = append(items, Item{Key: string(key), Data: slices.Clone(data)})
	}
	if len(items) == 0 {
		return 0, nil, errors.New("record without items")
	}
	if len(b) != 0 {
		owner, err := field()
		if err != nil {
			return 0, nil, fmt.Errorf("owner: %w", err)
		}
		if len(b) != 0 {
			return 0, nil, errors.New("trailing bytes in record")
		}
		for i := range items {
			items[i].Owner = string(owner)
		}
	}
	return seq, items, nil
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

// writer commits queued appends in groups.
func (s *Spool) writer() {
	defer close(s.stopped)
	var batch []*appendReq
	var buf []byte
	for {
		select {
		case req := <-s.reqs:
			batch = append(batch[:0], req)
		case <-s.stop:
			return
		}
	drain:
		for len(batch) < 4096 {
			select {
			case req := <-s.reqs:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		buf = s.commit(batch, buf[:0])
	}
}

type planned struct {
	req        *appendReq
	seq        uint64
	start, end int
}

func (s *Spool) commit(batch []*appendReq, buf []byte) []byte {
	fail := func(reqs []*appendReq, err error) {
		for _, r := range reqs {
			r.done <- appendRes{err: fmt.Errorf("%w: %v", ErrUnavailable, err)}
		}
	}
	// Plan under the lock: pick the segment, number the records, check
	// the size limit.
	s.mu.Lock()
	if s.failed != nil {
		err := s.failed
		s.mu.Unlock()
		fail(batch, err)
		return buf
	}
	// A fully delivered active segment is given up when the spool is
	// short of room, so its bytes are freed.
	var need int64
	for _, r := range batch {
		need += 32
		for _, it := range r.items {
			need += int64(len(it.Key)+len(it.Data)) + 20
		}
	}
	idle := s.active != nil && s.active.live == 0 && s.active.size > 0 && s.bytes+need > s.opts.MaxBytes
	if s.active == nil || s.active.size >= s.opts.SegmentBytes || idle {
		if err := s.rotate(); err != nil {
			s.mu.Unlock()
			fail(batch, err)
			return buf
		}
	}
	var plan []planned
	var payload []byte
	planOwned := map[string]int64{}
	for _, r := range batch {
		payload = encodeRecord(payload[:0], s.nextSeq, r.items)
		size := int64(frameHead + len(payload))
		if s.bytes+int64(len(buf))+size > s.opts.MaxBytes {
			r.done <- appendRes{err: ErrFull}
			continue
		}
		owner := r.items[0].Owner
		if q := s.quota(owner); q > 0 && s.owned[owner]+planOwned[owner]+size > q {
			r.done <- appendRes{err: fmt.Errorf("%w: %q holds %d of its %d bytes", ErrQuota, owner, s.owned[owner]+planOwned[owner], q)}
			continue
		}
		planOwned[owner] += size
		start := len(buf)
		buf = appendFrame(buf, payload)
		plan = append(plan, planned{req: r, seq: s.nextSeq, start: start, end: len(buf)})
		s.nextSeq++
	}
	seg, file := s.active, s.file
	s.mu.Unlock()
	if len(plan) == 0 {
		return buf
	}

	// Write and sync without the lock: appends keep queueing (the next
	// group) and the forwarder keeps reading and acknowledging. Only this
	// goroutine writes the active segment.
	err := s.write(file, buf)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if ferr := s.cutBack(file, seg.size); ferr != nil {
			s.failed = fmt.Errorf("%v; %v", err, ferr)
		}
		reqs := make([]*appendReq, len(plan))
		for i, p := range plan {
			reqs[i] = p.req
		}
		fail(reqs, err)
		return buf
	}
	s.commits++
	seg.size += int64(len(buf))
	s.bytes += int64(len(buf))
	for _, p := range plan {
		ids := make([]ID, len(p.req.items))
		owner := p.req.items[0].Owner
		rec := s.charge(owner, int64(p.end-p.start), len(p.req.items))
		for i, it := range p.req.items {
			id := ID{Seq: p.seq, Index: uint32(i)}
			ids[i] = id
			e := &entry{Item: Item{ID: id, Key: it.Key, Data: it.Data, Owner: owner}, seg: seg, rec: rec}
			s.queue = append(s.queue, e)
			s.byID[id] = e
			seg.entries = append(seg.entries, e)
		}
		seg.live += len(ids)
		p.req.done <- appendRes{ids: ids}
	}
	close(s.notify)
	s.notify = make(chan struct{})
	return buf
}

// write appends b to the active segment file and syncs it.
func (s *Spool) write(f *os.File, b []byte) error {
	var err error
	if s.writeHook != nil {
		err = s.writeHook(f, b)
	} else {
		_, err = f.Write(b)
	}
	if err == nil && !s.opts.NoSync {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("write segment: %w", err)
	}
	return nil
}

// cutBack removes a failed write's bytes so the segment ends with whole
// records; when that fails the disk state is unknown and the spool stops
// accepting until reopened (recovery cuts torn tails).
func (s *Spool) cutBack(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncate segment: %w", err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		return fmt.Errorf("seek segment: %w", err)
	}
	return nil
}

// rotate seals the active segment and starts a new one.
func (s *Spool) rotate() error {
	if s.file != nil {
		if err := s.file.Close(); err != nil {
			return fmt.Errorf("close segment: %w", err)
		}
		s.file, s.active = nil, nil
		if err := s.dropDone(); err != nil {
			return err
		}
	}
	seg := &segment{first: s.nextSeq, path: filepath.Join(s.dir, fmt.Sprintf("%s%020d%s", segPrefix, s.nextSeq, segSuffix))}
	f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	if err := s.syncDir(); err != nil {
		f.Close()
		_ = os.Remove(seg.path)
		return err
	}
	s.segs = append(s.segs, seg)
	s.active, s.file = seg, f
	return nil
}

func (s *Spool) syncDir() error {
	if s.opts.NoSync {
		return nil
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("open spool dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync spool dir: %w", err)
	}
	return nil
}

// dropDone deletes sealed segments without unacknowledged items. Called
// with mu held (or before the writer starts).
func (s *Spool) dropDone() error {
	kept := s.segs[:0]
	removed := false
	for _, seg := range s.segs {
		if seg != s.active && seg.live == 0 {
			if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("spool: remove delivered segment: %w", err)
			}
			s.bytes -= seg.size
			for _, e := range seg.entries {
				delete(s.byID, e.ID)
			}
			removed = true
			continue
		}
		kept = append(kept, seg)
	}
	clear(s.segs[len(kept):])
	s.segs = kept
	if removed {
		return s.syncDir()
	}
	return nil
}

// rewriteAcks replaces the ack log with the acks of items still in live
// segments. Called with mu held (or before the writer starts).
func (s *Spool) rewriteAcks() error {
	var payload []byte
	for _, seg := range s.segs {
		if seg.live == len(seg.entries) {
			continue
		}
		for _, e := range seg.entries {
			if e.acked {
				payload = binary.LittleEndian.AppendUint64(payload, e.ID.Seq)
				payload = binary.LittleEndian.AppendUint32(payload, e.ID.Index)
			}
		}
	}
	var buf []byte
	if len(payload) > 0 {
		buf = appendFrame(nil, payload)
	}
	tmp := filepath.Join(s.dir, ackName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: rewrite ack log: %w", err)
	}
	_, err = f.Write(buf)
	if err == nil && !s.opts.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool: rewrite ack log: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, ackName)); err != nil {
		return fmt.Errorf("spool: replace ack log: %w", err)
	}
	if err := s.syncDir(); err != nil {
		return err
	}
	if s.ackFile != nil {
		s.ackFile.Close()
	}
	s.ackFile, err = os.OpenFile(filepath.Join(s.dir, ackName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("spool: open ack log: %w", err)
	}
	s.ackBytes = int64(len(buf))
	return nil
}

// Ack durably marks items delivered (one fsync for the call). Ids already
// acknowledged or unknown are ignored, so an item is marked done once.
func (s *Spool) Ack(ids []ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	var payload []byte
	var fresh []*entry
	for _, id := range ids {
		e, ok := s.byID[id]
		if !ok || e.acked || slices.Contains(fresh, e) {
			continue
		}
		fresh = append(fresh, e)
		payload = binary.LittleEndian.AppendUint64(payload, id.Seq)
		payload = binary.LittleEndian.AppendUint32(payload, id.Index)
	}
	if len(fresh) == 0 {
		return nil
	}
	buf := appendFrame(nil, payload)
	_, err := s.ackFile.Write(buf)
	if err == nil && !s.opts.NoSync {
		err = s.ackFile.Sync()
	}
	if err != nil {
		// The ack log may now hold a torn frame; start a clean one. The
		// items stay pending and are delivered again.
		if rerr := s.rewriteAcks(); rerr != nil {
			return fmt.Errorf("spool: write ack log: %w (rewrite: %v)", err, rerr)
		}
		return fmt.Errorf("spool: write ack log: %w", err)
	}
	s.ackBytes += int64(len(buf))
	for _, e := range fresh {
		s.markAcked(e)
	}
	s.ackedQ += len(fresh)
	s.compactQueue()
	if err := s.dropDone(); err != nil {
		return err
	}
	if s.ackBytes > s.opts.AckCompactBytes {
		return s.rewriteAcks()
	}
	return nil
}

// quota is the owner's bound (<= 0: none).
func (s *Spool) quota(owner string) int64 {
	if s.opts.Quota == nil {
		return 0
	}
	return s.opts.Quota(owner)
}

// charge records a committed record of owner: size bytes until its n
// items are acknowledged.
func (s *Spool) charge(owner string, size int64, n int) *record {
	s.owned[owner] += size
	return &record{owner: owner, size: size, live: n}
}

// markAcked marks e acknowledged and releases its record's charge with
// its last item. Called with mu held (or before the writer starts).
func (s *Spool) markAcked(e *entry) {
	e.acked = true
	e.Data = nil
	e.seg.live--
	if e.rec == nil {
		return
	}
	if e.rec.live--; e.rec.live == 0 {
		if s.owned[e.rec.owner] -= e.rec.size; s.owned[e.rec.owner] <= 0 {
			delete(s.owned, e.rec.owner)
		}
	}
}

// Owned returns the bytes of records with unacknowledged items that owner
// holds (what its quota bounds).
func (s *Spool) Owned(owner string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owned[owner]
}

// compactQueue drops acknowledged items from the front of the queue and,
// when many are acknowledged, from the middle.
func (s *Spool) compactQueue() {
	for s.head < len(s.queue) && s.queue[s.head].acked {
		s.queue[s.head] = nil
		s.head++
		s.ackedQ--
	}
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
	}
	if n := len(s.queue) - s.head; s.ackedQ > 1024 && s.ackedQ > n/2 {
		kept := s.queue[:0]
		for _, e := range s.queue[s.head:] {
			if !e.acked {
				kept = append(kept, e)
			}
		}
		clear(s.queue[len(kept):])
		s.queue, s.head, s.ackedQ = kept, 0, 0
	}
}

// Pending returns up to max unacknowledged items in append order, leaving
// out items whose key skip returns true for (nil: none).
func (s *Spool) Pending(max int, skip func(key string) bool) []Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Item
	for _, e := range s.queue[s.head:] {
		if len(out) >= max {
			break
		}
		if e.acked || (skip != nil && skip(e.Key)) {
			continue
		}
		out = append(out, e.Item)
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
