package keycloak

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Authentication routes of the Admin REST API: what the control checks read (flows and their
// executions, authenticator configs, required actions), as Keycloak 23 represents them.

// authExecutionInfo is Keycloak's AuthenticationExecutionInfoRepresentation: one row of the
// flattened, depth-first listing of a flow's executions.
type authExecutionInfo struct {
	ID                   string   `json:"id"`
	Requirement          string   `json:"requirement"`
	DisplayName          string   `json:"displayName"`
	Alias                string   `json:"alias,omitempty"`
	RequirementChoices   []string `json:"requirementChoices"`
	Configurable         bool     `json:"configurable"`
	AuthenticationFlow   bool     `json:"authenticationFlow,omitempty"`
	ProviderID           string   `json:"providerId,omitempty"`
	AuthenticationConfig string   `json:"authenticationConfig,omitempty"`
	FlowID               string   `json:"flowId,omitempty"`
	Level                int      `json:"level"`
	Index                int      `json:"index"`
	Priority             int      `json:"priority"`
}

// authFlowRep is Keycloak's AuthenticationFlowRepresentation.
type authFlowRep struct {
	ID                       string             `json:"id"`
	Alias                    string             `json:"alias"`
	Description              string             `json:"description"`
	ProviderID               string             `json:"providerId"`
	TopLevel                 bool               `json:"topLevel"`
	BuiltIn                  bool               `json:"builtIn"`
	AuthenticationExecutions []authExecutionRep `json:"authenticationExecutions"`
}

// authExecutionRep is Keycloak's AuthenticationExecutionExportRepresentation.
type authExecutionRep struct {
	Authenticator       string `json:"authenticator,omitempty"`
	AuthenticatorConfig string `json:"authenticatorConfig,omitempty"`
	FlowAlias           string `json:"flowAlias,omitempty"`
	AuthenticatorFlow   bool   `json:"authenticatorFlow"`
	Requirement         string `json:"requirement"`
	Priority            int    `json:"priority"`
	UserSetupAllowed    bool   `json:"userSetupAllowed"`
}

func flowID(r *realm, alias string) string { return stableID(r.name, "flow", alias) }

func configID(r *realm, alias string) string { return stableID(r.name, "authenticator-config", alias) }

func executionID(r *realm, flow string, i int, e *execution) string {
	return stableID(r.name, "execution", flow, e.authenticator+e.flowAlias, strconv.Itoa(i))
}

// adminListFlows serves GET /admin/realms/{realm}/authentication/flows: the top-level flows.
func (s *Server) adminListFlows(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	out := []authFlowRep{}
	for _, alias := range slices.Sorted(maps.Keys(a.realm.flows)) {
		f := a.realm.flows[alias]
		if !f.topLevel {
			continue
		}
		rep := authFlowRep{ID: flowID(a.realm, alias), Alias: alias, ProviderID: "basic-flow", TopLevel: true,
			AuthenticationExecutions: []authExecutionRep{}}
		for _, e := range f.executions {
			rep.AuthenticationExecutions = append(rep.AuthenticationExecutions, authExecutionRep{
				Authenticator: e.authenticator, AuthenticatorConfig: e.configAlias, FlowAlias: e.flowAlias,
				AuthenticatorFlow: e.flowAlias != "", Requirement: e.requirement, Priority: e.priority,
			})
		}
		out = append(out, rep)
	}
	writeJSON(w, http.StatusOK, out)
}

// adminFlowExecutions serves GET /admin/realms/{realm}/authentication/flows/{flowAlias}/executions:
// the flow's executions and, after each subflow, the subflow's own, depth first (level counts
// the depth, index the position within the parent), as Keycloak lists them.
func (s *Server) adminFlowExecutions(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	alias := a.params["flowAlias"]
	f := a.realm.flows[alias]
	if f == nil {
		writeErrorMessage(w, http.StatusNotFound, "Flow not found")
		return
	}
	out := []authExecutionInfo{}
	var walk func(f *authFlow, level int)
	walk = func(f *authFlow, level int) {
		for i, e := range f.executions {
			row := authExecutionInfo{
				ID: executionID(a.realm, f.alias, i, e), Requirement: e.requirement, Level: level, Index: i,
				Priority: e.priority, RequirementChoices: []string{reqRequired, reqAlternative, reqDisabled},
			}
			if e.flowAlias != "" {
				row.AuthenticationFlow = true
				row.DisplayName, row.Alias, row.FlowID = e.flowAlias, e.flowAlias, flowID(a.realm, e.flowAlias)
				row.RequirementChoices = []string{reqRequired, reqAlternative, reqDisabled, reqConditional}
			} else {
				row.ProviderID, row.DisplayName = e.authenticator, e.authenticator
				row.Configurable = e.configAlias != "" || e.authenticator == "conditional-user-role"
			}
			if e.configAlias != "" {
				if _, ok := a.realm.authConfig[e.configAlias]; ok {
					row.AuthenticationConfig = configID(a.realm, e.configAlias)
				}
			}
			out = append(out, row)
			if sub := a.realm.flows[e.flowAlias]; sub != nil {
				walk(sub, level+1)
			}
		}
	}
	walk(f, 0)
	writeJSON(w, http.StatusOK, out)
}

// adminAuthConfig serves GET /admin/realms/{realm}/authentication/config/{id}
// (AuthenticatorConfigRepresentation).
func (s *Server) adminAuthConfig(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	for _, alias := range slices.Sorted(maps.Keys(a.realm.authConfig)) {
		if configID(a.realm, alias) == a.params["id"] {
			cfg := a.realm.authConfig[alias]
			if cfg == nil {
				cfg = map[string]string{}
			}
			writeJSON(w, http.StatusOK, map[string]any{"id": a.params["id"], "alias": alias, "config": cfg})
			return
		}
	}
	writeErrorMessage(w, http.StatusNotFound, "Could not find authenticator config")
}

// adminRequiredActions serves GET /admin/realms/{realm}/authentication/required-actions: the
// required-action providers registered in the realm (Keycloak registers these by default).
func (s *Server) adminRequiredActions(w http.ResponseWriter, _ *http.Request, _ *adminCall) {
	type rep struct {
		Alias         string            `json:"alias"`
		Name          string            `json:"name"`
		ProviderID    string            `json:"providerId"`
		Enabled       bool              `json:"enabled"`
		DefaultAction bool              `json:"defaultAction"`
		Priority      int               `json:"priority"`
		Config        map[string]string `json:"config"`
	}
	out := []rep{}
	for i, ra := range []struct{ alias, name string }{
		{"CONFIGURE_TOTP", "Configure OTP"}, {"TERMS_AND_CONDITIONS", "Terms and Conditions"},
		{"UPDATE_PASSWORD", "Update Password"}, {"UPDATE_PROFILE", "Update Profile"},
		{"VERIFY_EMAIL", "Verify Email"}, {"delete_account", "Delete Account"},
	} {
		out = append(out, rep{Alias: ra.alias, Name: ra.name, ProviderID: ra.alias, Enabled: ra.alias != "TERMS_AND_CONDITIONS" && ra.alias != "delete_account",
			Priority: (i + 1) * 10, Config: map[string]string{}})
	}
	writeJSON(w, http.StatusOK, out)
}

// adminUpdateExecution serves PUT /admin/realms/{realm}/authentication/flows/{flowAlias}/executions:
// it changes the requirement of one execution of the flow or of its subflows (the body is an
// AuthenticationExecutionInfoRepresentation; only id and requirement are read, as Keycloak
// updates only the requirement). The simulated logins follow the new requirement.
func (s *Server) adminUpdateExecution(w http.ResponseWriter, req *http.Request, a *adminCall) {
	root := a.realm.flows[a.params["flowAlias"]]
	if root == nil {
		writeErrorMessage(w, http.StatusNotFound, "Flow not found")
		return
	}
	var rep struct {
		ID          string `json:"id"`
		Requirement string `json:"requirement"`
	}
	body, ok := readJSON(w, req, &rep)
	if !ok {
		return
	}
	var found *execution
	var walk func(f *authFlow)
	walk = func(f *authFlow) {
		for i, e := range f.executions {
			if found != nil {
				return
			}
			if executionID(a.realm, f.alias, i, e) == rep.ID {
				found = e
				return
			}
			if sub := a.realm.flows[e.flowAlias]; sub != nil {
				walk(sub)
			}
		}
	}
	walk(root)
	if found == nil {
		writeErrorMessage(w, http.StatusNotFound, "Illegal execution")
		return
	}
	allowed := []string{reqRequired, reqAlternative, reqDisabled}
	if found.flowAlias != "" || strings.HasPrefix(found.authenticator, "conditional-") {
		allowed = append(allowed, reqConditional)
	}
	if !slices.Contains(allowed, rep.Requirement) {
		writeErrorMessage(w, http.StatusBadRequest, "requirement "+rep.Requirement+" is not allowed for this execution")
		return
	}
	found.requirement = rep.Requirement
	a.event("UPDATE", "AUTH_EXECUTION", string(body))
	writeNoContent(w)
}
