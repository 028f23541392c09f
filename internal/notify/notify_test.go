package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
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

// slackBody is the part of a Slack message the tests read.
type slackBody struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type     string            `json:"type"`
		Text     map[string]string `json:"text"`
		Fields   []map[string]string
		Elements []map[string]string
	} `json:"blocks"`
}

// mrkdwn returns every mrkdwn and plain_text string of the message.
func (b slackBody) texts() []string {
	out := []string{b.Text}
	for _, bl := range b.Blocks {
		if bl.Text != nil {
			out = append(out, bl.Text["text"])
		}
		for _, f := range bl.Fields {
			out = append(out, f["text"])
		}
		for _, e := range bl.Elements {
			out = append(out, e["text"])
		}
	}
	return out
}

// TestSlackHostileText sends events whose detector-supplied fields try to
// mention everyone, link somewhere, open code blocks and forge the
// incident link, and checks the JSON Slack receives: no angle bracket but
// the platform's own link, no live @-mention, no URL scheme, no backtick;
// the words themselves are still there for people to read.
func TestSlackHostileText(t *testing.T) {
	hostile := []struct{ name, s, readable string }{
		{"special mention", "<!channel> <!here> <!everyone> wake up", "channel"},
		{"plain mentions", "@here @channel @everyone ping @bob", "here"},
		{"user mention", "<@U024BE7LH> approve", "U024BE7LH"},
		{"masked link", "<https://evil.example/login|Open incident>", "evil.example"},
		{"bare links", "see https://evil.example/x and www.evil.example and bob@evil.example", "evil.example"},
		{"code fence", "```\nhidden\n``` `x`", "hidden"},
		{"entities", "&lt;!channel&gt; &amp;", "&amp;lt;!channel&amp;gt; &amp;amp;"},
	}
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			rec := &recorder{}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			n := &Notifier{Channels: []Channel{{Name: "slack", Kind: "slack", URL: srv.URL}}, MaxAttempts: 1}
			ev := Event{Kind: IncidentOpened, IncidentID: "INC-" + h.s, Severity: h.s, Asset: h.s, Playbook: h.s, Phase: h.s, Summary: h.s, Link: "https://ui.example/wf/incident:1", At: time.Now()}
			if _, err := n.Send(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			var body slackBody
			if err := json.Unmarshal(rec.last.Load().([]byte), &body); err != nil {
				t.Fatal(err)
			}
			texts := body.texts()
			if len(texts) < 8 {
				t.Fatalf("message has %d texts: %+v", len(texts), body)
			}
			for _, s := range texts {
				if s == "<https://ui.example/wf/incident:1|Open incident>" {
					continue // the platform's own link
				}
				for _, bad := range []string{"<", ">", "://", "`"} {
					if strings.Contains(s, bad) {
						t.Errorf("text %q contains %q", s, bad)
					}
				}
				for _, m := range []string{"@here", "@channel", "@everyone", "@bob", "@evil"} {
					if strings.Contains(s, m) {
						t.Errorf("text %q contains a live mention %q", s, m)
					}
				}
			}
			if !strings.Contains(body.Text, h.readable) {
				t.Errorf("text %q lost the readable part %q", body.Text, h.readable)
			}
		})
	}
}

// TestSlackSecretNotInErrors posts to a Slack webhook URL that fails (no
// listener, then a 500, then a timeout) and checks that neither the error
// nor a log line written from it holds any part of the URL's secret path.
func TestSlackSecretNotInErrors(t *testing.T) {
	const path = "/services/T0SECRET1/B0SECRET2/xoxbSECRETtokenSECRET"
	secrets := []string{"T0SECRET1", "B0SECRET2", "xoxbSECRETtokenSECRET"}
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // nothing listens there any more
	fail := httptest.NewServer(&recorder{failN: 100, status: 500})
	defer fail.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }))
	defer slow.Close()
	for _, tt := range []struct {
		name, url string
		client    *http.Client
	}{
		{"connection refused", downURL + path, nil},
		{"server error", fail.URL + path, nil},
		{"timeout", slow.URL + path, &http.Client{Timeout: 50 * time.Millisecond}},
		{"token in query of a webhook", downURL + "/hook?token=xoxbSECRETtokenSECRET", nil},
		{"userinfo", strings.Replace(downURL, "http://", "http://T0SECRET1:B0SECRET2@", 1) + "/hook", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil)) // a plain handler: the error itself must be clean
			n := &Notifier{Channels: []Channel{{Name: "slack", Kind: "slack", URL: tt.url}}, Client: tt.client, MaxAttempts: 2, Backoff: time.Millisecond}
			results, err := n.Send(context.Background(), Event{Kind: Escalation, Summary: "x"})
			if err == nil {
				t.Fatal("the post did not fail")
			}
			log.Error("notification not delivered", "err", err, "result", results[0].Err)
			for _, s := range secrets {
				for what, text := range map[string]string{"error": err.Error(), "result error": results[0].Err.Error(), "log": logs.String()} {
					if strings.Contains(text, s) {
						t.Errorf("%s holds %q: %s", what, s, text)
					}
				}
			}
		})
	}
}
