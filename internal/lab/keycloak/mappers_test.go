package keycloak

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/Nerzal/gocloak/v13"
	"github.com/coreos/go-oidc/v3/oidc"
)

// permissionClaims are the claims Temporal's default claim mapper reads.
type permissionClaims struct {
	Sub         string   `json:"sub"`
	Azp         string   `json:"azp"`
	Permissions []string `json:"permissions"`
}

// verifiedClaims verifies raw with go-oidc against the simulator's discovery and JWKS (as
// Temporal's JWT key provider does: signature and issuer, no audience) and decodes its claims.
func (l *lab) verifiedClaims(raw string, v any) {
	l.t.Helper()
	ctx := oidc.ClientContext(l.ctx, l.hs.Client())
	provider, err := oidc.NewProvider(ctx, l.hs.URL+"/realms/"+Realm)
	if err != nil {
		l.t.Fatalf("discovery: %v", err)
	}
	idt, err := provider.Verifier(&oidc.Config{SkipClientIDCheck: true, Now: l.clock.Now}).Verify(ctx, raw)
	if err != nil {
		l.t.Fatalf("verify token: %v", err)
	}
	if err := idt.Claims(v); err != nil {
		l.t.Fatalf("claims: %v", err)
	}
}

func TestPermissionsClaim(t *testing.T) {
	l := newLab(t)
	client := func(id, secret string) func() *gocloak.JWT {
		return func() *gocloak.JWT {
			jwt, err := l.gc.LoginClient(l.ctx, id, secret, Realm)
			if err != nil {
				t.Fatalf("LoginClient %s: %v", id, err)
			}
			return jwt
		}
	}
	person := func(username string) func() *gocloak.JWT { return func() *gocloak.JWT { return l.login(username) } }
	tests := []struct {
		name  string
		login func() *gocloak.JWT
		want  []string
	}{
		{"worker service account", client(WorkerClientID, WorkerClientSecret), []string{"default:write"}},
		{"api service account", client(APIClientID, APIClientSecret), []string{"default:write"}},
		{"operator service account", client(OperatorClientID, OperatorClientSecret), []string{"temporal-system:admin", "default:admin"}},
		{"alice ir-responder", person("alice"), []string{"default:read"}},
		{"bob ir-lead", person("bob"), []string{"default:read"}},
		{"carol ir-admin", person("carol"), []string{"default:read"}},
		{"jdoe no ir role", person("jdoe"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.login()
			var c permissionClaims
			l.verifiedClaims(tok.AccessToken, &c)
			if !slices.Equal(c.Permissions, tt.want) {
				t.Fatalf("permissions = %q, want %q", c.Permissions, tt.want)
			}
			if tok.RefreshToken == "" {
				return
			}
			// A refreshed token carries the same permissions (mappers run on every grant).
			ref, err := l.gc.RefreshToken(l.ctx, tok.RefreshToken, ConsoleClientID, "", Realm)
			if err != nil {
				t.Fatalf("RefreshToken: %v", err)
			}
			var rc permissionClaims
			l.verifiedClaims(ref.AccessToken, &rc)
			if !slices.Equal(rc.Permissions, tt.want) {
				t.Fatalf("refreshed permissions = %q, want %q", rc.Permissions, tt.want)
			}
			// The ID token does not carry them (id.token.claim false).
			var ic map[string]any
			decodeClaims(t, tok.IDToken, &ic)
			if _, ok := ic[PermissionsClaim]; ok {
				t.Fatalf("id token carries %s: %v", PermissionsClaim, ic[PermissionsClaim])
			}
		})
	}

	// The responders' permission comes from their role, not from the client they log in with: the
	// same realm with alice's ir-responder taken away and ir-lead given to jdoe.
	t.Run("follows role mappings", func(t *testing.T) {
		raw, err := seedFS.ReadFile("realms/iru.json")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		for _, u := range doc["users"].([]any) {
			u := u.(map[string]any)
			switch u["username"] {
			case "alice":
				u["realmRoles"] = []string{"default-roles-iru"}
			case "jdoe":
				u["realmRoles"] = []string{"default-roles-iru", RoleLead}
			}
		}
		changed, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		l2 := newLab(t, func(o *Options) { o.Realms = [][]byte{changed} })
		var alice, jdoe permissionClaims
		l2.verifiedClaims(l2.login("alice").AccessToken, &alice)
		l2.verifiedClaims(l2.login("jdoe").AccessToken, &jdoe)
		if len(alice.Permissions) != 0 || !slices.Equal(jdoe.Permissions, []string{"default:read"}) {
			t.Fatalf("after role changes: alice %q, jdoe %q", alice.Permissions, jdoe.Permissions)
		}
	})

	// gocloak's RetrospectToken decodes "permissions" as UMA permissions (objects): the Temporal
	// permissions are left out of introspection (Keycloak 23's "Add to token introspection" off),
	// so the API server's introspection keeps working; Temporal reads them from the JWT.
	t.Run("kept out of introspection", func(t *testing.T) {
		tok := l.login("bob")
		res, err := l.gc.RetrospectToken(l.ctx, tok.AccessToken, APIClientID, APIClientSecret, Realm)
		if err != nil || res.Active == nil || !*res.Active {
			t.Fatalf("RetrospectToken = %+v, %v", res, err)
		}
		resp, body := l.do(http.MethodPost, "/realms/iru/protocol/openid-connect/token/introspect", "",
			strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()),
			"Content-Type", "application/x-www-form-urlencoded",
			"Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(APIClientID+":"+APIClientSecret)))
		if resp.StatusCode != http.StatusOK || strings.Contains(body, PermissionsClaim) || !strings.Contains(body, `"active":true`) {
			t.Fatalf("introspection = %d %s", resp.StatusCode, body)
		}
	})

	t.Run("mappers visible through the admin API", func(t *testing.T) {
		c, err := l.gc.GetClient(l.ctx, l.workerToken(), Realm, l.clientUUID(ConsoleClientID))
		if err != nil {
			t.Fatalf("GetClient: %v", err)
		}
		var found bool
		for _, m := range *c.ProtocolMappers {
			if *m.ProtocolMapper == mapperClientRole {
				cfg := *m.Config
				found = cfg[cfgClaimName] == PermissionsClaim && cfg[cfgClientRoleClient] == TemporalClientID && cfg[cfgMultivalued] == "true"
			}
		}
		if !found {
			t.Fatalf("console client mappers %+v lack the permissions role mapper", *c.ProtocolMappers)
		}
	})
}

// mapperRealm is a minimal realm export whose client "app" has the given protocol mappers.
func mapperRealm(t *testing.T, mappers ...map[string]any) []byte {
	t.Helper()
	doc := map[string]any{
		"realm": "r",
		"roles": map[string]any{
			"realm":  []map[string]any{{"name": "ops"}, {"name": "dev"}},
			"client": map[string]any{"api.v1": []map[string]any{{"name": "read"}, {"name": "write"}}},
		},
		"users": []map[string]any{{
			"username": "u", "enabled": true, "realmRoles": []string{"ops", "dev"},
			"clientRoles": map[string][]string{"api.v1": {"write", "read"}},
			"attributes":  map[string][]string{"team": {"blue", "green"}},
			"credentials": []map[string]any{{"type": "password", "value": "pw"}},
		}},
		"clients": []map[string]any{
			{"clientId": "app", "publicClient": true, "directAccessGrantsEnabled": true, "protocolMappers": mappers},
			{"clientId": "api.v1", "bearerOnly": true},
		},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mapper(typ string, cfg map[string]string) map[string]any {
	return map[string]any{"name": typ + "-" + cfg["claim.name"], "protocol": "openid-connect", "protocolMapper": typ, "config": cfg}
}

func TestProtocolMapperTypes(t *testing.T) {
	access := func(kv ...string) map[string]string {
		m := map[string]string{"access.token.claim": "true"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name   string
		mapper map[string]any
		claim  string // top-level claim to look at
		want   any    // JSON-decoded value; nil: absent
	}{
		{"hardcoded JSON array", mapper(mapperHardcoded, access("claim.name", "perms", "claim.value", `["a:read","b:write"]`, "jsonType.label", "JSON")), "perms", []any{"a:read", "b:write"}},
		{"hardcoded JSON object", mapper(mapperHardcoded, access("claim.name", "obj", "claim.value", `{"k":1}`, "jsonType.label", "JSON")), "obj", map[string]any{"k": float64(1)}},
		{"hardcoded String keeps JSON text", mapper(mapperHardcoded, access("claim.name", "perms", "claim.value", `["a:read"]`, "jsonType.label", "String")), "perms", `["a:read"]`},
		{"hardcoded int", mapper(mapperHardcoded, access("claim.name", "n", "claim.value", "42", "jsonType.label", "int")), "n", float64(42)},
		{"hardcoded boolean", mapper(mapperHardcoded, access("claim.name", "b", "claim.value", "TRUE", "jsonType.label", "boolean")), "b", true},
		{"nested claim path", mapper(mapperHardcoded, access("claim.name", `x.y\.z`, "claim.value", "v")), "x", map[string]any{"y.z": "v"}},
		{"not in access token", mapper(mapperHardcoded, map[string]string{"claim.name": "h", "claim.value": "v", "id.token.claim": "true"}), "h", nil},
		{"access flag must be exactly true", mapper(mapperHardcoded, map[string]string{"claim.name": "h", "claim.value": "v", "access.token.claim": "yes"}), "h", nil},
		{"realm roles multivalued with prefix", mapper(mapperRealmRole, access("claim.name", "groups", "multivalued", "true", "jsonType.label", "String", "usermodel.realmRoleMapping.rolePrefix", "role:")), "groups",
			[]any{"role:dev", "role:ops"}},
		{"realm roles single-valued takes one", mapper(mapperRealmRole, access("claim.name", "one", "jsonType.label", "String")), "one", "dev"},
		{"client roles of one client", mapper(mapperClientRole, access("claim.name", "p", "multivalued", "true", "usermodel.clientRoleMapping.clientId", "api.v1")), "p", []any{"read", "write"}},
		{"client roles under ${client_id}", mapper(mapperClientRole, access("claim.name", "c.${client_id}", "multivalued", "true", "usermodel.clientRoleMapping.clientId", "api.v1")), "c", map[string]any{"api.v1": []any{"read", "write"}}},
		{"client roles of a client the user has none of", mapper(mapperClientRole, access("claim.name", "p", "multivalued", "true", "usermodel.clientRoleMapping.clientId", "app")), "p", nil},
		{"user attribute multivalued", mapper(mapperUserAttribute, access("claim.name", "team", "user.attribute", "team", "multivalued", "true")), "team", []any{"blue", "green"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, func(o *Options) { o.Realms = [][]byte{mapperRealm(t, tt.mapper)} })
			tok, err := l.gc.Login(l.ctx, "app", "", "r", "u", "pw")
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			var c map[string]any
			decodeClaims(t, tok.AccessToken, &c)
			got, ok := c[tt.claim]
			if tt.want == nil {
				if ok {
					t.Fatalf("claim %s = %v, want absent", tt.claim, got)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("claim %s = %#v, want %#v", tt.claim, got, tt.want)
			}
		})
	}
}

func TestProtocolMapperCannotOverrideStandardClaims(t *testing.T) {
	m := mapper(mapperHardcoded, map[string]string{"claim.name": "sub", "claim.value": "someone-else", "access.token.claim": "true"})
	l := newLab(t, func(o *Options) { o.Realms = [][]byte{mapperRealm(t, m)} })
	tok, err := l.gc.Login(l.ctx, "app", "", "r", "u", "pw")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	var c permissionClaims
	decodeClaims(t, tok.AccessToken, &c)
	if c.Sub == "someone-else" || c.Sub == "" {
		t.Fatalf("sub = %q: a mapper replaced the subject", c.Sub)
	}
}

func TestBadProtocolMappersRefusedOnLoad(t *testing.T) {
	tests := []struct {
		name   string
		mapper map[string]any
		want   string
	}{
		{"unknown type", mapper("oidc-script-mapper", map[string]string{"claim.name": "x"}), "not implemented"},
		{"JSON that does not parse", mapper(mapperHardcoded, map[string]string{"claim.name": "x", "claim.value": "[oops", "jsonType.label": "JSON"}), "cannot map"},
		{"int that is not one", mapper(mapperHardcoded, map[string]string{"claim.name": "x", "claim.value": "1.5", "jsonType.label": "int"}), "cannot map"},
		{"no claim name", mapper(mapperHardcoded, map[string]string{"claim.value": "v"}), "missing claim.name"},
		{"unknown JSON type", mapper(mapperHardcoded, map[string]string{"claim.name": "x", "jsonType.label": "float"}), "unknown jsonType.label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{KeyBits: 1024, Realms: [][]byte{mapperRealm(t, tt.mapper)}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// envPlaceholder matches the ${VAR} placeholders Keycloak resolves when importing a realm file.
var envPlaceholder = regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`)

// TestProductionRealmPermissions imports deploy/keycloak/iru-realm.json (the file compose gives
// a real Keycloak, secrets resolved from the environment as Keycloak does) and checks that its
// service accounts get the permissions Temporal's authorizer needs, and that its mappers and
// Temporal roles are the lab realm's.
func TestProductionRealmPermissions(t *testing.T) {
	raw, err := os.ReadFile("../../../deploy/keycloak/iru-realm.json")
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	doc := envPlaceholder.ReplaceAllStringFunc(string(raw), func(m string) string {
		name := envPlaceholder.FindStringSubmatch(m)[1]
		secrets[name] = "prod-" + strings.ToLower(name)
		return secrets[name]
	})
	for _, name := range []string{"IRU_KC_WORKER_SECRET", "IRU_KC_API_SECRET", "IRU_KC_OPERATOR_SECRET"} {
		if _, ok := secrets[name]; !ok {
			t.Errorf("production realm does not take %s from the environment", name)
		}
	}
	if strings.Contains(string(raw), "lab-secret") || strings.Contains(string(raw), UserPassword) {
		t.Error("production realm file contains a lab credential")
	}
	l := newLab(t, func(o *Options) { o.Realms = [][]byte{[]byte(doc)} })
	for _, tt := range []struct {
		id, env string
		want    []string
	}{
		{WorkerClientID, "IRU_KC_WORKER_SECRET", []string{"default:write"}},
		{APIClientID, "IRU_KC_API_SECRET", []string{"default:write"}},
		{OperatorClientID, "IRU_KC_OPERATOR_SECRET", []string{"temporal-system:admin", "default:admin"}},
	} {
		tok, err := l.gc.LoginClient(l.ctx, tt.id, secrets[tt.env], Realm)
		if err != nil {
			t.Fatalf("LoginClient %s: %v", tt.id, err)
		}
		var c permissionClaims
		l.verifiedClaims(tok.AccessToken, &c)
		if !slices.Equal(c.Permissions, tt.want) {
			t.Errorf("%s permissions = %q, want %q", tt.id, c.Permissions, tt.want)
		}
	}

	// The same mappers and Temporal roles as the lab realm, so what the lab tests is what ships.
	labRaw, err := seedFS.ReadFile("realms/iru.json")
	if err != nil {
		t.Fatal(err)
	}
	prod, err := parseRealmExport([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	labRx, err := parseRealmExport(labRaw)
	if err != nil {
		t.Fatal(err)
	}
	mappersOf := func(rx *realmExport) map[string]any {
		out := map[string]any{}
		for _, c := range rx.Clients {
			out[c.ClientID] = c.ProtocolMappers
		}
		return out
	}
	if !reflect.DeepEqual(mappersOf(prod), mappersOf(labRx)) {
		t.Errorf("protocol mappers differ between deploy/keycloak/iru-realm.json and the lab realm")
	}
	if !reflect.DeepEqual(prod.Roles, labRx.Roles) {
		t.Errorf("roles differ between deploy/keycloak/iru-realm.json and the lab realm")
	}
}
