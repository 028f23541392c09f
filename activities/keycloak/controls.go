package keycloak

import (
	"context"
	"fmt"
	"net/url"
	"slices"

	"github.com/Nerzal/gocloak/v13"
)

// RealmSecurity is what the control checks (activities/controls) read of a
// realm through the Admin REST API: the realm's security settings, the
// executions of the flows it binds for browser and direct grant logins,
// its clients' grant settings, and the users holding the roles asked for.
type RealmSecurity struct {
	Realm               string
	AccessTokenLifespan int
	BruteForceProtected bool
	PasswordPolicy      string
	OTPPolicyType       string
	BrowserFlow         string
	DirectGrantFlow     string
	// Flows holds the executions of BrowserFlow and DirectGrantFlow, by
	// alias, flattened depth first as the Admin API lists them.
	Flows map[string][]FlowExecution
	// RequiredActions are the enabled required-action providers' aliases.
	RequiredActions []string
	Clients         []ClientSecurity
	// Users are the users holding one of the roles asked for.
	Users []UserSecurity
}

// FlowExecution is one row of a flow's executions.
type FlowExecution struct {
	Level, Index int
	Requirement  string
	// Provider is the authenticator ("" for a subflow); Subflow the
	// subflow's alias ("" for an authenticator).
	Provider string `json:",omitempty"`
	Subflow  string `json:",omitempty"`
	// Config is the authenticator's configuration, if any.
	Config map[string]string `json:",omitempty"`
}

// ClientSecurity is what the checks read of a client.
type ClientSecurity struct {
	ID, ClientID                string
	Enabled, Public, BearerOnly bool
	DirectAccessGrants          bool
}

// UserSecurity is what the checks read of a user.
type UserSecurity struct {
	ID, Username string
	Enabled      bool
	// Roles are the user's effective realm roles (composites expanded).
	Roles           []string
	RequiredActions []string `json:",omitempty"`
}

// ReadRealmSecurity reads realm's security settings ("" is the configured
// realm) and the users holding any of roles (effective roles). It only
// reads.
func (a *Activities) ReadRealmSecurity(ctx context.Context, realm string, roles []string) (RealmSecurity, error) {
	if realm == "" {
		realm = a.cfg.Realm
	}
	if !validSegment(realm) {
		return RealmSecurity{}, badParams("realm %q is not a valid Keycloak realm name", realm)
	}
	r, err := a.getRealm(ctx, realm, "control check")
	if err != nil {
		return RealmSecurity{}, err
	}
	out := RealmSecurity{
		Realm: realm, AccessTokenLifespan: gocloak.PInt(r.AccessTokenLifespan), BruteForceProtected: gocloak.PBool(r.BruteForceProtected),
		PasswordPolicy: gocloak.PString(r.PasswordPolicy), OTPPolicyType: gocloak.PString(r.OtpPolicyType),
		BrowserFlow: gocloak.PString(r.BrowserFlow), DirectGrantFlow: gocloak.PString(r.DirectGrantFlow),
		Flows: map[string][]FlowExecution{},
	}
	for _, flow := range []string{out.BrowserFlow, out.DirectGrantFlow} {
		if flow == "" || out.Flows[flow] != nil {
			continue
		}
		if out.Flows[flow], err = a.flowExecutions(ctx, realm, flow); err != nil {
			return RealmSecurity{}, err
		}
	}
	var actions []*gocloak.RequiredActionProviderRepresentation
	if err := a.call(ctx, "GET realm "+realm+" required actions", func(ctx context.Context, tok string) error {
		actions, err = a.gc.GetRequiredActions(ctx, tok, realm)
		return err
	}); err != nil {
		return RealmSecurity{}, err
	}
	for _, ra := range actions {
		if ra != nil && gocloak.PBool(ra.Enabled) {
			out.RequiredActions = append(out.RequiredActions, gocloak.PString(ra.Alias))
		}
	}
	var clients []*gocloak.Client
	if err := a.call(ctx, "GET realm "+realm+" clients", func(ctx context.Context, tok string) error {
		clients, err = a.gc.GetClients(ctx, tok, realm, gocloak.GetClientsParams{Max: gocloak.IntP(10000)})
		return err
	}); err != nil {
		return RealmSecurity{}, err
	}
	for _, c := range clients {
		if c == nil {
			continue
		}
		out.Clients = append(out.Clients, ClientSecurity{ID: gocloak.PString(c.ID), ClientID: gocloak.PString(c.ClientID),
			Enabled: gocloak.PBool(c.Enabled), Public: gocloak.PBool(c.PublicClient), BearerOnly: gocloak.PBool(c.BearerOnly),
			DirectAccessGrants: gocloak.PBool(c.DirectAccessGrantsEnabled)})
	}
	slices.SortFunc(out.Clients, func(x, y ClientSecurity) int { return compareStrings(x.ClientID, y.ClientID) })
	if len(roles) == 0 {
		return out, nil
	}
	var users []*gocloak.User
	if err := a.call(ctx, "GET realm "+realm+" users", func(ctx context.Context, tok string) error {
		users, err = a.gc.GetUsers(ctx, tok, realm, gocloak.GetUsersParams{Max: gocloak.IntP(10000), BriefRepresentation: gocloak.BoolP(false)})
		return err
	}); err != nil {
		return RealmSecurity{}, err
	}
	for _, u := range users {
		if u == nil || u.ID == nil {
			continue
		}
		id := *u.ID
		if !validSegment(id) {
			continue
		}
		var eff []*gocloak.Role
		if err := a.call(ctx, fmt.Sprintf("GET realm %s user %s effective realm roles", realm, gocloak.PString(u.Username)), func(ctx context.Context, tok string) error {
			eff, err = a.gc.GetCompositeRealmRolesByUserID(ctx, tok, realm, id)
			return err
		}); err != nil {
			return RealmSecurity{}, err
		}
		us := UserSecurity{ID: id, Username: gocloak.PString(u.Username), Enabled: gocloak.PBool(u.Enabled)}
		for _, ro := range eff {
			if ro != nil && ro.Name != nil {
				us.Roles = append(us.Roles, *ro.Name)
			}
		}
		slices.Sort(us.Roles)
		if !slices.ContainsFunc(us.Roles, func(r string) bool { return slices.Contains(roles, r) }) {
			continue
		}
		if u.RequiredActions != nil {
			us.RequiredActions = slices.Clone(*u.RequiredActions)
		}
		out.Users = append(out.Users, us)
	}
	slices.SortFunc(out.Users, func(x, y UserSecurity) int { return compareStrings(x.Username, y.Username) })
	return out, nil
}

// flowExecutions reads a flow's executions and the configs of its
// authenticators (gocloak has no call for an authenticator config: it is
// read with a raw request on gocloak's client).
func (a *Activities) flowExecutions(ctx context.Context, realm, flow string) ([]FlowExecution, error) {
	var rows []*gocloak.ModifyAuthenticationExecutionRepresentation
	var err error
	// gocloak does not escape path segments; flow aliases may hold spaces.
	if err := a.call(ctx, fmt.Sprintf("GET realm %s flow %q executions", realm, flow), func(ctx context.Context, tok string) error {
		rows, err = a.gc.GetAuthenticationExecutions(ctx, tok, realm, url.PathEscape(flow))
		return err
	}); err != nil {
		return nil, err
	}
	var out []FlowExecution
	for _, r := range rows {
		if r == nil {
			continue
		}
		e := FlowExecution{Level: gocloak.PInt(r.Level), Index: gocloak.PInt(r.Index), Requirement: gocloak.PString(r.Requirement)}
		if gocloak.PBool(r.AuthenticationFlow) {
			e.Subflow = gocloak.PString(r.DisplayName)
		} else {
			e.Provider = gocloak.PString(r.ProviderID)
		}
		if id := gocloak.PString(r.AuthenticationConfig); id != "" {
			if !validSegment(id) {
				return nil, fmt.Errorf("keycloak: realm %s flow %q: authenticator config id %q is not a valid id", realm, flow, id)
			}
			var cfg struct {
				Config map[string]string `json:"config"`
			}
			if err := a.call(ctx, fmt.Sprintf("GET realm %s authenticator config %s", realm, id), func(ctx context.Context, tok string) error {
				resp, err := a.gc.GetRequestWithBearerAuth(ctx, tok).SetResult(&cfg).Get(a.adminURL(realm, "authentication", "config", id))
				if err != nil {
					return rawError(0, "", err, nil)
				}
				return rawError(resp.StatusCode(), resp.Status(), nil, resp.Error())
			}); err != nil {
				return nil, err
			}
			e.Config = cfg.Config
		}
		out = append(out, e)
	}
	return out, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
