package controls

import (
	"slices"
	"testing"

	kcact "github.com/iru-responder/responder/activities/keycloak"
)

// TestParsePorts checks the dport syntax the ingress check accepts, and
// that anything it cannot verify counts as not allowed.
func TestParsePorts(t *testing.T) {
	allowed := []int{443, 8545, 5000}
	for _, tc := range []struct {
		dport  string
		within bool
		err    bool
	}{
		{"443", true, false},
		{"443,5000", true, false},
		{"8545:8545", true, false},
		{"22", false, false},
		{"440:450", false, false},
		{"", false, false}, // any port
		{"https", false, true},
		{"500:400", false, true},
	} {
		ps, err := parsePorts(tc.dport)
		if (err != nil) != tc.err {
			t.Errorf("%q: error %v", tc.dport, err)
			continue
		}
		if err == nil && ps.within(allowed) != tc.within {
			t.Errorf("%q: within %t, want %t", tc.dport, !tc.within, tc.within)
		}
	}
}

// TestOTPRoles checks which roles a flow asks an OTP of, on flows shaped as
// Keycloak lists them (the lab realm's browser flow, and variants).
func TestOTPRoles(t *testing.T) {
	byRole := []kcact.FlowExecution{
		{Level: 0, Index: 0, Requirement: "ALTERNATIVE", Provider: "auth-cookie"},
		{Level: 0, Index: 1, Requirement: "ALTERNATIVE", Subflow: "forms"},
		{Level: 1, Index: 0, Requirement: "REQUIRED", Provider: "auth-username-password-form"},
		{Level: 1, Index: 1, Requirement: "CONDITIONAL", Subflow: "OTP by role"},
		{Level: 2, Index: 0, Requirement: "REQUIRED", Provider: "conditional-user-role", Config: map[string]string{"condUserRole": "otp-required", "negate": "false"}},
		{Level: 2, Index: 1, Requirement: "REQUIRED", Provider: "auth-otp-form"},
		{Level: 1, Index: 2, Requirement: "CONDITIONAL", Subflow: "OTP when configured"},
		{Level: 2, Index: 0, Requirement: "REQUIRED", Provider: "conditional-user-role", Config: map[string]string{"condUserRole": "otp-required", "negate": "true"}},
		{Level: 2, Index: 1, Requirement: "REQUIRED", Provider: "conditional-user-configured"},
		{Level: 2, Index: 2, Requirement: "REQUIRED", Provider: "auth-otp-form"},
	}
	negated := slices.Clone(byRole)
	negated[4] = kcact.FlowExecution{Level: 2, Requirement: "REQUIRED", Provider: "conditional-user-role", Config: map[string]string{"condUserRole": "otp-required", "negate": "true"}}
	optional := slices.Clone(byRole)
	optional[5] = kcact.FlowExecution{Level: 2, Index: 1, Requirement: "ALTERNATIVE", Provider: "auth-otp-form"}
	for _, tc := range []struct {
		name  string
		rows  []kcact.FlowExecution
		roles []string
		all   bool
	}{
		{"conditional OTP by role", byRole, []string{"otp-required"}, false},
		{"condition negated", negated, nil, false},
		{"OTP not required in the subflow", optional, nil, false},
		{"OTP required of everyone", []kcact.FlowExecution{{Level: 0, Requirement: "REQUIRED", Provider: "direct-grant-validate-otp"}}, nil, true},
	} {
		roles, all := otpRoles(tc.rows)
		if !slices.Equal(roles, tc.roles) || all != tc.all {
			t.Errorf("%s: roles %v all %t, want %v %t", tc.name, roles, all, tc.roles, tc.all)
		}
	}
}

// TestPolicyNames checks Keycloak password policy strings are read by name.
func TestPolicyNames(t *testing.T) {
	got := policyNames("length(12) and notUsername and passwordHistory(5)")
	if !slices.Equal(got, []string{"length", "notUsername", "passwordHistory"}) {
		t.Errorf("got %v", got)
	}
	if len(policyNames("")) != 0 {
		t.Error("empty policy has names")
	}
}
