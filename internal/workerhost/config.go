package workerhost

import (
	"errors"
	"fmt"
	"os"

	"github.com/iru-responder/responder/activities/intakekeys"
	kcact "github.com/iru-responder/responder/activities/keycloak"
	"github.com/iru-responder/responder/activities/probe"
	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/notify"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/internal/stores"
)

// Config is the whole configuration of the worker binary.
type Config struct {
	config.Worker
	Keys     keys.Config
	Codec    codec.Config
	Stores   stores.Config
	Keycloak kcact.Config
	PVE      pveact.Config
	Probe    probe.Config
	Notify   NotifyConfig
	// IntakeKeys configures keys.rotate_intake_keys.
	IntakeKeys intakekeys.Config
	// Shared, when set, is where keys.rotate_intake_keys writes the
	// detectors (the store every API server reads) instead of the file.
	Shared sharedstate.Config
	// SecretsDir receives minted secrets (rotated client secrets, tokens).
	SecretsDir string `env:"IRU_SECRETS_DIR" envDefault:".iru/secrets" doc:"Folder (0700) where rotated secrets are written, one 0600 file per version; activities return references to them."`
	// PlaybooksDir, if set, loads the playbooks from a folder instead of the embedded ones.
	PlaybooksDir string `env:"IRU_PLAYBOOKS_DIR" doc:"Load playbooks from this folder instead of the embedded ones; the worker refuses to start if one is invalid."`
	// UIBaseURL links notifications to the Web UI.
	UIBaseURL string `env:"IRU_UI_URL" doc:"Base URL of the Temporal Web UI, for links in notifications."`
	// Decisions says which keys prove responder decisions to the workflows.
	Decisions DecisionKeysConfig
	// Controls configures the control checks.
	Controls ControlsConfig
}

// DecisionKeysConfig is where the worker takes the public keys that verify
// the API server's decision statements; workflows read them through the
// decision.keys local activity (at start and on the refresh signal), never
// from a message.
type DecisionKeysConfig struct {
	File        string `env:"IRU_DECISION_KEYS_FILE" doc:"PEM file of trusted decision public keys (PUBLIC KEY blocks; optional Not-Before/Not-After RFC 3339 headers give each key's validity window for rotation). Re-read on every refresh."`
	TrustHSMKey bool   `env:"IRU_DECISION_TRUST_HSM_KEY" envDefault:"true" doc:"Also trust the decision key of the worker's own HSM token (the API server's key when both use the same token, as in the local stack)."`
}

// NotifyConfig configures the notification channels.
type NotifyConfig struct {
	WebhookURL    string `env:"IRU_NOTIFY_WEBHOOK_URL" doc:"Generic JSON webhook that receives incident notifications."`
	WebhookSecret string `env:"IRU_NOTIFY_WEBHOOK_SECRET" secret:"true" doc:"HMAC-SHA256 key signing webhook bodies (X-IRU-Signature)."`
	SlackURL      string `env:"IRU_NOTIFY_SLACK_URL" secret:"true" doc:"Slack-compatible incoming webhook URL (the URL is the credential)."`
	// SMTP* configure the e-mail channel (STARTTLS required).
	SMTPAddr     string `env:"IRU_NOTIFY_SMTP_ADDR" doc:"SMTP submission server host:port for e-mail notifications (STARTTLS required, AUTH PLAIN when a username is set); empty: no e-mail."`
	SMTPUsername string `env:"IRU_NOTIFY_SMTP_USERNAME" doc:"SMTP AUTH user name."`
	SMTPPassword string `env:"IRU_NOTIFY_SMTP_PASSWORD" secret:"true" doc:"SMTP AUTH password."`
	SMTPFrom     string `env:"IRU_NOTIFY_SMTP_FROM" doc:"Sender address of e-mail notifications."`
	// Mail* are the incident contacts' addresses (see notify.ContactRoutes).
	MailSecurityTeam     []string `env:"IRU_NOTIFY_MAIL_SECURITY_TEAM" doc:"Comma-separated addresses of the security team: every notification."`
	MailIncidentResponse []string `env:"IRU_NOTIFY_MAIL_INCIDENT_RESPONSE" doc:"Comma-separated addresses of incident response: openings, escalations and approvals of high and critical incidents."`
	MailCompliance       []string `env:"IRU_NOTIFY_MAIL_COMPLIANCE" doc:"Comma-separated addresses of compliance: compliance deadlines and closings."`
}

// Channels returns the configured channels.
func (n NotifyConfig) Channels() []notify.Channel {
	var ch []notify.Channel
	if n.WebhookURL != "" {
		ch = append(ch, notify.Channel{Name: "webhook", Kind: "webhook", URL: n.WebhookURL, Secret: n.WebhookSecret})
	}
	if n.SlackURL != "" {
		ch = append(ch, notify.Channel{Name: "slack", Kind: "slack", URL: n.SlackURL})
	}
	if n.SMTPAddr != "" {
		ch = append(ch, notify.Channel{Name: "email", Kind: "smtp", SMTP: &notify.SMTP{Addr: n.SMTPAddr, Username: n.SMTPUsername,
			Password: n.SMTPPassword, From: n.SMTPFrom, Routes: notify.ContactRoutes(n.MailSecurityTeam, n.MailIncidentResponse, n.MailCompliance)}})
	}
	return ch
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var both error
	if c.Shared.Enabled() && c.IntakeKeys.DetectorsFile != "" {
		both = errors.New("IRU_INTAKE_DETECTORS_FILE and IRU_SHARED_STATE_DSN: the detectors live in one place; unset the file (copy it in with `starter keys import-detectors`)")
	}
	if c.Codec.KeyStore == codec.KeyStoreShared && !c.Shared.Enabled() {
		both = errors.Join(both, errors.New("IRU_CODEC_KEY_STORE=shared: set IRU_SHARED_STATE_DSN (the database that holds the keys)"))
	}
	return errors.Join(c.Worker.Validate(), c.Keys.Validate(), c.Codec.Validate(), c.Stores.Validate(), c.Keycloak.Validate(), c.PVE.Validate(), c.Probe.Validate(), c.IntakeKeys.Validate(), c.Shared.Validate(), c.Decisions.Validate(), c.Controls.Validate(), both)
}

// Validate implements config.Validator: the key file, if set, must parse.
func (d *DecisionKeysConfig) Validate() error {
	if d.File == "" {
		if !d.TrustHSMKey {
			return errors.New("IRU_DECISION_TRUST_HSM_KEY=false needs IRU_DECISION_KEYS_FILE: no key would verify decisions")
		}
		return nil
	}
	if _, err := d.load(); err != nil {
		return fmt.Errorf("IRU_DECISION_KEYS_FILE=%s: %w", d.File, err)
	}
	return nil
}

// load reads the key file (an empty set when none is configured).
func (d *DecisionKeysConfig) load() (decision.KeySet, error) {
	if d.File == "" {
		return decision.KeySet{}, nil
	}
	b, err := os.ReadFile(d.File)
	if err != nil {
		return decision.KeySet{}, err
	}
	return decision.ParsePEM(b)
}

// Validate implements config.Validator: the controls file, if set, must load.
func (c *ControlsConfig) Validate() error {
	if c.File == "" {
		return nil
	}
	_, err := c.LoadControls()
	return err
}
