package spool

import "time"

// The per-key index: the forwarder picks keys, not items. A storm holds
// thousands of pending items on a few hundred keys; reading every item to
// find the keys to send (and holding the spool's lock meanwhile, which
// the writer needs to answer a 202) cost the forwarder a tenth of the
// intake's processor time.

// keyQueue is one key's items, oldest first, from its oldest
// unacknowledged one. The spool keeps the keys that have unacknowledged
// items in a list ordered by that oldest item.
type keyQueue struct {
	key        string
	entries    []*entry // entries[head] is unacknowledged; later ones may be acknowledged
	head       int
	live       int // unacknowledged entries
	prev, next *keyQueue
}

// oldest is the id of the key's oldest unacknowledged item.
func (q *keyQueue) oldest() ID { return q.entries[q.head].ID }

// before reports whether id was appended before o.
func (id ID) before(o ID) bool {
	return id.Seq < o.Seq || id.Seq == o.Seq && id.Index < o.Index
}

// enqueue adds a newly committed (or recovered) item, the newest of all,
// to its segment, the id index and its key. Called with mu held (or
// before the writer starts).
func (s *Spool) enqueue(e *entry) {
	e.seg.entries = append(e.seg.entries, e)
	s.byID[e.ID] = e
	q := s.keys[e.Key]
	if q == nil {
		q = &keyQueue{key: e.Key}
		s.keys[e.Key] = q
		// Its only item is the newest: the key goes last.
		q.prev = s.lastKey
		if s.lastKey != nil {
			s.lastKey.next = q
		} else {
			s.firstKey = q
		}
		s.lastKey = q
	}
	q.entries = append(q.entries, e)
	q.live++
}

// advanceKeys updates the keys of newly acknowledged items (see
// advanceKey), each once. Called with mu held (or before the writer
// starts).
func (s *Spool) advanceKeys(acked []*entry) {
	for _, e := range acked {
		if q := s.keys[e.Key]; q != nil {
			q.live--
		}
	}
	var last *keyQueue
	for _, e := range acked {
		if q := s.keys[e.Key]; q != nil && q != last {
			s.advanceKey(q)
			last = q
		}
	}
}

// advanceKey moves q's head past acknowledged items after some of its
// items were acknowledged: the key leaves the list when none is left, or
// moves back to its new oldest item's place. Called with mu held.
func (s *Spool) advanceKey(q *keyQueue) {
	moved := false
	for q.head < len(q.entries) && q.entries[q.head].acked {
		q.entries[q.head] = nil
		q.head++
		moved = true
	}
	if q.head == len(q.entries) {
		s.unlinkKey(q)
		delete(s.keys, q.key)
		return
	}
	if q.head >= 64 && 2*q.head >= len(q.entries) {
		n := copy(q.entries, q.entries[q.head:])
		clear(q.entries[n:])
		q.entries, q.head = q.entries[:n], 0
	}
	if !moved {
		return
	}
	// Its oldest item is now later: walk it back past the keys whose
	// oldest item is earlier.
	after := q
	for after.next != nil && after.next.oldest().before(q.oldest()) {
		after = after.next
	}
	if after == q {
		return
	}
	s.unlinkKey(q)
	q.prev, q.next = after, after.next
	if after.next != nil {
		after.next.prev = q
	} else {
		s.lastKey = q
	}
	after.next = q
}

// unlinkKey takes q out of the list. Called with mu held.
func (s *Spool) unlinkKey(q *keyQueue) {
	if q.prev != nil {
		q.prev.next = q.next
	} else {
		s.firstKey = q.next
	}
	if q.next != nil {
		q.next.prev = q.prev
	} else {
		s.lastKey = q.prev
	}
	q.prev, q.next = nil, nil
}

// KeyInfo describes a key with unacknowledged items.
type KeyInfo struct {
	Key string
	// Pending is how many of its items are unacknowledged.
	Pending int
	// Oldest is when its oldest unacknowledged item was appended (when
	// the spool was opened, for a recovered one).
	Oldest time.Time
}

// Keys calls visit for every key with unacknowledged items, in the order
// of each key's oldest one, until visit returns false. visit runs with
// the spool's lock held: it must be quick and must not call the spool.
func (s *Spool) Keys(visit func(KeyInfo) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for q := s.firstKey; q != nil; q = q.next {
		if !visit(KeyInfo{Key: q.key, Pending: q.live, Oldest: q.entries[q.head].at}) {
			return
		}
	}
}

// LastAppend returns when items were last appended (zero: never since
// the spool was opened).
func (s *Spool) LastAppend() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAppend
}

// Leading returns, key after key in the order given, up to n of each
// key's oldest unacknowledged items, oldest first.
func (s *Spool) Leading(keys []string, n int) []Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Item
	for _, k := range keys {
		q := s.keys[k]
		if q == nil {
			continue
		}
		taken := 0
		for _, e := range q.entries[q.head:] {
			if taken >= n {
				break
			}
			if e.acked {
				continue
			}
			out = append(out, e.Item)
			taken++
		}
	}
	return out
}
