package keycloak

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config is how the worker reaches Keycloak. Load it with the project's
// config loader (internal/config.Load), which reads the env tags below.
type Config struct {
	URL          string        `env:"IRU_KEYCLOAK_URL" doc:"Base URL of Keycloak without /auth (e.g. https://sso.example.org); no default, the lab sets it."`
	Realm        string        `env:"IRU_KEYCLOAK_REALM" envDefault:"iru" doc:"Realm the response actions act on when a step names none."`
	ClientID     string        `env:"IRU_KEYCLOAK_CLIENT_ID" envDefault:"iru-worker" doc:"Confidential client whose service account the worker uses (needs realm-management roles: view/manage users, clients, realm and events)."`
	ClientSecret string        `env:"IRU_KEYCLOAK_CLIENT_SECRET" secret:"true" doc:"Secret of IRU_KEYCLOAK_CLIENT_ID."`
	TokenRealm   string        `env:"IRU_KEYCLOAK_TOKEN_REALM" doc:"Realm where the service account lives (master for a cross-realm admin client); empty means IRU_KEYCLOAK_REALM."`
	CAFile       string        `env:"IRU_KEYCLOAK_CA_FILE" doc:"PEM file of an extra CA that signs Keycloak's certificate; system roots are kept."`
	Timeout      time.Duration `env:"IRU_KEYCLOAK_TIMEOUT" envDefault:"15s" doc:"Timeout of one Keycloak HTTP call; a call that times out is retried by the workflow."`
	DrillRealms  []string      `env:"IRU_KEYCLOAK_DRILL_REALMS" envSeparator:"," doc:"Realms where realm-wide actions (kc.revoke_realm, kc.collect_events without a user) may run in a drill. Users and clients are drill targets when they carry the attribute iru_drill_target=true."`
	// AllowedRealms, ProtectedUsers and ProtectedRoles bound what an alert
	// can make the kc.* actions touch (see protect.go).
	AllowedRealms  []string `env:"IRU_KEYCLOAK_ALLOWED_REALMS" envSeparator:"," doc:"Realms the kc.* actions may act in, comma separated; any other realm is refused outright (Precondition), whatever an alert names. Empty: IRU_KEYCLOAK_REALM only. The master realm is refused unless listed, and its accounts are always protected."`
	ProtectedUsers []string `env:"IRU_KEYCLOAK_PROTECTED_USERS" envSeparator:"," doc:"Accounts (username, or realm/username) that are protected besides holders of a protected role, service accounts and master-realm accounts: disabling them, logging them out or ending their sessions needs the approval of 2 ir-admins."`
	ProtectedRoles []string `env:"IRU_KEYCLOAK_PROTECTED_ROLES" envSeparator:"," envDefault:"ir-*,admin" doc:"Realm roles (a trailing * matches a prefix) whose holders are protected accounts, effective roles included; holders of any realm-management client role are always protected."`
}

// tokenRealm returns the realm the service account logs in to.
func (c Config) tokenRealm() string {
	if c.TokenRealm != "" {
		return c.TokenRealm
	}
	return c.Realm
}

// Validate checks the configuration (it implements internal/config.Validator).
func (c *Config) Validate() error {
	var p []error
	if c.URL == "" {
		p = append(p, errors.New("IRU_KEYCLOAK_URL: must be set"))
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p = append(p, fmt.Errorf("IRU_KEYCLOAK_URL=%q: want an http(s) URL", c.URL))
	}
	if !validSegment(c.Realm) {
		p = append(p, fmt.Errorf("IRU_KEYCLOAK_REALM=%q: want a realm name", c.Realm))
	}
	if c.TokenRealm != "" && !validSegment(c.TokenRealm) {
		p = append(p, fmt.Errorf("IRU_KEYCLOAK_TOKEN_REALM=%q: want a realm name", c.TokenRealm))
	}
	if c.ClientID == "" {
		p = append(p, errors.New("IRU_KEYCLOAK_CLIENT_ID: must be set"))
	}
	if c.ClientSecret == "" {
		p = append(p, errors.New("IRU_KEYCLOAK_CLIENT_SECRET: must be set"))
	}
	if c.Timeout <= 0 {
		p = append(p, fmt.Errorf("IRU_KEYCLOAK_TIMEOUT=%s: must be positive", c.Timeout))
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			p = append(p, fmt.Errorf("IRU_KEYCLOAK_CA_FILE=%q: %w", c.CAFile, err))
		}
	}
	for _, r := range c.AllowedRealms {
		if !validSegment(r) {
			p = append(p, fmt.Errorf("IRU_KEYCLOAK_ALLOWED_REALMS: %q is not a realm name", r))
		}
	}
	for _, u := range c.ProtectedUsers {
		if realm, name, ok := strings.Cut(u, "/"); (ok && (!validSegment(realm) || name == "")) || strings.TrimSpace(u) == "" {
			p = append(p, fmt.Errorf("IRU_KEYCLOAK_PROTECTED_USERS: %q is not a username or realm/username", u))
		}
	}
	for _, r := range c.ProtectedRoles {
		if strings.TrimSpace(strings.TrimSuffix(r, "*")) == "" {
			p = append(p, fmt.Errorf("IRU_KEYCLOAK_PROTECTED_ROLES: %q is not a role name or prefix*", r))
		}
	}
	for _, r := range c.DrillRealms {
		if !validSegment(r) {
			p = append(p, fmt.Errorf("IRU_KEYCLOAK_DRILL_REALMS: %q is not a realm name", r))
		}
	}
	return errors.Join(p...)
}
