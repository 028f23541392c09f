package console

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is the console's part of the `starter serve` configuration. The
// console signs people in at the responder API's Keycloak realm
// (IRU_OIDC_ISSUER) with a public client and PKCE.
type Config struct {
	URL          string        `env:"IRU_CONSOLE_URL" doc:"External URL of the console, e.g. https://iru.example:8443/console (its /callback is the redirect URI registered for IRU_CONSOLE_CLIENT_ID at Keycloak); https, or http on a loopback address only (the local stack: browsers keep Secure cookies there); empty: the console is not served."`
	ClientID     string        `env:"IRU_CONSOLE_CLIENT_ID" envDefault:"iru-console" doc:"Public Keycloak client of the console (authorization code flow with PKCE S256)."`
	SessionTTL   time.Duration `env:"IRU_CONSOLE_SESSION_TTL" envDefault:"8h" doc:"Longest life of a console session, whatever its activity."`
	SessionIdle  time.Duration `env:"IRU_CONSOLE_SESSION_IDLE" envDefault:"30m" doc:"A console session unused this long ends."`
	PollInterval time.Duration `env:"IRU_CONSOLE_POLL_INTERVAL" envDefault:"1s" doc:"How often the API server reads an incident watched by console pages (once per incident, whatever the number of pages) to push changes to them."`
}

// Enabled reports whether the console is served.
func (c Config) Enabled() bool { return c.URL != "" }

// Validate checks the configuration; errors name the variable.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var p []error
	if _, err := c.base(); err != nil {
		p = append(p, fmt.Errorf("IRU_CONSOLE_URL=%s: %w", c.URL, err))
	}
	if c.ClientID == "" {
		p = append(p, errors.New("IRU_CONSOLE_CLIENT_ID: must not be empty"))
	}
	if c.SessionTTL <= 0 || c.SessionIdle <= 0 || c.SessionIdle > c.SessionTTL {
		p = append(p, fmt.Errorf("IRU_CONSOLE_SESSION_IDLE=%s, IRU_CONSOLE_SESSION_TTL=%s: both positive, idle at most the TTL", c.SessionIdle, c.SessionTTL))
	}
	if c.PollInterval < 100*time.Millisecond || c.PollInterval > time.Minute {
		p = append(p, fmt.Errorf("IRU_CONSOLE_POLL_INTERVAL=%s: between 100ms and 1m", c.PollInterval))
	}
	return errors.Join(p...)
}

// base parses URL: https (cookies are Secure), or http on a loopback
// address, which browsers treat as a secure context; no query or
// fragment; the path /console.
func (c Config) base() (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(c.URL, "/"))
	switch {
	case err != nil:
		return nil, err
	case u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))):
		return nil, errors.New("want an https URL, or http on a loopback address (the session cookie is Secure)")
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, errors.New("want no user, query or fragment")
	case u.Path != Prefix:
		return nil, fmt.Errorf("the path must be %s (where the API server mounts the console)", Prefix)
	}
	return u, nil
}

// loopback reports whether host is localhost or a loopback IP address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
