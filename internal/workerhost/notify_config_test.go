package workerhost

import (
	"slices"
	"testing"

	"github.com/iru-responder/responder/internal/notify"
)

// TestNotifyConfigEmail: the SMTP settings make an e-mail channel whose
// recipients are the incident contacts by event and severity.
func TestNotifyConfigEmail(t *testing.T) {
	if ch := (NotifyConfig{}).Channels(); len(ch) != 0 {
		t.Fatalf("no settings: channels %+v", ch)
	}
	ch := NotifyConfig{SMTPAddr: "mail.example.org:587", SMTPUsername: "iru", SMTPPassword: "pw", SMTPFrom: "iru@example.org",
		MailSecurityTeam: []string{"sec@example.org"}, MailIncidentResponse: []string{"ir@example.org"}, MailCompliance: []string{"legal@example.org"}}.Channels()
	if len(ch) != 1 || ch[0].Kind != "smtp" || ch[0].SMTP == nil || ch[0].SMTP.Addr != "mail.example.org:587" || ch[0].SMTP.Password != "pw" {
		t.Fatalf("channels %+v", ch)
	}
	tests := []struct {
		ev   notify.Event
		want []string
	}{
		{notify.Event{Kind: notify.IncidentOpened, Severity: "critical"}, []string{"sec@example.org", "ir@example.org"}},
		{notify.Event{Kind: notify.IncidentOpened, Severity: "medium"}, []string{"sec@example.org"}},
		{notify.Event{Kind: notify.ComplianceDeadline, Severity: "high"}, []string{"sec@example.org", "legal@example.org"}},
		{notify.Event{Kind: notify.IncidentClosed}, []string{"sec@example.org", "legal@example.org"}},
	}
	for _, tt := range tests {
		if got := ch[0].SMTP.Recipients(tt.ev); !slices.Equal(got, tt.want) {
			t.Errorf("%s/%s: recipients %v, want %v", tt.ev.Kind, tt.ev.Severity, got, tt.want)
		}
	}
}
