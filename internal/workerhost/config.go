package workerhost

import (
	"errors"

	"github.com/iru-responder/responder/activities/intakekeys"
	kcact "github.com/iru-responder/responder/activities/keycloak"
	"github.com/iru-responder/responder/activities/probe"
	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/notify"
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
	// SecretsDir receives minted secrets (rotated client secrets, tokens).
	SecretsDir string `env:"IRU_SECRETS_DIR" envDefault:".iru/secrets" doc:"Folder (0700) where rotated secrets are written, one 0600 file per version; activities return references to them."`
	// PlaybooksDir, if set, loads the playbooks from a folder instead of the embedded ones.
	PlaybooksDir string `env:"IRU_PLAYBOOKS_DIR" doc:"Load playbooks from this folder instead of the embedded ones; the worker refuses to start if one is invalid."`
	// UIBaseURL links notifications to the Web UI.
	UIBaseURL string `env:"IRU_UI_URL" doc:"Base URL of the Temporal Web UI, for links in notifications."`
}

// NotifyConfig configures the notification channels.
type NotifyConfig struct {
	WebhookURL    string `env:"IRU_NOTIFY_WEBHOOK_URL" doc:"Generic JSON webhook that receives incident notifications."`
	WebhookSecret string `env:"IRU_NOTIFY_WEBHOOK_SECRET" secret:"true" doc:"HMAC-SHA256 key signing webhook bodies (X-IRU-Signature)."`
	SlackURL      string `env:"IRU_NOTIFY_SLACK_URL" secret:"true" doc:"Slack-compatible incoming webhook URL (the URL is the credential)."`
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
	return ch
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	return errors.Join(c.Worker.Validate(), c.Keys.Validate(), c.Codec.Validate(), c.Stores.Validate(), c.Keycloak.Validate(), c.PVE.Validate(), c.Probe.Validate(), c.IntakeKeys.Validate())
}
