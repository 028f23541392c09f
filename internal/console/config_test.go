package console

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := Config{URL: "https://iru.example:8443/console", ClientID: "iru-console", SessionTTL: 8 * time.Hour, SessionIdle: 30 * time.Minute, PollInterval: time.Second}
	tests := []struct {
		name string
		mut  func(*Config)
		want string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"trailing slash", func(c *Config) { c.URL += "/" }, ""},
		{"disabled", func(c *Config) { *c = Config{} }, ""},
		{"plain http (the cookie is Secure)", func(c *Config) { c.URL = "http://iru.example/console" }, "want an https URL"},
		{"plain http on a private address", func(c *Config) { c.URL = "http://10.0.0.5:8080/console" }, "want an https URL"},
		{"plain http on a name starting with localhost", func(c *Config) { c.URL = "http://localhost.evil.example/console" }, "want an https URL"},
		{"plain http on loopback (the local stack)", func(c *Config) { c.URL = "http://127.0.0.1:8080/console" }, ""},
		{"plain http on localhost", func(c *Config) { c.URL = "http://localhost:8080/console" }, ""},
		{"plain http on IPv6 loopback", func(c *Config) { c.URL = "http://[::1]:8080/console" }, ""},
		{"another path", func(c *Config) { c.URL = "https://iru.example/ui" }, "the path must be /console"},
		{"query", func(c *Config) { c.URL = "https://iru.example/console?x=1" }, "no user, query or fragment"},
		{"no client", func(c *Config) { c.ClientID = "" }, "IRU_CONSOLE_CLIENT_ID"},
		{"idle longer than the TTL", func(c *Config) { c.SessionIdle = 9 * time.Hour }, "IRU_CONSOLE_SESSION_IDLE"},
		{"poll too fast", func(c *Config) { c.PollInterval = time.Millisecond }, "IRU_CONSOLE_POLL_INTERVAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mut(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
