package spool

// Recovery: rebuilding the spool's state from its segments and its ack log
// when it is opened.

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

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
	var acked []*entry
	for _, id := range acks {
		if e, ok := s.byID[id]; ok && !e.acked {
			s.markAcked(e)
			acked = append(acked, e)
		}
	}
	s.advanceKeys(acked)
	// Drop fully acknowledged segments (none is active yet).
	if err := s.dropDone(); err != nil {
		return err
	}
	return s.rewriteAcks()
}

func (s *Spool) readSegment(seg *segment, last bool) error {
	opened := time.Now() // a recovered item counts as appended now
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
			e := &entry{Item: Item{ID: ID{Seq: seq, Index: uint32(i)}, Key: it.Key, Data: it.Data, Owner: it.Owner}, seg: seg, rec: rec, at: opened}
			s.enqueue(e)
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
