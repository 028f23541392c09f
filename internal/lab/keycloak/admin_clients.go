package keycloak

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
)

type clientRepresentation struct {
	ID                        string                         `json:"id"`
	ClientID                  string                         `json:"clientId"`
	Name                      string                         `json:"name,omitempty"`
	Description               string                         `json:"description,omitempty"`
	AdminURL                  string                         `json:"adminUrl,omitempty"`
	SurrogateAuthRequired     bool                           `json:"surrogateAuthRequired"`
	Enabled                   bool                           `json:"enabled"`
	AlwaysDisplayInConsole    bool                           `json:"alwaysDisplayInConsole"`
	ClientAuthenticatorType   string                         `json:"clientAuthenticatorType"`
	Secret                    string                         `json:"secret,omitempty"`
	RedirectURIs              []string                       `json:"redirectUris"`
	WebOrigins                []string                       `json:"webOrigins"`
	NotBefore                 int64                          `json:"notBefore"`
	BearerOnly                bool                           `json:"bearerOnly"`
	ConsentRequired           bool                           `json:"consentRequired"`
	StandardFlowEnabled       bool                           `json:"standardFlowEnabled"`
	ImplicitFlowEnabled       bool                           `json:"implicitFlowEnabled"`
	DirectAccessGrantsEnabled bool                           `json:"directAccessGrantsEnabled"`
	ServiceAccountsEnabled    bool                           `json:"serviceAccountsEnabled"`
	PublicClient              bool                           `json:"publicClient"`
	FrontchannelLogout        bool                           `json:"frontchannelLogout"`
	Protocol                  string                         `json:"protocol"`
	Attributes                map[string]string              `json:"attributes"`
	FullScopeAllowed          bool                           `json:"fullScopeAllowed"`
	ProtocolMappers           []protocolMapperRepresentation `json:"protocolMappers,omitempty"`
	Access                    map[string]bool                `json:"access,omitempty"`
}

func clientRep(c *client, a *adminCall) clientRepresentation {
	rep := clientRepresentation{
		ID: c.id, ClientID: c.clientID, Name: c.name, Description: c.description, AdminURL: c.adminURL,
		Enabled: c.enabled, ClientAuthenticatorType: "client-secret", RedirectURIs: nonNil(c.redirectURIs),
		WebOrigins: nonNil(c.webOrigins), NotBefore: c.notBefore, BearerOnly: c.bearerOnly,
		StandardFlowEnabled: c.standardFlow, DirectAccessGrantsEnabled: c.directGrants,
		ServiceAccountsEnabled: c.serviceAccounts, PublicClient: c.public, FrontchannelLogout: true,
		Protocol: "openid-connect", Attributes: c.attributes, FullScopeAllowed: c.fullScope,
		ProtocolMappers: mapperReps(c),
	}
	if !c.public && !c.bearerOnly {
		rep.Secret = c.secret
	}
	manage := a.can(permManageClient...)
	rep.Access = map[string]bool{"view": true, "configure": manage, "manage": manage}
	return rep
}

// adminListClients serves GET /admin/realms/{realm}/clients: clientId is an exact match unless
// search=true (then a case-insensitive infix match). With only query-clients a caller gets the
// brief representation (id, clientId, description).
func (s *Server) adminListClients(w http.ResponseWriter, req *http.Request, a *adminCall) {
	q := req.URL.Query()
	want := firstValue(q, "clientId")
	search := firstValue(q, "search") == "true"
	var list []*client
	for _, c := range a.realm.clients {
		if want != "" {
			if search && !strings.Contains(strings.ToLower(c.clientID), strings.ToLower(want)) {
				continue
			}
			if !search && c.clientID != want {
				continue
			}
		}
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].clientID < list[j].clientID })
	first, max := pageBounds(q, -1)
	out := []any{}
	view := a.can(permViewClients...)
	for _, c := range page(nonNil(list), first, max) {
		if view {
			out = append(out, clientRep(c, a))
		} else if firstValue(q, "viewableOnly") != "true" {
			out = append(out, map[string]string{"id": c.id, "clientId": c.clientID, "description": c.description})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *adminCall) client(w http.ResponseWriter) *client {
	c := a.realm.clients[a.params["id"]]
	if c == nil {
		writeAdminError(w, http.StatusNotFound, "Could not find client")
	}
	return c
}

// adminGetClient serves GET /admin/realms/{realm}/clients/{id}.
func (s *Server) adminGetClient(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	if c := a.client(w); c != nil {
		writeJSON(w, http.StatusOK, clientRep(c, a))
	}
}

// adminUpdateClient serves PUT /admin/realms/{realm}/clients/{id}; the simulator applies the
// non-null fields it models (enabled, notBefore, name, description, flows, adminUrl, attributes,
// redirectUris).
func (s *Server) adminUpdateClient(w http.ResponseWriter, req *http.Request, a *adminCall) {
	c := a.client(w)
	if c == nil {
		return
	}
	var rep struct {
		ClientID                  *string            `json:"clientId"`
		Name                      *string            `json:"name"`
		Description               *string            `json:"description"`
		Enabled                   *bool              `json:"enabled"`
		NotBefore                 *int64             `json:"notBefore"`
		AdminURL                  *string            `json:"adminUrl"`
		DirectAccessGrantsEnabled *bool              `json:"directAccessGrantsEnabled"`
		ServiceAccountsEnabled    *bool              `json:"serviceAccountsEnabled"`
		StandardFlowEnabled       *bool              `json:"standardFlowEnabled"`
		Attributes                *map[string]string `json:"attributes"`
		Secret                    *string            `json:"secret"`
		RedirectURIs              *[]string          `json:"redirectUris"`
	}
	body, ok := readJSON(w, req, &rep)
	if !ok {
		return
	}
	if rep.ClientID != nil && *rep.ClientID != c.clientID {
		if other := a.realm.clientByClientID(*rep.ClientID); other != nil {
			writeErrorMessage(w, http.StatusConflict, "Client "+*rep.ClientID+" already exists")
			return
		}
		c.clientID = *rep.ClientID
	}
	setIf(&c.name, rep.Name)
	setIf(&c.description, rep.Description)
	setIf(&c.enabled, rep.Enabled)
	setIf(&c.notBefore, rep.NotBefore)
	setIf(&c.adminURL, rep.AdminURL)
	setIf(&c.directGrants, rep.DirectAccessGrantsEnabled)
	setIf(&c.serviceAccounts, rep.ServiceAccountsEnabled)
	setIf(&c.standardFlow, rep.StandardFlowEnabled)
	setIf(&c.attributes, rep.Attributes)
	setIf(&c.redirectURIs, rep.RedirectURIs)
	if rep.Secret != nil && *rep.Secret != "" && !c.public {
		c.secret = *rep.Secret
	}
	a.event("UPDATE", "CLIENT", string(body))
	writeNoContent(w)
}

type credentialRepresentation struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// adminGetClientSecret serves GET .../clients/{id}/client-secret.
func (s *Server) adminGetClientSecret(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	c := a.client(w)
	if c == nil {
		return
	}
	if c.public || c.bearerOnly {
		writeAdminError(w, http.StatusBadRequest, "Client is public or bearer-only")
		return
	}
	writeJSON(w, http.StatusOK, credentialRepresentation{Type: "secret", Value: c.secret})
}

// adminRegenerateClientSecret serves POST .../clients/{id}/client-secret; the old secret stops
// working at once.
func (s *Server) adminRegenerateClientSecret(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	c := a.client(w)
	if c == nil {
		return
	}
	if c.public || c.bearerOnly {
		writeAdminError(w, http.StatusBadRequest, "Client is public or bearer-only")
		return
	}
	c.secret = randomSecret()
	rep := credentialRepresentation{Type: "secret", Value: c.secret}
	b, _ := json.Marshal(rep)
	a.event("ACTION", "CLIENT", string(b))
	writeJSON(w, http.StatusOK, rep)
}

// adminClientPushRevocation serves POST .../clients/{id}/push-revocation.
func (s *Server) adminClientPushRevocation(w http.ResponseWriter, _ *http.Request, a *adminCall) {
	c := a.client(w)
	if c == nil {
		return
	}
	res := pushResult(c)
	b, _ := json.Marshal(res)
	a.event("ACTION", "CLIENT", string(b))
	writeJSON(w, http.StatusOK, res)
}

// adminClientSessions serves GET .../clients/{id}/user-sessions.
func (s *Server) adminClientSessions(w http.ResponseWriter, req *http.Request, a *adminCall) {
	c := a.client(w)
	if c == nil {
		return
	}
	out := []sessionRepresentation{}
	for _, sess := range a.realm.sessions {
		if _, ok := sess.clients[c.id]; ok {
			if u := a.realm.users[sess.userID]; u != nil {
				out = append(out, sessionRep(sess, u))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Start < out[j].Start || out[i].Start == out[j].Start && out[i].ID < out[j].ID
	})
	first, max := pageBounds(req.URL.Query(), -1)
	writeJSON(w, http.StatusOK, page(out, first, max))
}
