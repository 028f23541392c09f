package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// hub reads each watched topic (an incident, or a filtered list) once per
// interval, whatever the number of pages watching it, and pushes what
// changed to all of them. A topic is read with the token of one of its
// watchers; a watcher whose token the API refuses is dropped, and the
// next one's is used.
type hub struct {
	c        *Console
	interval time.Duration
	ctx      context.Context
	cancel   context.CancelFunc

	mu     sync.Mutex
	topics map[string]*topic
	wg     sync.WaitGroup
}

// loadFunc reads a topic with a watcher's session, as JSON.
type loadFunc func(ctx context.Context, remote string, sess *session) ([]byte, error)

type topic struct {
	key  string
	load loadFunc
	subs map[*watcher]struct{}
	last []byte
}

// watcher is one open page.
type watcher struct {
	sess   *session
	remote string
	ch     chan []byte   // the newest state (older ones are replaced)
	gone   chan struct{} // closed when the API refused the watcher's token
}

func newHub(c *Console, interval time.Duration) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{c: c, interval: interval, ctx: ctx, cancel: cancel, topics: map[string]*topic{}}
}

func (h *hub) close() {
	h.cancel()
	h.wg.Wait()
}

// watch adds a watcher of key; the topic's reader starts with its first
// watcher and stops after its last.
func (h *hub) watch(key string, load loadFunc, w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.topics[key]
	if !ok {
		t = &topic{key: key, load: load, subs: map[*watcher]struct{}{}}
		h.topics[key] = t
		h.wg.Add(1)
		go h.run(t)
	}
	t.subs[w] = struct{}{}
	if t.last != nil {
		offer(w, t.last)
	}
}

func (h *hub) unwatch(key string, w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.topics[key]; ok {
		delete(t.subs, w)
	}
}

// watchers returns the number of watchers of key (tests and metrics).
func (h *hub) watchers(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.topics[key]; ok {
		return len(t.subs)
	}
	return 0
}

// offer replaces the watcher's pending state with b.
func offer(w *watcher, b []byte) {
	select {
	case <-w.ch:
	default:
	}
	w.ch <- b
}

// run reads t every interval until it has no watchers.
func (h *hub) run(t *topic) {
	defer h.wg.Done()
	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-tick.C:
		}
		h.mu.Lock()
		subs := make([]*watcher, 0, len(t.subs))
		for w := range t.subs {
			subs = append(subs, w)
		}
		if len(subs) == 0 {
			delete(h.topics, t.key)
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		h.read(t, subs)
	}
}

// read loads t with the first watcher whose token works and pushes a
// changed state to every watcher.
func (h *hub) read(t *topic, subs []*watcher) {
	for _, w := range subs {
		ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
		b, err := t.load(ctx, w.remote, w.sess)
		cancel()
		if err != nil {
			var f *apiFailure
			if errors.Is(err, errSignedOut) || (errors.As(err, &f) && (f.status == http.StatusUnauthorized || f.status == http.StatusForbidden)) || !h.c.store.active(w.sess) {
				h.drop(t, w)
				continue
			}
			h.c.log.Warn("console: live read", "topic", t.key, "err", err)
			return
		}
		h.mu.Lock()
		if !bytes.Equal(b, t.last) {
			t.last = b
			for s := range t.subs {
				offer(s, b)
			}
		}
		h.mu.Unlock()
		return
	}
}

func (h *hub) drop(t *topic, w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := t.subs[w]; ok {
		delete(t.subs, w)
		close(w.gone)
	}
}

// heartbeat keeps idle streams open through proxies.
const heartbeat = 15 * time.Second

// stream serves one Server-Sent Events stream: the first state read with
// the watcher's own token (so only those the API lets read the topic
// watch it), then every change of the topic, each rendered for this
// watcher by render. It ends when the session ends.
func stream[T any](c *Console, w http.ResponseWriter, r *http.Request, sess *session, key string,
	load func(ctx context.Context, remote string, sess *session) (T, error), render func(T) ([]byte, error)) {
	first, err := load(r.Context(), r.RemoteAddr, sess)
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // the stream outlives the server's write timeout
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(v T) bool {
		html, err := render(v)
		if err != nil {
			c.log.Error("console: live render", "topic", key, "err", err)
			return true
		}
		return writeEvent(w, rc, "update", html) == nil
	}
	if !send(first) {
		return
	}
	wt := &watcher{sess: sess, remote: r.RemoteAddr, ch: make(chan []byte, 1), gone: make(chan struct{})}
	c.hub.watch(key, func(ctx context.Context, remote string, s *session) ([]byte, error) {
		v, err := load(ctx, remote, s)
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	}, wt)
	defer c.hub.unwatch(key, wt)
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	check := time.NewTicker(c.cfg.PollInterval)
	defer check.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-wt.gone:
			_ = writeEvent(w, rc, "signedout", nil)
			return
		case <-check.C:
			if !c.store.active(sess) {
				_ = writeEvent(w, rc, "signedout", nil)
				return
			}
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case b := <-wt.ch:
			var v T
			if err := json.Unmarshal(b, &v); err != nil {
				c.log.Error("console: live decode", "topic", key, "err", err)
				continue
			}
			if !send(v) {
				return
			}
		}
	}
}

// writeEvent writes one SSE event, data split into data: lines.
func writeEvent(w http.ResponseWriter, rc *http.ResponseController, event string, data []byte) error {
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	for _, line := range strings.Split(string(data), "\n") {
		b.WriteString("data: " + strings.TrimSuffix(line, "\r") + "\n")
	}
	b.WriteString("\n")
	if _, err := w.Write([]byte(b.String())); err != nil {
		return err
	}
	return rc.Flush()
}

// listEvents streams the incidents list of the page's filters.
func (c *Console) listEvents(w http.ResponseWriter, r *http.Request, sess *session) {
	path, filters := listPath(r.URL.Query())
	stream(c, w, r, sess, path, func(ctx context.Context, remote string, s *session) (listData, error) {
		return c.loadList(ctx, remote, s, path)
	}, func(d listData) ([]byte, error) {
		pd := basePageLive(sess)
		pd.List = listOf(d, filters, c.now())
		return c.fragment("list", pd)
	})
}

// roomEvents streams an incident's room.
func (c *Console) roomEvents(w http.ResponseWriter, r *http.Request, sess *session) {
	key := r.PathValue("id")
	stream(c, w, r, sess, incidentPath(key), func(ctx context.Context, remote string, s *session) (roomData, error) {
		return c.loadRoom(ctx, remote, s, key)
	}, func(d roomData) ([]byte, error) {
		pd := basePageLive(sess)
		pd.Key = key
		pd.Room = roomOf(d.Incident, sess.who())
		return c.fragment("room", pd)
	})
}

// basePageLive is the page data of a live fragment (no flash: it belongs
// to the next full page).
func basePageLive(sess *session) pageData {
	id := sess.who()
	return pageData{User: &id, CSRF: sess.csrf}
}
