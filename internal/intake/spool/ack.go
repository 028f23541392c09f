package spool

// Acknowledgements and the per-owner quota accounting.

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// rewriteAcks replaces the ack log with the acks of items still in live
// segments. Called with ackMu and mu held (or before the writer starts).
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
// Acks run one at a time; their write and fsync hold no lock appends,
// Pending or Ready need (an Ack's fsync does not delay a 202).
func (s *Spool) Ack(ids []ID) error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var payload []byte
	var fresh []*entry
	seen := make(map[*entry]bool, len(ids))
	for _, id := range ids {
		e, ok := s.byID[id]
		if !ok || e.acked || seen[e] {
			continue
		}
		seen[e] = true
		fresh = append(fresh, e)
		payload = binary.LittleEndian.AppendUint64(payload, id.Seq)
		payload = binary.LittleEndian.AppendUint32(payload, id.Index)
	}
	f := s.ackFile
	s.mu.Unlock()
	if len(fresh) == 0 {
		return nil
	}
	// Only Ack (under ackMu) and Close (after taking ackMu) replace or
	// close the ack log, and only Ack marks entries acknowledged: f and
	// fresh stay valid without mu.
	buf := appendFrame(nil, payload)
	_, err := f.Write(buf)
	if err == nil && s.ackSyncHook != nil {
		s.ackSyncHook()
	}
	if err == nil && !s.opts.NoSync {
		err = f.Sync()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
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
	s.advanceKeys(fresh)
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
	e.Decoded = nil
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
