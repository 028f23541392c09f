package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// mailbox is an SMTP server in the test process: STARTTLS offered, AUTH
// PLAIN only after it, one user.
type mailbox struct {
	mu       sync.Mutex
	messages []received
}

type received struct {
	from    string
	to      []string
	tls     bool
	user    string
	message *mail.Message
	body    []byte
}

type mailSession struct {
	box  *mailbox
	conn *smtp.Conn
	cur  received
}

func (b *mailbox) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &mailSession{box: b, conn: c}, nil
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "iru" || pass != "mail-secret" {
			return errors.New("invalid credentials")
		}
		s.cur.user = user
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.cur.user == "" {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	s.cur.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		return err
	}
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.cur.message, s.cur.body = m, body
	s.box.mu.Lock()
	s.box.messages = append(s.box.messages, s.cur)
	s.box.mu.Unlock()
	user := s.cur.user
	s.cur = received{user: user}
	return nil
}

func (s *mailSession) Reset()        { s.cur = received{user: s.cur.user} }
func (s *mailSession) Logout() error { return nil }

func (b *mailbox) all() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.messages)
}

// startMailbox serves a mailbox on loopback with a certificate of a fresh
// CA; it returns the address and a pool trusting that CA.
func startMailbox(t *testing.T, starttls bool) (*mailbox, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mail.test"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	box := &mailbox{}
	srv := smtp.NewServer(box)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	if starttls {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return box, l.Addr().String(), pool
}

// seedContacts are the seed's incident contacts as e-mail routes.
func seedContacts() []MailRoute {
	return ContactRoutes([]string{"security-team@example.org"}, []string{"ir@example.org"}, []string{"compliance@example.org", "security-team@example.org"})
}

func mailChannel(addr string, pool *x509.CertPool, password string) Channel {
	return Channel{Name: "mail", Kind: "smtp", SMTP: &SMTP{Addr: addr, Username: "iru", Password: password, From: "iru@example.org",
		Routes: seedContacts(), TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Timeout: 5 * time.Second}}
}

// parts returns the text and HTML parts of a multipart/alternative body.
func parts(t *testing.T, r received) (text, html string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(r.message.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q (%v), want multipart/alternative", r.message.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(strings.NewReader(string(r.body)), params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(decodePart(p))
		if err != nil {
			t.Fatal(err)
		}
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	return text, html
}

// TestEmailChannel sends events through an SMTP channel to a real SMTP
// server in the test process: the session is upgraded with STARTTLS and
// authenticated; each event reaches the recipients of its event and
// severity; the message has a text and an HTML part with the incident's
// link, and detector text in the HTML is escaped.
func TestEmailChannel(t *testing.T) {
	box, addr, pool := startMailbox(t, true)
	n := &Notifier{Channels: []Channel{mailChannel(addr, pool, "mail-secret")}, MaxAttempts: 1}
	at := time.Date(2026, 12, 5, 17, 0, 0, 0, time.UTC)
	events := []struct {
		ev     Event
		wantTo []string
	}{
		{Event{Kind: IncidentOpened, IncidentID: "INC-20261205-0a1b2c3d", Severity: "critical", Asset: "web-1", Playbook: "container-compromise",
			Summary: `shell in <script>alert(1)</script> web-1`, Link: "https://iru.example.org/incidents/INC-20261205-0a1b2c3d", At: at},
			[]string{"security-team@example.org", "ir@example.org"}},
		{Event{Kind: IncidentOpened, IncidentID: "INC-2", Severity: "low", Asset: "db-1", Summary: "low alert", At: at},
			[]string{"security-team@example.org"}},
		{Event{Kind: ComplianceDeadline, IncidentID: "INC-3", Severity: "high", Summary: "GDPR deadline in 24h", At: at},
			[]string{"security-team@example.org", "compliance@example.org"}},
	}
	for _, e := range events {
		if _, err := n.Send(context.Background(), e.ev); err != nil {
			t.Fatalf("%s: %v", e.ev.IncidentID, err)
		}
	}
	got := box.all()
	if len(got) != len(events) {
		t.Fatalf("%d messages, want %d", len(got), len(events))
	}
	for i, e := range events {
		r := got[i]
		if !r.tls || r.user != "iru" || r.from != "iru@example.org" {
			t.Errorf("message %d: tls=%v user=%q from=%q, want STARTTLS, AUTH as iru", i, r.tls, r.user, r.from)
		}
		slices.Sort(r.to)
		want := slices.Sorted(slices.Values(e.wantTo))
		if !slices.Equal(r.to, want) {
			t.Errorf("message %d (%s %s): to %v, want %v", i, e.ev.Kind, e.ev.Severity, r.to, want)
		}
		if subj := r.message.Header.Get("Subject"); !strings.Contains(subj, e.ev.IncidentID) {
			t.Errorf("message %d: subject %q", i, subj)
		}
	}
	text, html := parts(t, got[0])
	for _, want := range []string{"shell in <script>alert(1)</script> web-1", "Severity: critical", "Open the incident: https://iru.example.org/incidents/INC-20261205-0a1b2c3d"} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(html, `<a href="https://iru.example.org/incidents/INC-20261205-0a1b2c3d">`) || strings.Contains(html, "<script>") ||
		!strings.Contains(html, "&lt;script&gt;") {
		t.Errorf("html part:\n%s", html)
	}
}

// TestEmailRefusesWithoutSTARTTLSOrWithWrongPassword: a server that
// offers no STARTTLS gets nothing (the password never crosses in clear),
// and a wrong password delivers nothing.
func TestEmailRefusesWithoutSTARTTLSOrWithWrongPassword(t *testing.T) {
	ev := Event{Kind: IncidentOpened, IncidentID: "INC-9", Severity: "critical", Summary: "s", At: time.Now()}
	plain, addr, pool := startMailbox(t, false)
	n := &Notifier{Channels: []Channel{mailChannel(addr, pool, "mail-secret")}, MaxAttempts: 1}
	if _, err := n.Send(context.Background(), ev); err == nil {
		t.Error("sent over a server without STARTTLS")
	}
	if len(plain.all()) != 0 {
		t.Error("a message reached the server without TLS")
	}
	box, addr, pool := startMailbox(t, true)
	n = &Notifier{Channels: []Channel{mailChannel(addr, pool, "wrong")}, MaxAttempts: 1}
	if _, err := n.Send(context.Background(), ev); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong password: err %v (must fail and not echo the password)", err)
	}
	if len(box.all()) != 0 {
		t.Error("a message was accepted with a wrong password")
	}
}

// decodePart undoes a part's Content-Transfer-Encoding.
func decodePart(p *multipart.Part) io.Reader {
	switch strings.ToLower(p.Header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		return quotedprintable.NewReader(p)
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, p)
	}
	return p
}
