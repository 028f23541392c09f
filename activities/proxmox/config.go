package proxmox

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/iru-responder/responder/activities"
)

// Config is how the worker reaches Proxmox VE. Load it with the project's
// config loader (internal/config.Load), which reads the env tags below; the
// lab (internal/lab) exports the same variable names.
type Config struct {
	URL                string        `env:"IRU_PVE_URL" doc:"API base URL with /api2/json and no trailing slash (e.g. https://pve1.example.org:8006/api2/json); no default, the lab sets it."`
	TokenID            string        `env:"IRU_PVE_TOKEN_ID" doc:"API token id, USER@REALM!TOKENID (e.g. iru@pve!responder). Besides its rights on the containers, it needs Sys.Audit and Sys.Modify on /: a firewall isolation puts one rule naming a cluster-wide security group (iru-q-<hash of the allow list>: ACCEPT the allow list, then DROP in and out) at position 0 of the container's rules, and creates that group on its first use."`
	TokenSecret        string        `env:"IRU_PVE_TOKEN_SECRET" secret:"true" doc:"Secret (UUID) of IRU_PVE_TOKEN_ID."`
	CAFile             string        `env:"IRU_PVE_CA_FILE" doc:"PEM file of a certificate or CA to trust for the API (PVE's self-signed pve-root-ca or the node certificate); system roots are kept."`
	InsecureSkipVerify bool          `env:"IRU_PVE_INSECURE_SKIP_VERIFY" envDefault:"false" doc:"DANGEROUS: do not verify the API certificate (anyone on the path can read the token and forge answers). Use IRU_PVE_CA_FILE instead."`
	BackupStorage      string        `env:"IRU_PVE_BACKUP_STORAGE" envDefault:"local" doc:"Storage for vzdump backups when a step names none; also searched for the last clean backup."`
	AllowCIDRs         []string      `env:"IRU_PVE_ALLOW_CIDRS" envSeparator:"," doc:"Management and forensics networks kept reachable (both directions) while a container is isolated, comma separated CIDRs or addresses; added to each step's allow list."`
	DrillTag           string        `env:"IRU_PVE_DRILL_TAG" envDefault:"drill" doc:"In a drill only containers carrying this tag are touched; anything else is refused (Precondition)."`
	TaskPoll           time.Duration `env:"IRU_PVE_TASK_POLL" envDefault:"500ms" doc:"Interval between task status polls (each poll also heartbeats)."`
	HTTPTimeout        time.Duration `env:"IRU_PVE_HTTP_TIMEOUT" envDefault:"30s" doc:"Timeout of one API call; a call that times out is retried by the workflow."`
	LockWait           time.Duration `env:"IRU_PVE_LOCK_WAIT" envDefault:"60s" doc:"How long an action waits for a container lock (snapshot, backup, ...) held by another task before giving up with a retryable error."`
}

var reTokenID = regexp.MustCompile(`^[^\s:/!]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$`)
var reTag = regexp.MustCompile(`(?i)^[a-z0-9_][a-z0-9_\-+.]*$`)
var reStorageID = regexp.MustCompile(`(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$`)

// Validate checks the configuration (it implements internal/config.Validator).
func (c *Config) Validate() error {
	var p []error
	if c.URL == "" {
		p = append(p, errors.New("IRU_PVE_URL: must be set"))
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p = append(p, fmt.Errorf("IRU_PVE_URL=%q: want an http(s) URL", c.URL))
	} else if strings.HasSuffix(c.URL, "/") {
		p = append(p, fmt.Errorf("IRU_PVE_URL=%q: must not end with a slash", c.URL))
	} else if !strings.HasSuffix(u.Path, "/api2/json") {
		p = append(p, fmt.Errorf("IRU_PVE_URL=%q: want the API base ending in /api2/json", c.URL))
	}
	if !reTokenID.MatchString(c.TokenID) {
		p = append(p, fmt.Errorf("IRU_PVE_TOKEN_ID=%q: want USER@REALM!TOKENID", c.TokenID))
	}
	if c.TokenSecret == "" {
		p = append(p, errors.New("IRU_PVE_TOKEN_SECRET: must be set"))
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			p = append(p, fmt.Errorf("IRU_PVE_CA_FILE=%q: %w", c.CAFile, err))
		}
	}
	if c.BackupStorage != "" && !reStorageID.MatchString(c.BackupStorage) {
		p = append(p, fmt.Errorf("IRU_PVE_BACKUP_STORAGE=%q: not a storage id", c.BackupStorage))
	}
	if c.DrillTag != "" && !reTag.MatchString(c.DrillTag) {
		p = append(p, fmt.Errorf("IRU_PVE_DRILL_TAG=%q: not a PVE tag", c.DrillTag))
	}
	if _, err := activities.ParseCIDRList(strings.Join(c.AllowCIDRs, ",")); err != nil {
		p = append(p, fmt.Errorf("IRU_PVE_ALLOW_CIDRS: %w", err))
	}
	if c.TaskPoll < 0 || c.HTTPTimeout < 0 || c.LockWait < 0 {
		p = append(p, errors.New("IRU_PVE_TASK_POLL, IRU_PVE_HTTP_TIMEOUT, IRU_PVE_LOCK_WAIT: must not be negative"))
	}
	return errors.Join(p...)
}
