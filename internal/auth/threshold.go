package auth

import (
	"sync"
	"time"
)

// OverflowKey is the key under which [FailureWatch] counts the failures of
// new keys while it already tracks MaxKeys keys: a flood from many sources
// still crosses a threshold instead of pushing the real offender out.
const OverflowKey = "*other*"

// DefaultMaxKeys is the default bound of the keys a [FailureWatch] tracks.
const DefaultMaxKeys = 10000

// FailureCounter counts authentication failures per key and reports when
// a key crosses its threshold. [FailureWatch] counts in this process; a
// shared counter (PostgreSQL, package sharedstate) counts the failures seen
// by every API server.
type FailureCounter interface {
	// Failure records one failure for key and reports whether it crossed
	// the threshold with this call.
	Failure(key string) bool
	// Success clears key's failures.
	Success(key string)
}

// FailureWatch counts authentication failures per key (an identity, a
// detector or a source address) in a sliding window and calls OnExceeded
// when a key reaches Threshold failures within Window. Once it fired for a
// key it is quiet for that key for one Window, then re-arms: a key still
// (or again) at the threshold after that notifies again, so a source that
// crosses the threshold in two windows notifies twice.
//
// Memory is bounded: a key keeps at most Threshold timestamps (the newest;
// enough to tell whether Threshold fell within the window), a key whose
// failures all left the window is forgotten, and at most MaxKeys keys are
// tracked; failures of further keys are counted under [OverflowKey].
type FailureWatch struct {
	Threshold  int
	Window     time.Duration
	OnExceeded func(key string, failures int)
	// MaxKeys bounds the keys tracked (default DefaultMaxKeys).
	MaxKeys int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time

	mu        sync.Mutex
	keys      map[string]*watched
	lastSweep time.Time
}

// watched is one key's recent failures.
type watched struct {
	// times are the newest failures, oldest first, at most Threshold.
	times []time.Time
	// firedAt is when the key last crossed the threshold (zero: armed).
	firedAt time.Time
}

func (w *FailureWatch) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *FailureWatch) maxKeys() int {
	if w.MaxKeys > 0 {
		return w.MaxKeys
	}
	return DefaultMaxKeys
}

// Failure records one failure for key and reports whether it crossed the
// threshold with this call.
func (w *FailureWatch) Failure(key string) bool {
	t := w.now()
	threshold := max(1, w.Threshold)
	w.mu.Lock()
	if w.keys == nil {
		w.keys = map[string]*watched{}
	}
	if t.Sub(w.lastSweep) >= w.Window {
		w.sweep(t)
	}
	k := w.keys[key]
	if k == nil {
		if len(w.keys) >= w.maxKeys() {
			w.sweep(t)
		}
		if len(w.keys) >= w.maxKeys() {
			key = OverflowKey
			k = w.keys[key]
		}
		if k == nil {
			k = &watched{}
			w.keys[key] = k
		}
	}
	k.times = w.prune(append(k.times, t), t)
	if len(k.times) > threshold {
		k.times = append(k.times[:0], k.times[len(k.times)-threshold:]...)
	}
	if !k.firedAt.IsZero() && t.Sub(k.firedAt) >= w.Window {
		k.firedAt = time.Time{} // re-armed after a window
	}
	crossed := len(k.times) >= threshold && k.firedAt.IsZero()
	if crossed {
		k.firedAt = t
	}
	n := len(k.times)
	w.mu.Unlock()
	if crossed && w.OnExceeded != nil {
		w.OnExceeded(key, n)
	}
	return crossed
}

// Success clears key's failures (a successful login ends a streak).
func (w *FailureWatch) Success(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.keys, key)
}

// Count returns key's failures in the current window, up to Threshold
// (the watch keeps no more).
func (w *FailureWatch) Count(key string) int {
	t := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	k := w.keys[key]
	if k == nil {
		return 0
	}
	k.times = w.prune(k.times, t)
	return len(k.times)
}

// Len returns how many keys the watch tracks.
func (w *FailureWatch) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.keys)
}

// sweep forgets the keys with no failure in the window and no pending
// quiet period. Called with mu held; at most once a second when full.
func (w *FailureWatch) sweep(now time.Time) {
	if now.Sub(w.lastSweep) < time.Second && len(w.keys) >= w.maxKeys() {
		return
	}
	w.lastSweep = now
	for key, k := range w.keys {
		k.times = w.prune(k.times, now)
		if len(k.times) == 0 && (k.firedAt.IsZero() || now.Sub(k.firedAt) >= w.Window) {
			delete(w.keys, key)
		}
	}
}

func (w *FailureWatch) prune(list []time.Time, now time.Time) []time.Time {
	cut := now.Add(-w.Window)
	i := 0
	for i < len(list) && !list[i].After(cut) {
		i++
	}
	return list[i:]
}
