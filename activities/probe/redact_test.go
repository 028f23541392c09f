package probe

import (
	"strings"
	"testing"
)

// TestTargetRedacted checks that a probe target's credentials (user
// information, a token in the query or path) never reach the text the
// probe returns (timeline, ledger) or its errors.
func TestTargetRedacted(t *testing.T) {
	const secret = "s3cr3tT0kenValue"
	for _, raw := range []string{
		"https://admin:" + secret + "@10.0.0.5:8443/health?token=" + secret,
		"https://10.0.0.5/hooks/" + secret + "/health",
	} {
		tg, err := parseTarget(raw)
		if err != nil {
			t.Fatal(err)
		}
		if s := tg.String(); strings.Contains(s, secret) || !strings.Contains(s, "10.0.0.5") {
			t.Errorf("target %q prints as %q", raw, s)
		}
	}
	for _, raw := range []string{"ftp://admin:" + secret + "@10.0.0.5/", "https://admin:" + secret + "@[::1/x"} {
		_, err := parseTarget(raw)
		if err == nil {
			t.Fatalf("%q parsed", raw)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q holds the secret", err)
		}
	}
}
