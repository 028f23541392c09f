package spool

// The writer: the one goroutine that appends batches of requests to the
// current segment, rotates segments and drops those fully acknowledged.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

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
	s.lastAppend = time.Now()
	seg.size += int64(len(buf))
	s.bytes += int64(len(buf))
	for _, p := range plan {
		ids := make([]ID, len(p.req.items))
		owner := p.req.items[0].Owner
		rec := s.charge(owner, int64(p.end-p.start), len(p.req.items))
		for i, it := range p.req.items {
			id := ID{Seq: p.seq, Index: uint32(i)}
			ids[i] = id
			e := &entry{Item: Item{ID: id, Key: it.Key, Data: it.Data, Owner: owner, Decoded: it.Decoded}, seg: seg, rec: rec, at: s.lastAppend}
			s.enqueue(e)
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
