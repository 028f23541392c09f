package keycloak

import (
	"net/url"
	"slices"
	"testing"

	"github.com/Nerzal/gocloak/v13"
)

// TestFlowExecutionsThroughGocloak reads the realm's browser flow as
// gocloak lists it (depth first, with levels), reads the role condition's
// config, and disables the direct grant's OTP-by-role subflow through
// gocloak's UpdateAuthenticationExecution: bob (ir-lead) then gets a token
// without a code, which is what the MFA control must catch.
func TestFlowExecutionsThroughGocloak(t *testing.T) {
	l := newLab(t)
	tok := l.adminToken()
	rows, err := l.gc.GetAuthenticationExecutions(l.ctx, tok, Realm, url.PathEscape("iru browser"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	cond := ""
	for _, r := range rows {
		names = append(names, gocloak.PString(r.DisplayName))
		if gocloak.PString(r.ProviderID) == "conditional-user-role" && gocloak.PInt(r.Level) == 2 && cond == "" {
			cond = gocloak.PString(r.AuthenticationConfig)
		}
	}
	if !slices.Contains(names, "iru browser - OTP by role") || cond == "" {
		t.Fatalf("rows %v, condition config %q", names, cond)
	}
	var cfg struct {
		Config map[string]string `json:"config"`
	}
	resp, err := l.gc.GetRequestWithBearerAuth(l.ctx, tok).SetResult(&cfg).Get(l.hs.URL + "/admin/realms/" + Realm + "/authentication/config/" + cond)
	if err != nil || resp.StatusCode() != 200 || cfg.Config["condUserRole"] != RoleOTPRequired {
		t.Fatalf("config: %v %v %+v", err, resp, cfg)
	}
	if _, err := l.passwordGrant("bob", UserPassword, nil); err == nil {
		t.Fatal("bob logged in without a code before the change")
	}
	flow := url.PathEscape("iru direct grant")
	rows, err = l.gc.GetAuthenticationExecutions(l.ctx, tok, Realm, flow)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rows, func(r *gocloak.ModifyAuthenticationExecutionRepresentation) bool {
		return gocloak.PString(r.DisplayName) == "iru direct grant - OTP by role"
	})
	if i < 0 {
		t.Fatal("no OTP-by-role subflow")
	}
	if err := l.gc.UpdateAuthenticationExecution(l.ctx, tok, Realm, flow, gocloak.ModifyAuthenticationExecutionRepresentation{
		ID: rows[i].ID, Requirement: gocloak.StringP("SOMETIMES")}); err == nil {
		t.Error("an unknown requirement was accepted")
	}
	if err := l.gc.UpdateAuthenticationExecution(l.ctx, tok, Realm, flow, gocloak.ModifyAuthenticationExecutionRepresentation{
		ID: rows[i].ID, Requirement: gocloak.StringP("DISABLED")}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.passwordGrant("bob", UserPassword, nil); err != nil {
		t.Fatalf("with the OTP subflow disabled bob still needs a code: %v", err)
	}
}
