package accesslog

import (
	"context"
	"sync"
)

// Slot carries what one request's handler learns (the verified identity,
// a failure's reason, the room reserved for its record) back to the
// middleware that records the request.
type Slot struct {
	log    *Logger
	source string

	mu     sync.Mutex
	actor  string
	detail string
	res    *Reservation
	// refused: no room was found for the request, which failed without
	// acting; its record (a 503) goes on the droppable path.
	refused bool
}

// Actor returns the identity set on the slot ("" if none).
func (s *Slot) Actor() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actor
}

type slotKey struct{}

// WithSlot returns ctx carrying a new, empty slot that records nothing.
func WithSlot(ctx context.Context) (context.Context, *Slot) {
	return (*Logger)(nil).WithSlot(ctx, "")
}

// WithSlot returns ctx carrying a new slot for a request from source (the
// client address); [Slot.Finish] records the request through a (nil: it
// records nothing).
func (a *Logger) WithSlot(ctx context.Context, source string) (context.Context, *Slot) {
	s := &Slot{log: a, source: source}
	return context.WithValue(ctx, slotKey{}, s), s
}

func slotOf(ctx context.Context) *Slot {
	s, _ := ctx.Value(slotKey{}).(*Slot)
	return s
}

// SourceIP returns the client address of the recorded request whose
// context is ctx ("" outside one).
func SourceIP(ctx context.Context) string {
	if s := slotOf(ctx); s != nil {
		return s.source
	}
	return ""
}

// SetActor names the verified identity ("issuer:subject") of the request
// whose context is ctx, for its access-log record, without reserving room
// for it: the record then waits for room when the request ends. Handlers
// that act on the identity call [Authenticated] instead. It does nothing
// outside a recorded request.
func SetActor(ctx context.Context, actor string) {
	if s := slotOf(ctx); s != nil {
		s.mu.Lock()
		s.actor = actor
		s.mu.Unlock()
	}
}

// SetDetail gives the request's record a short reason (an authentication
// failure's cause; never a secret).
func SetDetail(ctx context.Context, detail string) {
	if s := slotOf(ctx); s != nil {
		s.mu.Lock()
		s.detail = detail
		s.mu.Unlock()
	}
}

// Authenticated names the verified identity of the request whose context
// is ctx and reserves room in the access-log queue for the request's
// record and for extra (recorded with it when the request ends), waiting
// for room if need be. The handler must call it before it acts and, on an
// error (wrapping [ErrNoRoom]), fail the request (503) without acting: an
// authenticated action's record is never dropped. Outside a recorded
// request it does nothing.
func Authenticated(ctx context.Context, actor string, extra ...Record) error {
	s := slotOf(ctx)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	s.actor = actor
	reserved := s.res != nil
	s.mu.Unlock()
	if s.log == nil || reserved {
		return nil
	}
	res, err := s.log.Reserve(ctx, 1+len(extra))
	if err != nil {
		s.mu.Lock()
		s.refused = true
		s.mu.Unlock()
		return err
	}
	if len(extra) > 0 {
		// The extra records go at once, into the room reserved for them.
		res.mu.Lock()
		res.put(extra...)
		res.mu.Unlock()
	}
	s.mu.Lock()
	s.res = res
	s.mu.Unlock()
	return nil
}

// Finish records the request once it is answered: r is its record
// (Actor and Detail are taken from the slot). An authenticated request's
// record goes into its reserved room (or waits for room); an anonymous
// one is counted and aggregated per source and minute.
func (s *Slot) Finish(r Record) {
	if s.log == nil {
		return
	}
	s.mu.Lock()
	r.Actor = s.actor
	if r.Detail == "" {
		r.Detail = s.detail
	}
	res, refused := s.res, s.refused
	s.res = nil
	s.mu.Unlock()
	switch {
	case res != nil:
		res.Commit(r)
	case refused:
		s.log.Record(r) // the request did nothing; the queue was full a moment ago

	case r.Actor != "":
		_ = s.log.RecordWait(context.Background(), r)
	default:
		s.log.Anonymous(r)
	}
}
