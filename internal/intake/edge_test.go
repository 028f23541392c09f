package intake

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/spool"
)

// countingBody is a request body of n bytes that counts what is read.
type countingBody struct {
	left int
	read atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.left)
	for i := range n {
		p[i] = ' '
	}
	c.left -= n
	c.read.Add(int64(n))
	return n, nil
}

func (c *countingBody) Close() error { return nil }

// TestRefusedBeforeTheBodyIsRead performs the cheap attacks: 1 MiB bodies
// with a bad key, no credentials, an unknown detector, a stale or
// malformed signature. Each is refused (401) without a byte of its body
// read (the handler authenticates before it reads the body).
// A valid key's body is read, which shows the counter counts.
func TestRefusedBeforeTheBodyIsRead(t *testing.T) {
	e := newEnv(t, spool.Options{})
	const mib = 1 << 20
	stale := signedHeaders([]byte("x"), time.Now().Add(-time.Hour))
	tests := []struct {
		name, detector string
		hdr            []string
		want           int
		wantRead       bool
	}{
		{"bad key", "falco", bearer("wrong-key"), http.StatusUnauthorized, false},
		{"bad X-IRU-Key", "generic", []string{auth.HeaderKey, "wrong"}, http.StatusUnauthorized, false},
		{"no credentials", "falco", nil, http.StatusUnauthorized, false},
		{"unknown detector", "nosuch", bearer(falcoKey), http.StatusUnauthorized, false},
		{"stale signature", "wazuh", stale, http.StatusUnauthorized, false},
		{"malformed signature", "wazuh", []string{auth.HeaderTimestamp, strconv.FormatInt(time.Now().Unix(), 10), auth.HeaderSignature, "sha256=zz"}, http.StatusUnauthorized, false},
		{"valid key, body over the limit", "falco", bearer(falcoKey), http.StatusRequestEntityTooLarge, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.h.Stats().BodyBytes
			body := &countingBody{left: mib + 1}
			r := httptest.NewRequest(http.MethodPost, "/v1/alerts/"+tt.detector, body)
			r.ContentLength = -1 // unknown length: only reading tells
			r.SetPathValue("detector", tt.detector)
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				r.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			read := body.read.Load()
			if tt.wantRead != (read > 0) {
				t.Fatalf("%d body bytes read; want read: %v", read, tt.wantRead)
			}
			if got := e.h.Stats().BodyBytes - before; got != read {
				t.Errorf("handler counted %d body bytes, the body saw %d read", got, read)
			}
			if !tt.wantRead && w.Header().Get("Connection") != "close" {
				t.Errorf("a refused request's connection is kept (Connection: %q): the server would read the rest", w.Header().Get("Connection"))
			}
		})
	}
}

// TestRefusedBeforeTheClientFinishedSending is the same attack over a real
// connection: the client sends the headers and 64 KiB of a 1 MiB body and
// then stalls; the answer (401) arrives while the rest is unsent. An
// intake that reads the body first never answers.
func TestRefusedBeforeTheClientFinishedSending(t *testing.T) {
	e := newEnv(t, spool.Options{})
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/alerts/falco", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	req.Header.Set("Authorization", "Bearer wrong-key")
	type answer struct {
		status int
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		resp.Body.Close()
		done <- answer{status: resp.StatusCode}
	}()
	sent := make(chan struct{})
	go func() {
		_, _ = pw.Write(bytes.Repeat([]byte(" "), 64<<10))
		close(sent)
	}()
	select {
	case a := <-done:
		if a.err != nil || a.status != http.StatusUnauthorized {
			t.Fatalf("answer: %d %v, want 401", a.status, a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer within 5 s while 960 KiB of the body were still unsent: the intake waits for the body")
	}
	if got := e.h.Stats().BodyBytes; got != 0 {
		t.Fatalf("the intake read %d body bytes of an unauthenticated request", got)
	}
}

// TestRateLimitPerDetector: a burst beyond a detector's rate limit gets
// 429 with Retry-After before its body is read, and another detector
// posting at the same time is unaffected.
func TestRateLimitPerDetector(t *testing.T) {
	e := &env{t: t, dir: t.TempDir(), events: &eventLog{}}
	e.limits = loadLimits()
	e.detectors = testDetectors()
	e.detectors[1].Limits = auth.Limits{Rate: 0.5, Burst: 5} // falco's own limits
	e.open()
	t.Cleanup(e.close)
	body := genericAlert("web-1", 1)
	falcoBody := fixture(t, "falco_container_shell.json")
	accepted, limited := 0, 0
	for i := range 12 {
		r := e.post("falco", falcoBody, bearer(falcoKey)...)
		switch r.status {
		case http.StatusAccepted:
			accepted++
		case http.StatusTooManyRequests:
			limited++
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Fatalf("429 with Retry-After %q, want whole seconds ≥ 1", r.header.Get("Retry-After"))
			}
		default:
			t.Fatalf("falco post %d: %d %v", i, r.status, r.body)
		}
		// The other detector, interleaved with the burst, is never limited.
		if r := e.post("generic", body, bearer(genericKey)...); r.status != http.StatusAccepted {
			t.Fatalf("generic post %d during falco's burst: %d %v", i, r.status, r.body)
		}
	}
	if accepted != 5 || limited != 7 {
		t.Fatalf("falco: %d accepted, %d limited; want 5 (the burst) and 7", accepted, limited)
	}
	if s := e.h.Stats(); s.Limited != 7 {
		t.Fatalf("stats %+v: want 7 limited", s)
	}
}

// TestLimitsPerSourceAndConcurrency: one source over its rate is limited
// while another source is served; a detector with a request in flight at
// its concurrency limit gets 429 for the next, before the body is read.
func TestLimitsPerSourceAndConcurrency(t *testing.T) {
	e := &env{t: t, dir: t.TempDir(), events: &eventLog{}}
	e.limits = loadLimits()
	e.limits.SourceRate, e.limits.SourceBurst = 0.1, 3
	e.limits.DetectorConc = 1
	e.open()
	t.Cleanup(e.close)
	post := func(source, detector, key string, body io.Reader) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/v1/alerts/"+detector, body)
		r.RemoteAddr = source + ":40000"
		r.SetPathValue("detector", detector)
		r.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		return w
	}
	for i := range 5 {
		w := post("203.0.113.1", "generic", "wrong", bytes.NewReader(nil))
		if want := map[bool]int{true: 401, false: 429}[i < 3]; w.Code != want {
			t.Fatalf("attacker request %d: %d, want %d", i, w.Code, want)
		}
	}
	if w := post("198.51.100.7", "generic", genericKey, bytes.NewReader(genericAlert("web-1", 2))); w.Code != http.StatusAccepted {
		t.Fatalf("another source while the first is limited: %d %s", w.Code, w.Body)
	}

	// Concurrency: a falco request stalls in its body; the next falco
	// request is refused at once, a generic one is served.
	pr, pw := io.Pipe()
	first := make(chan int, 1)
	go func() { first <- post("198.51.100.8", "falco", falcoKey, pr).Code }()
	_, _ = pw.Write([]byte(`{"rule":`)) // the handler is reading it
	body := &countingBody{left: 1 << 20}
	if w := post("198.51.100.9", "falco", falcoKey, body); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("second falco request in flight: %d (Retry-After %q), want 429", w.Code, w.Header().Get("Retry-After"))
	}
	if n := body.read.Load(); n != 0 {
		t.Fatalf("the limited request's body was read (%d bytes)", n)
	}
	if w := post("198.51.100.9", "generic", genericKey, bytes.NewReader(genericAlert("web-1", 3))); w.Code != http.StatusAccepted {
		t.Fatalf("generic while falco is at its limit: %d %s", w.Code, w.Body)
	}
	pw.CloseWithError(fmt.Errorf("client gave up"))
	if code := <-first; code != http.StatusBadRequest {
		t.Fatalf("stalled request: %d, want 400", code)
	}
	if w := post("198.51.100.9", "falco", falcoKey, bytes.NewReader(fixture(t, "falco_container_shell.json"))); w.Code != http.StatusAccepted {
		t.Fatalf("falco after its slot was released: %d %s", w.Code, w.Body)
	}
}

// TestPrecheckNeedsBodyOnlyForSignatures: the authenticator's
// precheck authenticates an API key from the headers alone and needs no
// body; a signature needs it.
func TestPrecheckNeedsBodyOnlyForSignatures(t *testing.T) {
	e := newEnv(t, spool.Options{})
	r := httptest.NewRequest(http.MethodPost, "/v1/alerts/falco", nil)
	r.Header.Set("Authorization", "Bearer "+falcoKey)
	p, err := e.h.opts.Auth.Precheck(r, "falco")
	if err != nil || p.NeedsBody || p.Identity().KeyID != "f1" {
		t.Fatalf("api key precheck: %v needsBody=%v id=%+v", err, p.NeedsBody, p.Identity())
	}
	body := []byte(`{"x":1}`)
	r = httptest.NewRequest(http.MethodPost, "/v1/alerts/wazuh", nil)
	hdr := signedHeaders(body, time.Now())
	r.Header.Set(hdr[0], hdr[1])
	r.Header.Set(hdr[2], hdr[3])
	p, err = e.h.opts.Auth.Precheck(r, "wazuh")
	if err != nil || !p.NeedsBody {
		t.Fatalf("signature precheck: %v needsBody=%v", err, p.NeedsBody)
	}
	if _, err := p.Finish([]byte(`{"x":2}`)); err == nil {
		t.Fatal("a signature over another body was accepted")
	}
	p, _ = e.h.opts.Auth.Precheck(r, "wazuh")
	if id, err := p.Finish(body); err != nil || id.KeyID != "w1" {
		t.Fatalf("signature over its body: %v %+v", err, id)
	}
}
