package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html/template"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/iru-responder/responder/internal/severity"
)

// SMTP is an e-mail channel's server and recipients. The connection is
// upgraded with STARTTLS before anything else is sent (a server without
// STARTTLS is refused), and authenticated with PLAIN when Username is set.
type SMTP struct {
	// Addr is the server's host:port (submission, usually port 587).
	Addr string `yaml:"addr" json:"addr"`
	// Username and Password authenticate (SMTP AUTH PLAIN, only over TLS).
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"-"`
	// From is the sender address.
	From string `yaml:"from" json:"from"`
	// Routes choose the recipients of an event: every route whose events
	// and minimum severity match adds its addresses.
	Routes []MailRoute `yaml:"routes" json:"routes"`
	// TLS, if set, configures the STARTTLS handshake (a private CA);
	// ServerName defaults to Addr's host.
	TLS *tls.Config `yaml:"-" json:"-"`
	// Timeout bounds the connection and each command (default 15 s).
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// MailRoute is one recipient list: for these events (empty: all) at or
// above this severity (empty: any).
type MailRoute struct {
	// Name says who the list is (security team, incident response,
	// compliance), for logs.
	Name        string   `yaml:"name" json:"name"`
	Events      []string `yaml:"events" json:"events,omitempty"`
	MinSeverity string   `yaml:"min_severity" json:"min_severity,omitempty"`
	To          []string `yaml:"to" json:"to"`
}

func (r MailRoute) matches(ev Event) bool {
	if len(r.Events) > 0 && !slices.Contains(r.Events, ev.Kind) {
		return false
	}
	return r.MinSeverity == "" || severity.Rank(ev.Severity) >= severity.Rank(r.MinSeverity)
}

// Recipients returns the addresses the event goes to, each once, in route
// order.
func (s *SMTP) Recipients(ev Event) []string {
	var to []string
	for _, r := range s.Routes {
		if !r.matches(ev) {
			continue
		}
		for _, a := range r.To {
			if !slices.Contains(to, a) {
				to = append(to, a)
			}
		}
	}
	return to
}

// ContactRoutes are the recipient lists of the incident contacts: the
// security team gets every event; incident response the openings,
// escalations and approvals of high and critical incidents; compliance
// the compliance deadlines and closings. An empty list is left out.
func ContactRoutes(securityTeam, incidentResponse, compliance []string) []MailRoute {
	var out []MailRoute
	for _, r := range []MailRoute{
		{Name: "security team", To: securityTeam},
		{Name: "incident response", Events: []string{IncidentOpened, Escalation, ApprovalNeeded}, MinSeverity: severity.High, To: incidentResponse},
		{Name: "compliance", Events: []string{ComplianceDeadline, IncidentClosed}, To: compliance},
	} {
		if len(r.To) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// errNoRecipient means no route of an e-mail channel takes the event.
var errNoRecipient = errors.New("no recipient for this event")

// sendMail sends ev as one message (plain text and HTML) to its
// recipients; retry reports whether a failure is worth retrying.
func (n *Notifier) sendMail(ctx context.Context, ch Channel, ev Event) (retry bool, err error) {
	s := ch.SMTP
	if s == nil {
		return false, fmt.Errorf("smtp channel %q has no server", ch.Name)
	}
	to := s.Recipients(ev)
	if len(to) == 0 {
		return false, errNoRecipient
	}
	host, portText, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return false, fmt.Errorf("smtp addr %q: %w", s.Addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return false, fmt.Errorf("smtp port %q: %w", portText, err)
	}
	m := mail.NewMsg()
	if err := m.From(s.From); err != nil {
		return false, fmt.Errorf("smtp from: %w", err)
	}
	if err := m.To(to...); err != nil {
		return false, fmt.Errorf("smtp to: %w", err)
	}
	m.Subject(mailSubject(ev))
	m.SetDate()
	m.SetMessageID()
	m.SetBodyString(mail.TypeTextPlain, mailText(ev))
	htmlBody, err := mailHTML(ev)
	if err != nil {
		return false, err
	}
	m.AddAlternativeString(mail.TypeTextHTML, htmlBody)

	tc := s.TLS
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if tc.ServerName == "" {
		tc = tc.Clone()
		tc.ServerName = host
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	opts := []mail.Option{mail.WithTLSPolicy(mail.TLSMandatory), mail.WithPort(port), mail.WithTLSConfig(tc), mail.WithTimeout(timeout)}
	if s.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(s.Username), mail.WithPassword(s.Password))
	}
	c, err := mail.NewClient(host, opts...)
	if err != nil {
		return false, fmt.Errorf("smtp client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return true, fmt.Errorf("smtp send: %w", err)
	}
	return false, nil
}

func mailSubject(ev Event) string {
	parts := []string{"[IRU]", strings.ReplaceAll(ev.Kind, "_", " ")}
	if ev.Severity != "" {
		parts = append(parts, "("+ev.Severity+")")
	}
	if ev.IncidentID != "" {
		parts = append(parts, ev.IncidentID)
	}
	if ev.Asset != "" {
		parts = append(parts, "on", ev.Asset)
	}
	return oneLineText(strings.Join(parts, " "))
}

// oneLineText keeps header text on one line.
func oneLineText(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func mailFields(ev Event) [][2]string {
	var out [][2]string
	for _, kv := range [][2]string{{"Incident", ev.IncidentID}, {"Severity", ev.Severity}, {"Asset", ev.Asset},
		{"Playbook", ev.Playbook}, {"Phase", ev.Phase}, {"At", ev.At.UTC().Format(time.RFC3339)}} {
		if kv[1] != "" {
			out = append(out, kv)
		}
	}
	return out
}

func mailText(ev Event) string {
	var b strings.Builder
	b.WriteString(ev.Summary)
	b.WriteString("\n\n")
	for _, kv := range mailFields(ev) {
		fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
	}
	if ev.Link != "" {
		fmt.Fprintf(&b, "\nOpen the incident: %s\n", ev.Link)
	}
	return b.String()
}

// mailPage is the HTML body; html/template escapes every value (alert and
// playbook text included).
var mailPage = template.Must(template.New("mail").Parse(`<!DOCTYPE html>
<html><body>
<p>{{ .Summary }}</p>
<table>{{ range .Fields }}<tr><th align="left">{{ index . 0 }}</th><td>{{ index . 1 }}</td></tr>{{ end }}</table>
{{ if .Link }}<p><a href="{{ .Link }}">Open the incident</a></p>{{ end }}
</body></html>
`))

func mailHTML(ev Event) (string, error) {
	var b strings.Builder
	err := mailPage.Execute(&b, struct {
		Summary string
		Fields  [][2]string
		Link    string
	}{ev.Summary, mailFields(ev), ev.Link})
	if err != nil {
		return "", fmt.Errorf("mail html: %w", err)
	}
	return b.String(), nil
}
