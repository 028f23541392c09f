package keycloak

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Protocol mapper types the simulator implements (Keycloak's provider ids). A realm export whose
// clients use another type is refused on load rather than imported with a claim silently missing.
const (
	mapperAudience      = "oidc-audience-mapper"
	mapperHardcoded     = "oidc-hardcoded-claim-mapper"
	mapperRealmRole     = "oidc-usermodel-realm-role-mapper"
	mapperClientRole    = "oidc-usermodel-client-role-mapper"
	mapperUserAttribute = "oidc-usermodel-attribute-mapper"
	// mapperAMR is Keycloak 24's "Authentication Method Reference (AMR)" mapper: the "amr" claim
	// lists the reference values (authenticator config default.reference.value) of the executions
	// the login completed, an empty list when none has one. Keycloak 23.0.6 does not have it.
	mapperAMR = "oidc-amr-mapper"
)

// Mapper configuration keys (Keycloak's OIDCAttributeMapperHelper and ProtocolMapperUtils).
const (
	cfgClaimName        = "claim.name"
	cfgClaimValue       = "claim.value"
	cfgJSONType         = "jsonType.label"
	cfgMultivalued      = "multivalued"
	cfgAccessToken      = "access.token.claim"
	cfgIDToken          = "id.token.claim"
	cfgUserinfo         = "userinfo.token.claim"
	cfgIntrospection    = "introspection.token.claim"
	cfgAudience         = "included.client.audience"
	cfgRealmRolePrefix  = "usermodel.realmRoleMapping.rolePrefix"
	cfgClientRoleClient = "usermodel.clientRoleMapping.clientId"
	cfgClientRolePrefix = "usermodel.clientRoleMapping.rolePrefix"
	cfgUserAttribute    = "user.attribute"
)

// protocolMapper is one OIDC protocol mapper of a client (Keycloak's ProtocolMapperModel).
type protocolMapper struct {
	id, name, mapperType string
	consentRequired      bool
	config               map[string]string
}

// tokenKind is the token a mapper writes to.
type tokenKind int

const (
	kindAccess tokenKind = iota
	kindID
	kindUserinfo
	kindIntrospection
)

// includes reports whether m writes to a token of kind k, with Keycloak's rules: a flag counts
// only when it is exactly "true"; the userinfo flag, when absent, follows the ID token's, and the
// introspection flag the access token's.
func (m *protocolMapper) includes(k tokenKind) bool {
	if m.mapperType == mapperAMR && (k == kindIntrospection || k == kindUserinfo) {
		return false // Keycloak's AMR mapper writes only to access and ID tokens
	}
	switch k {
	case kindAccess:
		return m.config[cfgAccessToken] == "true"
	case kindID:
		return m.config[cfgIDToken] == "true"
	case kindIntrospection:
		// Keycloak 23's "Add to token introspection"; absent, it follows the access token's.
		v, ok := m.config[cfgIntrospection]
		if !ok {
			return m.config[cfgAccessToken] == "true"
		}
		return v == "true"
	default:
		v, ok := m.config[cfgUserinfo]
		if !ok {
			return m.config[cfgIDToken] == "true"
		}
		return v == "true"
	}
}

// validateMapper checks what Keycloak would only find when minting a token (an unknown type, a
// JSON value that does not parse), so a bad realm file fails when it is loaded.
func validateMapper(clientID string, m *protocolMapper) error {
	switch m.mapperType {
	case mapperAudience, mapperAMR:
		return nil
	case mapperHardcoded, mapperRealmRole, mapperClientRole, mapperUserAttribute:
	default:
		return fmt.Errorf("client %s: protocol mapper %q: type %q is not implemented by the simulator", clientID, m.name, m.mapperType)
	}
	if m.config[cfgClaimName] == "" {
		return fmt.Errorf("client %s: protocol mapper %q: missing %s", clientID, m.name, cfgClaimName)
	}
	switch t := m.config[cfgJSONType]; t {
	case "", "String", "long", "int", "boolean", "JSON":
	default:
		return fmt.Errorf("client %s: protocol mapper %q: unknown %s %q", clientID, m.name, cfgJSONType, t)
	}
	if m.mapperType == mapperHardcoded {
		if _, err := convertClaimValue(m.config[cfgJSONType], m.config[cfgClaimValue]); err != nil {
			return fmt.Errorf("client %s: protocol mapper %q: %w", clientID, m.name, err)
		}
	}
	return nil
}

// convertClaimValue converts one string value to the mapper's JSON type, as Keycloak's
// OIDCAttributeMapperHelper.convertToType does.
func convertClaimValue(jsonType, v string) (any, error) {
	switch jsonType {
	case "", "String":
		return v, nil
	case "boolean":
		// Java's Boolean.valueOf: "true" in any case is true, anything else false.
		return strings.EqualFold(v, "true"), nil
	case "long", "int":
		bits := 64
		if jsonType == "int" {
			bits = 32
		}
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("cannot map %q to type %s for token claim", v, jsonType)
		}
		return n, nil
	case "JSON":
		var out any
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil, fmt.Errorf("cannot map %q to type JSON for token claim: %w", v, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown claim type %q", jsonType)
}

// mapValues applies Keycloak's mapAttributeValue to a list of values: nothing for an empty list,
// every value when the mapper is multivalued, otherwise the first.
func mapValues(m *protocolMapper, values []string) (any, error) {
	if len(values) == 0 {
		return nil, nil
	}
	t := m.config[cfgJSONType]
	if m.config[cfgMultivalued] == "true" {
		out := make([]any, 0, len(values))
		for _, v := range values {
			c, err := convertClaimValue(t, v)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	}
	return convertClaimValue(t, values[0])
}

// claimComponent matches one dot-separated component of a claim path, where "\." is a literal dot.
var claimComponent = regexp.MustCompile(`^((?:\\.|[^\\.])+?)\.`)

var backslashed = regexp.MustCompile(`\\(.)`)

// splitClaimPath splits "a.b\.c" into ["a", "b.c"] (Keycloak's splitClaimPath).
func splitClaimPath(p string) []string {
	var out []string
	for {
		loc := claimComponent.FindStringSubmatchIndex(p)
		if loc == nil {
			break
		}
		out = append(out, backslashed.ReplaceAllString(p[loc[2]:loc[3]], "$1"))
		p = p[loc[1]:]
	}
	if p != "" {
		out = append(out, backslashed.ReplaceAllString(p, "$1"))
	}
	return out
}

// putClaim stores v at path in claims, creating nested objects. With merge (the role mappers), a
// list already at the path is extended instead of replaced.
func putClaim(claims map[string]any, path []string, v any, merge bool) {
	for i, comp := range path {
		if i == len(path)-1 {
			if old, ok := claims[comp].([]any); ok && merge {
				if add, ok := v.([]any); ok {
					for _, x := range add {
						if !slices.Contains(old, x) {
							old = append(old, x)
						}
					}
					claims[comp] = old
					return
				}
			}
			claims[comp] = v
			return
		}
		nested, ok := claims[comp].(map[string]any)
		if !ok {
			nested = map[string]any{}
			claims[comp] = nested
		}
		claims = nested
	}
}

// clientIDPlaceholder is the ${client_id} placeholder of client role mapper claim names.
var clientIDPlaceholder = regexp.MustCompile(`\$\{client_id\}`)

// mapperClaims runs c's protocol mappers (other than audience mappers, which shape "aud") for a
// token of kind k issued to u, whose effective roles are realmRoles and clientRoles. It returns
// the claims the mappers add. Caller holds s.mu.
func (r *realm) mapperClaims(c *client, u *user, sess *session, realmRoles []string, clientRoles map[string][]string, k tokenKind) (map[string]any, error) {
	claims := map[string]any{}
	for _, m := range c.mappers {
		if m.mapperType == mapperAudience || !m.includes(k) {
			continue
		}
		claimName := m.config[cfgClaimName]
		var (
			v     any
			err   error
			merge bool
		)
		switch m.mapperType {
		case mapperAMR:
			if sess == nil {
				continue // no authentication, no amr (client credentials)
			}
			amr := make([]any, 0, len(sess.amr))
			for _, v := range sess.amr {
				amr = append(amr, v)
			}
			claims["amr"] = amr
			continue
		case mapperHardcoded:
			v, err = convertClaimValue(m.config[cfgJSONType], m.config[cfgClaimValue])
		case mapperUserAttribute:
			v, err = mapValues(m, u.attributes[m.config[cfgUserAttribute]])
		case mapperRealmRole:
			v, err = mapValues(m, prefixed(m.config[cfgRealmRolePrefix], realmRoles))
			merge = true
		case mapperClientRole:
			merge = true
			want := m.config[cfgClientRoleClient]
			prefix := m.config[cfgClientRolePrefix]
			if want != "" {
				v, err = mapValues(m, prefixed(prefix, clientRoles[want]))
				claimName = clientIDPlaceholder.ReplaceAllLiteralString(claimName, strings.ReplaceAll(want, ".", `\.`))
				break
			}
			// No client named: every client's roles, each under its own ${client_id}.
			for _, cid := range slices.Sorted(maps.Keys(clientRoles)) {
				cv, cerr := mapValues(m, prefixed(prefix, clientRoles[cid]))
				if cerr != nil {
					return nil, fmt.Errorf("protocol mapper %q: %w", m.name, cerr)
				}
				if cv != nil {
					name := clientIDPlaceholder.ReplaceAllLiteralString(claimName, strings.ReplaceAll(cid, ".", `\.`))
					putClaim(claims, splitClaimPath(name), cv, true)
				}
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("protocol mapper %q: %w", m.name, err)
		}
		if v == nil {
			continue
		}
		putClaim(claims, splitClaimPath(claimName), v, merge)
	}
	return claims, nil
}

// introspectionClaims applies Keycloak 23's "Add to token introspection" switch to the claims of
// an access token being introspected: claims of mappers left out of introspection are removed,
// and mappers that write only to introspection add theirs. Caller holds s.mu.
func (r *realm) introspectionClaims(tc *tokenClaims, claims map[string]any) error {
	u, c := r.users[tc.Sub], r.clientByClientID(tc.Azp)
	if u == nil || c == nil {
		return nil
	}
	realmRoles, clientRoles := r.effectiveRoles(u)
	sess := r.sessions[tc.Sid]
	inAccess, err := r.mapperClaims(c, u, sess, realmRoles, clientRoles, kindAccess)
	if err != nil {
		return err
	}
	inIntrospection, err := r.mapperClaims(c, u, sess, realmRoles, clientRoles, kindIntrospection)
	if err != nil {
		return err
	}
	for k := range inAccess {
		if _, keep := inIntrospection[k]; !keep {
			delete(claims, k)
		}
	}
	for k, v := range inIntrospection {
		if _, std := claims[k]; !std || inAccess[k] != nil {
			claims[k] = v
		}
	}
	return nil
}

func prefixed(prefix string, names []string) []string {
	if prefix == "" {
		return names
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// protocolMapperRepresentation is Keycloak's ProtocolMapperRepresentation.
type protocolMapperRepresentation struct {
	ID              string            `json:"id"`
	Name            string            `json:"name"`
	Protocol        string            `json:"protocol"`
	ProtocolMapper  string            `json:"protocolMapper"`
	ConsentRequired bool              `json:"consentRequired"`
	Config          map[string]string `json:"config"`
}

func mapperReps(c *client) []protocolMapperRepresentation {
	out := make([]protocolMapperRepresentation, 0, len(c.mappers))
	for _, m := range c.mappers {
		out = append(out, protocolMapperRepresentation{
			ID: m.id, Name: m.name, Protocol: "openid-connect", ProtocolMapper: m.mapperType,
			ConsentRequired: m.consentRequired, Config: m.config,
		})
	}
	return out
}
