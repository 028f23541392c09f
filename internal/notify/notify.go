// Package notify sends incident notifications to people: a generic JSON
// webhook and a Slack-compatible incoming webhook. Sends retry with
// exponential backoff within a bounded time and never block the response:
// callers run them as their own activity or goroutine and only log failures.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iru-responder/responder/internal/redact"
)

// Event kinds the platform notifies about.
const (
	IncidentOpened      = "incident_opened"
	ApprovalNeeded      = "approval_needed"
	Escalation          = "escalation"
	FailedAuthThreshold = "failed_auth_threshold"
	IncidentClosed      = "incident_closed"
	ComplianceDeadline  = "compliance_deadline"
	// IntakeDeadLetter is an alert Temporal refused for good, set aside in
	// the intake's dead-letter queue.
	IntakeDeadLetter = "intake_dead_letter"
)

// Event is one notification.
type Event struct {
	Kind       string            `json:"kind"`
	IncidentID string            `json:"incident_id,omitempty"`
	Severity   string            `json:"severity,omitempty"`
	Asset      string            `json:"asset,omitempty"`
	Playbook   string            `json:"playbook,omitempty"`
	Phase      string            `json:"phase,omitempty"`
	Summary    string            `json:"summary"`
	Link       string            `json:"link,omitempty"`
	At         time.Time         `json:"at"`
	Details    map[string]string `json:"details,omitempty"`
}

// Channel is one destination.
type Channel struct {
	// Name identifies the channel in playbooks and logs.
	Name string `yaml:"name" json:"name"`
	// Kind is "webhook" (generic JSON), "slack" (Slack-compatible) or
	// "smtp" (e-mail, see SMTP).
	Kind string `yaml:"kind" json:"kind"`
	// SMTP is the server and recipients of an "smtp" channel.
	SMTP *SMTP `yaml:"smtp" json:"smtp,omitempty"`
	// URL receives the POST.
	URL string `yaml:"url" json:"url"`
	// Secret, if set, signs generic webhook bodies: header
	// X-IRU-Signature: sha256=HMAC(secret, timestamp + "." + body) with
	// X-IRU-Timestamp, so receivers can authenticate us.
	Secret string `yaml:"secret" json:"-"`
	// Events limits the channel to these kinds; empty means all.
	Events []string `yaml:"events" json:"events,omitempty"`
}

func (c Channel) wants(kind string) bool {
	if len(c.Events) == 0 {
		return true
	}
	for _, k := range c.Events {
		if k == kind {
			return true
		}
	}
	return false
}

// Notifier sends events to channels.
type Notifier struct {
	Channels []Channel
	Client   *http.Client
	// MaxAttempts per channel (default 5) and the first backoff (default
	// 500 ms, doubled each attempt, capped at 10 s).
	MaxAttempts int
	Backoff     time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Only returns a copy of n that sends to the named channels only (names
// not configured are ignored).
func (n *Notifier) Only(names []string) *Notifier {
	c := *n
	c.Channels = nil
	for _, ch := range n.Channels {
		if slices.Contains(names, ch.Name) {
			c.Channels = append(c.Channels, ch)
		}
	}
	return &c
}

// ErrNoChannel is returned when no channel takes the event's kind.
var ErrNoChannel = errors.New("notify: no channel for this event")

// Result reports per-channel delivery.
type Result struct {
	Channel  string
	Attempts int
	Err      error
}

// Send delivers ev to every channel that wants it, retrying each with
// backoff until it succeeds, MaxAttempts is reached or ctx ends. It returns
// the per-channel results and an error if any channel failed.
func (n *Notifier) Send(ctx context.Context, ev Event) ([]Result, error) {
	var results []Result
	var errs []error
	for _, ch := range n.Channels {
		if !ch.wants(ev.Kind) || (ch.Kind == "smtp" && ch.SMTP != nil && len(ch.SMTP.Recipients(ev)) == 0) {
			continue
		}
		attempts, err := n.sendWithRetry(ctx, ch, ev)
		results = append(results, Result{Channel: ch.Name, Attempts: attempts, Err: err})
		if err != nil {
			errs = append(errs, fmt.Errorf("notify: channel %s: %w", ch.Name, err))
		}
	}
	if len(results) == 0 {
		return nil, ErrNoChannel
	}
	return results, errors.Join(errs...)
}

func (n *Notifier) sendWithRetry(ctx context.Context, ch Channel, ev Event) (int, error) {
	max := n.MaxAttempts
	if max <= 0 {
		max = 5
	}
	wait := n.Backoff
	if wait <= 0 {
		wait = 500 * time.Millisecond
	}
	var last error
	for attempt := 1; attempt <= max; attempt++ {
		retry, err := n.post(ctx, ch, ev)
		if err == nil {
			return attempt, nil
		}
		last = err
		if !retry || attempt == max {
			return attempt, last
		}
		select {
		case <-ctx.Done():
			return attempt, errors.Join(ctx.Err(), last)
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
	return max, last
}

// post sends once; retry reports whether a failure is worth retrying.
func (n *Notifier) post(ctx context.Context, ch Channel, ev Event) (retry bool, err error) {
	var body []byte
	switch ch.Kind {
	case "smtp":
		return n.sendMail(ctx, ch, ev)
	case "slack":
		body, err = json.Marshal(slackMessage(ev))
	case "webhook", "":
		body, err = json.Marshal(ev)
	default:
		return false, fmt.Errorf("unknown channel kind %q", ch.Kind)
	}
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.URL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("request: %w", redact.Error(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "iru-responder")
	if ch.Secret != "" && ch.Kind != "slack" {
		now := time.Now
		if n.Now != nil {
			now = n.Now
		}
		ts := strconv.FormatInt(now().Unix(), 10)
		req.Header.Set("X-IRU-Timestamp", ts)
		req.Header.Set("X-IRU-Signature", "sha256="+Sign(ch.Secret, ts, body))
	}
	client := n.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		// Go's *url.Error quotes the URL, which for a Slack webhook is the
		// credential itself: redact it before the error goes anywhere.
		return true, fmt.Errorf("post: %w", redact.Error(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("post: %s", resp.Status)
	default:
		return false, fmt.Errorf("post: %s (not retried)", resp.Status)
	}
}

// Sign returns the hex HMAC-SHA256 of timestamp + "." + body.
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// slackMessage renders ev for a Slack-compatible incoming webhook (text
// plus blocks; Mattermost and Rocket.Chat accept the same shape).
func slackMessage(ev Event) map[string]any {
	// Every value but the event kind comes from an alert, a playbook or a
	// person: it is rendered with SlackText, the plain_text header too
	// (Slack applies the same &, <, > rule there).
	title := fmt.Sprintf("%s %s", emoji(ev.Kind), strings.ReplaceAll(ev.Kind, "_", " "))
	header, text := title, SlackText(title)
	if ev.IncidentID != "" {
		header += " — " + ev.IncidentID
		text += " — " + SlackText(ev.IncidentID)
	}
	header = SlackText(header)
	var fields []map[string]string
	for _, kv := range [][2]string{{"Severity", ev.Severity}, {"Asset", ev.Asset}, {"Playbook", ev.Playbook}, {"Phase", ev.Phase}} {
		if kv[1] != "" {
			fields = append(fields, map[string]string{"type": "mrkdwn", "text": "*" + kv[0] + "*\n" + SlackText(kv[1])})
		}
	}
	blocks := []map[string]any{
		{"type": "header", "text": map[string]string{"type": "plain_text", "text": header}},
		{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": SlackText(ev.Summary)}},
	}
	if len(fields) > 0 {
		blocks = append(blocks, map[string]any{"type": "section", "fields": fields})
	}
	if ev.Link != "" {
		// The link is the platform's own (IRU_UI_URL and the incident's
		// workflow id); escaped so that it cannot end the <url|label> early.
		link := strings.NewReplacer("|", "%7C").Replace(slackEscape(ev.Link))
		blocks = append(blocks, map[string]any{"type": "context", "elements": []map[string]string{{"type": "mrkdwn", "text": "<" + link + "|Open incident>"}}})
	}
	return map[string]any{"text": text + ": " + SlackText(ev.Summary), "blocks": blocks}
}

// slackEscape applies Slack's escaping rule for message text: &, < and >
// become &amp;, &lt; and &gt;, so text cannot open a link (<url|label>), a
// user or channel mention (<@U…>, <#C…>) or a special mention (<!channel>,
// <!here>, <!everyone>).
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// slackInert neutralises what Slack acts on even without angle brackets:
// "@here" / "@channel" / "@name" (a zero-width space after the @ stops
// the mention and the e-mail autolink), URLs with a scheme and www. names
// (defanged to hxxp[:]// style so they are not links), and backticks
// (a look-alike, so text cannot open or close a code block and hide or
// reshape the rest of the message). Line breaks stay.
var slackInert = strings.NewReplacer(
	"@", "@\u200b",
	"://", "[:]//",
	"www.", "www[.]",
	"`", "\u02cb",
)

// SlackText renders detector- or user-supplied text for a Slack mrkdwn
// field: escaped by Slack's rules, with mentions, links and code spans
// neutralised. The text stays readable; nothing in it notifies anyone or
// links anywhere.
func SlackText(s string) string { return slackInert.Replace(slackEscape(s)) }

func emoji(kind string) string {
	switch kind {
	case IncidentOpened:
		return ":rotating_light:"
	case ApprovalNeeded:
		return ":raised_hand:"
	case Escalation:
		return ":arrow_double_up:"
	case FailedAuthThreshold:
		return ":no_entry:"
	case IncidentClosed:
		return ":white_check_mark:"
	default:
		return ":information_source:"
	}
}
