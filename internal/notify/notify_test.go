package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type recorder struct {
	calls  atomic.Int32
	failN  int32 // first failN calls answer failStatus
	status int
	last   atomic.Value // []byte
	header atomic.Value // http.Header
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	n := r.calls.Add(1)
	b, _ := io.ReadAll(req.Body)
	r.last.Store(b)
	r.header.Store(req.Header.Clone())
	if n <= r.failN {
		w.WriteHeader(r.status)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestSend(t *testing.T) {
	ev := Event{Kind: IncidentOpened, IncidentID: "INC-1", Severity: "critical", Asset: "api-gateway", Summary: "Falco: shell in container", At: time.Unix(1700000000, 0).UTC()}
	tests := []struct {
		name         string
		kind         string
		secret       string
		failN        int32
		status       int
		events       []string
		wantCalls    int32
		wantErr      string
		checkPayload func(t *testing.T, body []byte, h http.Header)
	}{
		{name: "webhook signed", kind: "webhook", secret: "s3", wantCalls: 1, checkPayload: func(t *testing.T, body []byte, h http.Header) {
			var got Event
			if err := json.Unmarshal(body, &got); err != nil || got.IncidentID != "INC-1" || got.Kind != IncidentOpened {
				t.Errorf("payload %s: %v", body, err)
			}
			want := "sha256=" + Sign("s3", h.Get("X-IRU-Timestamp"), body)
			if h.Get("X-IRU-Signature") != want {
				t.Errorf("signature %q, want %q", h.Get("X-IRU-Signature"), want)
			}
		}},
		{name: "slack format", kind: "slack", wantCalls: 1, checkPayload: func(t *testing.T, body []byte, h http.Header) {
			var m struct {
				Text   string           `json:"text"`
				Blocks []map[string]any `json:"blocks"`
			}
			if err := json.Unmarshal(body, &m); err != nil || !strings.Contains(m.Text, "INC-1") || len(m.Blocks) < 2 {
				t.Errorf("slack payload %s: %v", body, err)
			}
			if h.Get("X-IRU-Signature") != "" {
				t.Error("slack bodies must not carry our signature header")
			}
		}},
		{name: "retries 503 then succeeds", kind: "webhook", failN: 2, status: 503, wantCalls: 3},
		{name: "retries 429", kind: "webhook", failN: 1, status: 429, wantCalls: 2},
		{name: "400 is final", kind: "webhook", failN: 10, status: 400, wantCalls: 1, wantErr: "not retried"},
		{name: "gives up after max attempts", kind: "webhook", failN: 10, status: 500, wantCalls: 3, wantErr: "500"},
		{name: "channel filters kinds", kind: "webhook", events: []string{IncidentClosed}, wantCalls: 0, wantErr: ErrNoChannel.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{failN: tt.failN, status: tt.status}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			n := &Notifier{Channels: []Channel{{Name: "c", Kind: tt.kind, URL: srv.URL, Secret: tt.secret, Events: tt.events}}, MaxAttempts: 3, Backoff: time.Millisecond}
			_, err := n.Send(context.Background(), ev)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if got := rec.calls.Load(); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
			if tt.checkPayload != nil {
				tt.checkPayload(t, rec.last.Load().([]byte), rec.header.Load().(http.Header))
			}
		})
	}
}

func TestSendStopsWhenContextEnds(t *testing.T) {
	rec := &recorder{failN: 1000, status: 503}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	n := &Notifier{Channels: []Channel{{Name: "c", URL: srv.URL}}, MaxAttempts: 1000, Backoff: 20 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := n.Send(ctx, Event{Kind: Escalation})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if c := rec.calls.Load(); c > 10 {
		t.Errorf("kept sending after the deadline: %d calls", c)
	}
}
