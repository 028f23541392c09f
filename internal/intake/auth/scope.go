package auth

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Scope limits what a detector may raise alerts about. An empty list
// leaves that dimension open. Patterns are path.Match globs ("web-*",
// "db-?"); an account pattern with a slash matches "realm/username" when
// the alert names a realm, one without matches the username alone.
type Scope struct {
	// Assets are the canonical asset names (or, for an asset the
	// inventory does not know, the name the detector sent) the detector
	// may report on.
	Assets []string `yaml:"assets,omitempty" json:"assets,omitempty"`
	// Accounts are the accounts its alerts may name (see AccountLabels).
	Accounts []string `yaml:"accounts,omitempty" json:"accounts,omitempty"`
}

// AccountLabels are the labels that name an account, as the parsers
// flatten them (Alertmanager and generic labels, Falco's user.name, Wazuh's
// data.srcuser and data.dstuser). The playbooks act on "username".
var AccountLabels = []string{"username", "user", "account", "user.name", "user.loginname", "data.srcuser", "data.dstuser"}

// RealmLabel is the label naming an account's realm.
const RealmLabel = "realm"

// Validate checks the patterns.
func (s Scope) Validate() error {
	var errs []error
	for _, list := range []struct {
		name string
		pats []string
	}{{"assets", s.Assets}, {"accounts", s.Accounts}} {
		for _, p := range list.pats {
			if strings.TrimSpace(p) == "" {
				errs = append(errs, fmt.Errorf("scope.%s: empty pattern", list.name))
				continue
			}
			if _, err := path.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("scope.%s: pattern %q: %w", list.name, p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ScopeError says why an alert is outside a detector's scope.
type ScopeError struct {
	Detector string
	// What is "asset" or "account"; Value what the alert named.
	What, Value string
}

// Error implements error.
func (e *ScopeError) Error() string {
	return fmt.Sprintf("%s %q is outside the scope of detector %q", e.What, e.Value, e.Detector)
}

// Check returns a [*ScopeError] when the alert about asset, with labels,
// is outside the scope of detector; nil when it is inside.
func (s Scope) Check(detector, asset string, labels map[string]string) error {
	if len(s.Assets) > 0 && !matchAny(s.Assets, asset) {
		return &ScopeError{Detector: detector, What: "asset", Value: asset}
	}
	if len(s.Accounts) == 0 {
		return nil
	}
	realm := labels[RealmLabel]
	for _, l := range AccountLabels {
		name, ok := labels[l]
		if !ok || strings.TrimSpace(name) == "" {
			continue
		}
		qualified := name
		if realm != "" {
			qualified = realm + "/" + name
		}
		if !slices.ContainsFunc(s.Accounts, func(p string) bool {
			if strings.Contains(p, "/") {
				return realm != "" && match(p, qualified)
			}
			return match(p, name)
		}) {
			return &ScopeError{Detector: detector, What: "account", Value: qualified}
		}
	}
	return nil
}

func matchAny(pats []string, v string) bool {
	return slices.ContainsFunc(pats, func(p string) bool { return match(p, v) })
}

func match(p, v string) bool {
	ok, err := path.Match(p, v)
	return err == nil && ok
}
