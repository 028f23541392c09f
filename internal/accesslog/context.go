package accesslog

import (
	"context"
	"sync"
)

// Slot carries the identity of one request from the handler that
// authenticates it back to the middleware that records it.
type Slot struct {
	mu    sync.Mutex
	actor string
}

// Actor returns the identity set on the slot ("" if none).
func (s *Slot) Actor() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actor
}

type slotKey struct{}

// WithSlot returns ctx carrying a new, empty slot.
func WithSlot(ctx context.Context) (context.Context, *Slot) {
	s := &Slot{}
	return context.WithValue(ctx, slotKey{}, s), s
}

// SetActor names the verified identity ("issuer:subject") of the request
// whose context is ctx, for its access-log record. Handlers that
// authenticate their callers themselves (the detector intake) call it
// once authentication succeeded; it does nothing outside a recorded
// request.
func SetActor(ctx context.Context, actor string) {
	if s, ok := ctx.Value(slotKey{}).(*Slot); ok {
		s.mu.Lock()
		s.actor = actor
		s.mu.Unlock()
	}
}
