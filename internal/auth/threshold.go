package auth

import (
	"sync"
	"time"
)

// FailureWatch counts authentication failures per key (an identity, a
// detector or a source address) in a sliding window and calls OnExceeded
// once when a key reaches Threshold failures within Window. The key is
// re-armed when its failures fall back under the threshold.
type FailureWatch struct {
	Threshold  int
	Window     time.Duration
	OnExceeded func(key string, failures int)
	// Now is the clock (tests); default time.Now.
	Now func() time.Time

	mu    sync.Mutex
	fails map[string][]time.Time
	fired map[string]bool
}

// Failure records one failure for key and reports whether it crossed the
// threshold with this call.
func (w *FailureWatch) Failure(key string) bool {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	t := now()
	w.mu.Lock()
	if w.fails == nil {
		w.fails, w.fired = map[string][]time.Time{}, map[string]bool{}
	}
	list := w.prune(append(w.fails[key], t), t)
	w.fails[key] = list
	crossed := len(list) >= w.Threshold && !w.fired[key]
	if crossed {
		w.fired[key] = true
	}
	n := len(list)
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
	delete(w.fails, key)
	delete(w.fired, key)
}

// Count returns key's failures in the current window.
func (w *FailureWatch) Count(key string) int {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.prune(w.fails[key], now())
	w.fails[key] = list
	if len(list) < w.Threshold {
		delete(w.fired, key)
	}
	return len(list)
}

func (w *FailureWatch) prune(list []time.Time, now time.Time) []time.Time {
	cut := now.Add(-w.Window)
	i := 0
	for i < len(list) && !list[i].After(cut) {
		i++
	}
	return list[i:]
}
