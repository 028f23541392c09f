package controls

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iru-responder/responder/activities"
	kcact "github.com/iru-responder/responder/activities/keycloak"
	"github.com/iru-responder/responder/controls"
)

// Keycloak authenticators that ask for a one-time code.
var otpAuthenticators = []string{"auth-otp-form", "direct-grant-validate-otp"}

// requiredActionTOTP is the required action that makes a user set up and present an OTP.
const requiredActionTOTP = "CONFIGURE_TOTP"

// realms reads each realm of the control's targets ("" is the configured realm).
func (a *Activities) realms(ctx context.Context, c controls.Control, roles []string) ([]kcact.RealmSecurity, error) {
	if a.Keycloak == nil {
		return nil, fmt.Errorf("keycloak client: %w", errNotConfigured)
	}
	targets := c.Targets
	if len(targets) == 0 {
		targets = []string{""}
	}
	var out []kcact.RealmSecurity
	for _, t := range targets {
		rs, err := a.Keycloak.ReadRealmSecurity(ctx, t, roles)
		if err != nil {
			return nil, err
		}
		out = append(out, rs)
	}
	return out, nil
}

func realmTarget(r kcact.RealmSecurity) string { return "keycloak/" + r.Realm }

// otpRoles returns the realm roles whose holders a flow always asks for a
// one-time code: a CONDITIONAL subflow whose only condition is
// conditional-user-role (not negated) and which REQUIRES an OTP
// authenticator; all is true when the flow requires an OTP of everyone.
// A subflow with another condition (conditional-user-configured: only
// users who set up OTP) does not count.
func otpRoles(rows []kcact.FlowExecution) (roles []string, all bool) {
	for i, r := range rows {
		if r.Provider != "" && slices.Contains(otpAuthenticators, r.Provider) && r.Requirement == "REQUIRED" && r.Level == 0 {
			all = true
		}
		if r.Subflow == "" || r.Requirement != "CONDITIONAL" {
			continue
		}
		var conds []kcact.FlowExecution
		otp := false
		for _, ch := range rows[i+1:] {
			if ch.Level <= r.Level {
				break
			}
			if ch.Level != r.Level+1 {
				continue
			}
			switch {
			case strings.HasPrefix(ch.Provider, "conditional-"):
				conds = append(conds, ch)
			case slices.Contains(otpAuthenticators, ch.Provider) && ch.Requirement == "REQUIRED":
				otp = true
			}
		}
		if !otp || len(conds) != 1 || conds[0].Provider != "conditional-user-role" || conds[0].Requirement == "DISABLED" {
			continue
		}
		if cfg := conds[0].Config; cfg["negate"] != "true" && cfg["condUserRole"] != "" && !slices.Contains(roles, cfg["condUserRole"]) {
			roles = append(roles, cfg["condUserRole"])
		}
	}
	return roles, all
}

func checkOTPAdmins(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	rs, err := a.realms(ctx, c, c.Params.Roles)
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	type observed struct {
		Realm           string
		Flows           []flowOTP
		RequiredActions []string
		Users           []kcact.UserSecurity
	}
	var obs []observed
	for _, r := range rs {
		o := observed{Realm: r.Realm, RequiredActions: r.RequiredActions, Users: r.Users}
		for _, f := range []string{r.BrowserFlow, r.DirectGrantFlow} {
			if f == "" || slices.ContainsFunc(o.Flows, func(x flowOTP) bool { return x.Flow == f }) {
				continue
			}
			roles, all := otpRoles(r.Flows[f])
			o.Flows = append(o.Flows, flowOTP{Flow: f, Roles: roles, All: all})
		}
		obs = append(obs, o)
		totpAction := slices.Contains(r.RequiredActions, requiredActionTOTP)
		for _, u := range r.Users {
			if !u.Enabled {
				continue
			}
			v.targets++
			held := slices.DeleteFunc(slices.Clone(u.Roles), func(x string) bool { return !slices.Contains(c.Params.Roles, x) })
			if totpAction && slices.Contains(u.RequiredActions, requiredActionTOTP) {
				continue
			}
			var gaps []string
			for _, f := range o.Flows {
				if f.All || slices.ContainsFunc(f.Roles, func(x string) bool { return slices.Contains(u.Roles, x) }) {
					continue
				}
				gaps = append(gaps, fmt.Sprintf("flow %q asks an OTP only of holders of %s", f.Flow, orNoneList(f.Roles)))
			}
			if len(o.Flows) == 0 {
				gaps = append(gaps, "no browser or direct grant flow is bound")
			}
			if len(gaps) == 0 {
				continue
			}
			v.fail(activities.ControlFinding{Target: realmTarget(r) + "/user/" + u.Username,
				Setting:  "authentication flows " + flowNames(o.Flows) + " and required action " + requiredActionTOTP,
				Observed: fmt.Sprintf("%s holds %s; %s; no required action %s", u.Username, strings.Join(held, ", "), strings.Join(gaps, "; "), requiredActionTOTP),
				Expected: "an OTP is required of every holder of " + strings.Join(c.Params.Roles, ", ")})
		}
		if len(r.Users) == 0 {
			v.targets++ // the realm was read: nobody holds the roles
		}
	}
	return obs, v, nil
}

// flowOTP is what a bound flow asks an OTP of.
type flowOTP struct {
	Flow  string
	Roles []string `json:",omitempty"`
	All   bool     `json:",omitempty"`
}

func flowNames(fs []flowOTP) string {
	var s []string
	for _, f := range fs {
		s = append(s, fmt.Sprintf("%q", f.Flow))
	}
	return strings.Join(s, ", ")
}

func orNoneList(s []string) string {
	if len(s) == 0 {
		return "(no role)"
	}
	return strings.Join(s, ", ")
}

func checkTokenLifespan(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	rs, err := a.realms(ctx, c, nil)
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	var obs []map[string]any
	maxSec := int(c.Params.MaxLifespan / time.Second)
	for _, r := range rs {
		v.targets++
		obs = append(obs, map[string]any{"realm": r.Realm, "accessTokenLifespan": r.AccessTokenLifespan})
		if r.AccessTokenLifespan <= 0 || r.AccessTokenLifespan > maxSec {
			v.fail(activities.ControlFinding{Target: realmTarget(r), Setting: "accessTokenLifespan",
				Observed: fmt.Sprintf("%d s", r.AccessTokenLifespan), Expected: fmt.Sprintf("at most %d s (%s)", maxSec, c.Params.MaxLifespan)})
		}
	}
	return obs, v, nil
}

func checkBruteForce(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	rs, err := a.realms(ctx, c, nil)
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	var obs []map[string]any
	for _, r := range rs {
		v.targets++
		obs = append(obs, map[string]any{"realm": r.Realm, "bruteForceProtected": r.BruteForceProtected})
		if !r.BruteForceProtected {
			v.fail(activities.ControlFinding{Target: realmTarget(r), Setting: "bruteForceProtected", Observed: "false", Expected: "true"})
		}
	}
	return obs, v, nil
}

func checkDirectGrants(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	rs, err := a.realms(ctx, c, nil)
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	var obs []map[string]any
	for _, r := range rs {
		obs = append(obs, map[string]any{"realm": r.Realm, "clients": r.Clients})
		for _, cl := range r.Clients {
			if !cl.Enabled || cl.Public || cl.BearerOnly {
				continue
			}
			v.targets++
			if cl.DirectAccessGrants {
				v.fail(activities.ControlFinding{Target: realmTarget(r) + "/client/" + cl.ClientID, Setting: "directAccessGrantsEnabled",
					Observed: fmt.Sprintf("confidential client %s: directAccessGrantsEnabled=true", cl.ClientID), Expected: "false on every confidential client",
					Fix: activities.KCDisableDirectGrants, FixParams: map[string]string{"realm": r.Realm, "client_id": cl.ClientID}})
			}
		}
	}
	return obs, v, nil
}

// policyNames returns the policy names of a Keycloak password policy string
// ("length(12) and notUsername" → length, notUsername).
func policyNames(p string) []string {
	var out []string
	for item := range strings.SplitSeq(p, " and ") {
		name, _, _ := strings.Cut(strings.TrimSpace(item), "(")
		if name != "" {
			out = append(out, name)
		}
	}
	return out
}

func checkPasswordPolicy(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	rs, err := a.realms(ctx, c, nil)
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	var obs []map[string]any
	for _, r := range rs {
		v.targets++
		obs = append(obs, map[string]any{"realm": r.Realm, "passwordPolicy": r.PasswordPolicy})
		have := policyNames(r.PasswordPolicy)
		var missing []string
		for _, p := range c.Params.Policies {
			if !slices.Contains(have, p) {
				missing = append(missing, p)
			}
		}
		if r.PasswordPolicy == "" || len(missing) > 0 {
			v.fail(activities.ControlFinding{Target: realmTarget(r), Setting: "passwordPolicy",
				Observed: fmt.Sprintf("%q", r.PasswordPolicy), Expected: "a password policy including " + orNoneList(c.Params.Policies)})
		}
	}
	return obs, v, nil
}
