package keycloak

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed realms/*.json
var seedFS embed.FS

// Lab credentials. They are fixed, documented defaults that match the embedded realm exports in
// realms/*.json, so a real Keycloak that imported the same files accepts the same values.
const (
	// DefaultAddr is where Start listens when Options.Addr is empty.
	DefaultAddr = "127.0.0.1:8180"
	// MasterRealm is the administration realm.
	MasterRealm = "master"
	// Realm is the platform's realm.
	Realm = "iru"
	// AdminUsername is the master-realm administrator (password grant through AdminCLIClientID).
	AdminUsername = "admin"
	// AdminPassword is AdminUsername's lab password.
	AdminPassword = "iru-lab-admin"
	// AdminCLIClientID is the public master-realm client gocloak's LoginAdmin uses.
	AdminCLIClientID = "admin-cli"
	// UserPassword is the lab password of every seeded user of Realm (alice, bob, carol, jdoe, asmith).
	UserPassword = "iru-lab-password"
	// WorkerClientID is the confidential client of the Temporal worker (service account with
	// realm-management roles to view and manage users, clients, the realm and events).
	WorkerClientID = "iru-worker"
	// WorkerClientSecret is WorkerClientID's lab secret.
	WorkerClientSecret = "iru-worker-lab-secret"
	// APIClientID is the confidential client of the API server: it introspects responder tokens and
	// is the bearer audience of responder tokens.
	APIClientID = "iru-api"
	// APIClientSecret is APIClientID's lab secret.
	APIClientSecret = "iru-api-lab-secret"
	// ConsoleClientID is the public client with direct access grants that `starter login` uses.
	ConsoleClientID = "iru-console"
	// OperatorClientID is the confidential client of cluster setup: its service account's tokens
	// carry temporal-system:admin and default:admin, to create the namespace and search attributes.
	OperatorClientID = "iru-operator"
	// OperatorClientSecret is OperatorClientID's lab secret.
	OperatorClientSecret = "iru-operator-lab-secret"
	// TemporalClientID is the bearer-only client whose roles are Temporal permissions
	// ("<namespace>:<role>"); ir-responder, ir-lead and ir-admin include its role default:read.
	TemporalClientID = "temporal"
	// PermissionsClaim is the access-token claim Temporal's default claim mapper reads
	// (permissionsClaimName): a list of "<namespace>:<role>" strings set by protocol mappers, e.g.
	// ["default:write"] for the worker and the API server, ["default:read"] for responders.
	PermissionsClaim = "permissions"
)

// LabTOTPSeeds are the lab users' TOTP seeds (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps),
// base32 as an authenticator app takes them (otpauth://totp/iru:bob?secret=...). The realm export
// stores each as Keycloak does: an "otp" credential whose secretData value is the raw secret
// ("iru-lab-totp-bob-000"), whose bytes base32-encode to the seed. The realm requires a code from
// holders of ir-lead and ir-admin (bob, carol); alice, jdoe and asmith have none.
var LabTOTPSeeds = map[string]string{
	"bob":   "NFZHKLLMMFRC25DPORYC2YTPMIWTAMBQ",
	"carol": "NFZHKLLMMFRC25DPORYC2Y3BOJXWYLJQ",
}

// RoleOTPRequired is the realm role the direct grant and browser flows' OTP condition checks;
// ir-lead and ir-admin include it.
const RoleOTPRequired = "otp-required"

// Realm roles of Realm.
const (
	// RoleResponder is held by alice and bob: view incidents, approve low-risk steps.
	RoleResponder = "ir-responder"
	// RoleLead is held by bob and carol: approve risky steps.
	RoleLead = "ir-lead"
	// RoleAdmin is held by carol: administer the platform.
	RoleAdmin = "ir-admin"
)

// realmExport is the subset of Keycloak's realm-export format (RealmRepresentation) the simulator
// reads. Unknown fields are ignored, as Keycloak's importer ignores what it does not need.
type realmExport struct {
	ID                        string          `json:"id"`
	Realm                     string          `json:"realm"`
	DisplayName               string          `json:"displayName"`
	Enabled                   *bool           `json:"enabled"`
	SSLRequired               string          `json:"sslRequired"`
	AccessTokenLifespan       int             `json:"accessTokenLifespan"`
	SSOSessionIdleTimeout     int             `json:"ssoSessionIdleTimeout"`
	SSOSessionMaxLifespan     int             `json:"ssoSessionMaxLifespan"`
	NotBefore                 int64           `json:"notBefore"`
	EditUsernameAllowed       bool            `json:"editUsernameAllowed"`
	EventsEnabled             bool            `json:"eventsEnabled"`
	AdminEventsEnabled        bool            `json:"adminEventsEnabled"`
	AdminEventsDetailsEnabled bool            `json:"adminEventsDetailsEnabled"`
	EnabledEventTypes         []string        `json:"enabledEventTypes"`
	Roles                     rolesExport     `json:"roles"`
	Users                     []userExport    `json:"users"`
	Clients                   []clientExport  `json:"clients"`
	DefaultRole               *roleExport     `json:"defaultRole"`
	Attributes                json.RawMessage `json:"attributes"`

	BruteForceProtected          bool               `json:"bruteForceProtected"`
	PermanentLockout             bool               `json:"permanentLockout"`
	FailureFactor                int                `json:"failureFactor"`
	WaitIncrementSeconds         int                `json:"waitIncrementSeconds"`
	MaxFailureWaitSeconds        int                `json:"maxFailureWaitSeconds"`
	MinimumQuickLoginWaitSeconds int                `json:"minimumQuickLoginWaitSeconds"`
	QuickLoginCheckMilliSeconds  int                `json:"quickLoginCheckMilliSeconds"`
	MaxDeltaTimeSeconds          int                `json:"maxDeltaTimeSeconds"`
	OTPPolicyType                string             `json:"otpPolicyType"`
	OTPPolicyAlgorithm           string             `json:"otpPolicyAlgorithm"`
	OTPPolicyDigits              int                `json:"otpPolicyDigits"`
	OTPPolicyPeriod              int                `json:"otpPolicyPeriod"`
	OTPPolicyLookAheadWindow     *int               `json:"otpPolicyLookAheadWindow"`
	OTPPolicyCodeReusable        bool               `json:"otpPolicyCodeReusable"`
	AuthenticationFlows          []flowExport       `json:"authenticationFlows"`
	AuthenticatorConfig          []authConfigExport `json:"authenticatorConfig"`
	DirectGrantFlow              string             `json:"directGrantFlow"`
	BrowserFlow                  string             `json:"browserFlow"`
	PasswordPolicy               string             `json:"passwordPolicy"`
}

type rolesExport struct {
	Realm  []roleExport            `json:"realm"`
	Client map[string][]roleExport `json:"client"`
}

type roleExport struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Composite   bool   `json:"composite"`
	Composites  *struct {
		Realm  []string            `json:"realm"`
		Client map[string][]string `json:"client"`
	} `json:"composites"`
}

type userExport struct {
	ID                     string              `json:"id"`
	Username               string              `json:"username"`
	Email                  string              `json:"email"`
	FirstName              string              `json:"firstName"`
	LastName               string              `json:"lastName"`
	Enabled                bool                `json:"enabled"`
	EmailVerified          bool                `json:"emailVerified"`
	CreatedTimestamp       int64               `json:"createdTimestamp"`
	ServiceAccountClientID string              `json:"serviceAccountClientId"`
	Attributes             map[string][]string `json:"attributes"`
	RequiredActions        []string            `json:"requiredActions"`
	RealmRoles             []string            `json:"realmRoles"`
	ClientRoles            map[string][]string `json:"clientRoles"`
	Credentials            []credentialExport  `json:"credentials"`
}

type clientExport struct {
	ID                        string            `json:"id"`
	ClientID                  string            `json:"clientId"`
	Name                      string            `json:"name"`
	Description               string            `json:"description"`
	Enabled                   *bool             `json:"enabled"`
	ClientAuthenticatorType   string            `json:"clientAuthenticatorType"`
	Secret                    string            `json:"secret"`
	PublicClient              bool              `json:"publicClient"`
	BearerOnly                bool              `json:"bearerOnly"`
	StandardFlowEnabled       *bool             `json:"standardFlowEnabled"`
	DirectAccessGrantsEnabled bool              `json:"directAccessGrantsEnabled"`
	ServiceAccountsEnabled    bool              `json:"serviceAccountsEnabled"`
	FullScopeAllowed          *bool             `json:"fullScopeAllowed"`
	NotBefore                 int64             `json:"notBefore"`
	AdminURL                  string            `json:"adminUrl"`
	RedirectURIs              []string          `json:"redirectUris"`
	WebOrigins                []string          `json:"webOrigins"`
	Attributes                map[string]string `json:"attributes"`
	ProtocolMappers           []struct {
		ID              string            `json:"id"`
		Name            string            `json:"name"`
		Protocol        string            `json:"protocol"`
		ProtocolMapper  string            `json:"protocolMapper"`
		ConsentRequired bool              `json:"consentRequired"`
		Config          map[string]string `json:"config"`
	} `json:"protocolMappers"`
}

// realmManagementRoles are the client roles Keycloak creates on every realm's management client.
var realmManagementRoles = []string{
	"create-client", "impersonation", "manage-authorization", "manage-clients", "manage-events",
	"manage-identity-providers", "manage-realm", "manage-users", "query-clients", "query-groups",
	"query-realms", "query-users", "realm-admin", "view-authorization", "view-clients", "view-events",
	"view-identity-providers", "view-realm", "view-users",
}

// loadSeed parses every *.json file at the top of fsys as a realm export.
func loadSeed(fsys fs.FS) ([]*realmExport, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read realm directory: %w", err)
	}
	var out []*realmExport
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".json" {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read realm file %s: %w", e.Name(), err)
		}
		rx, err := parseRealmExport(b)
		if err != nil {
			return nil, fmt.Errorf("parse realm file %s: %w", e.Name(), err)
		}
		out = append(out, rx)
	}
	return out, nil
}

func parseRealmExport(b []byte) (*realmExport, error) {
	var rx realmExport
	if err := json.Unmarshal(b, &rx); err != nil {
		return nil, fmt.Errorf("decode realm export: %w", err)
	}
	if rx.Realm == "" {
		return nil, fmt.Errorf("decode realm export: missing \"realm\"")
	}
	return &rx, nil
}

// buildRealm turns a realm export into the simulator's model, adding what Keycloak creates on
// import (default roles, the realm-management/account/admin-cli clients, service-account users).
// allRealms lists every realm name so the master realm gets one "<realm>-realm" client each.
func buildRealm(rx *realmExport, allRealms []string, nowMillis int64) (*realm, error) {
	r := &realm{
		id:                  orDefault(rx.ID, rx.Realm),
		name:                rx.Realm,
		displayName:         rx.DisplayName,
		enabled:             rx.Enabled == nil || *rx.Enabled,
		sslRequired:         orDefault(rx.SSLRequired, "external"),
		accessTokenLifespan: orInt(rx.AccessTokenLifespan, 300),
		ssoIdle:             orInt(rx.SSOSessionIdleTimeout, 1800),
		ssoMax:              orInt(rx.SSOSessionMaxLifespan, 36000),
		notBefore:           rx.NotBefore,
		editUsernameAllowed: rx.EditUsernameAllowed,
		eventsEnabled:       rx.EventsEnabled,
		adminEventsEnabled:  rx.AdminEventsEnabled,
		adminEventsDetails:  rx.AdminEventsDetailsEnabled,
		enabledEventTypes:   rx.EnabledEventTypes,
		passwordPolicy:      rx.PasswordPolicy,
		roles:               map[string]*role{},
		clients:             map[string]*client{},
		users:               map[string]*user{},
		sessions:            map[string]*session{},
		revoked:             map[string]int64{},
		failures:            map[string]*loginFailure{},
		usedCodes:           map[string]time.Time{},
		authSessions:        map[string]*authSession{},
		codes:               map[string]*authCode{},
		directGrantFlow:     rx.DirectGrantFlow,
		browserFlow:         orDefault(rx.BrowserFlow, "browser"),
		bruteForce: bruteForce{
			// Keycloak's defaults for the fields an export leaves out.
			enabled: rx.BruteForceProtected, permanentLockout: rx.PermanentLockout,
			failureFactor: orInt(rx.FailureFactor, 30),
			waitIncrement: seconds(orInt(rx.WaitIncrementSeconds, 60)),
			maxWait:       seconds(orInt(rx.MaxFailureWaitSeconds, 900)),
			minQuickWait:  seconds(orInt(rx.MinimumQuickLoginWaitSeconds, 60)),
			quickCheck:    time.Duration(orInt(rx.QuickLoginCheckMilliSeconds, 1000)) * time.Millisecond,
			maxDelta:      seconds(orInt(rx.MaxDeltaTimeSeconds, 43200)),
		},
		otp: otpPolicy{
			typ: orDefault(rx.OTPPolicyType, "totp"), algorithm: orDefault(rx.OTPPolicyAlgorithm, "HmacSHA1"),
			digits: orInt(rx.OTPPolicyDigits, 6), period: orInt(rx.OTPPolicyPeriod, 30), lookAhead: 1,
			codeReusable: rx.OTPPolicyCodeReusable,
		},
	}
	if rx.OTPPolicyLookAheadWindow != nil {
		r.otp.lookAhead = *rx.OTPPolicyLookAheadWindow
	}
	if r.otp.typ != "totp" {
		return nil, fmt.Errorf("realm %s: otpPolicyType %q is not implemented (totp only)", r.name, r.otp.typ)
	}
	if err := loadFlows(r, rx.AuthenticationFlows, rx.AuthenticatorConfig); err != nil {
		return nil, err
	}
	for _, re := range rx.Roles.Realm {
		r.roles[re.Name] = roleFromExport(r, re, "", r.id)
	}
	defaultRole := "default-roles-" + r.name
	if _, ok := r.roles[defaultRole]; !ok {
		r.roles[defaultRole] = &role{
			id: stableID(r.name, "role", defaultRole), name: defaultRole, containerID: r.id,
			description:      "${role_default-roles}",
			realmComposites:  []string{"offline_access", "uma_authorization"},
			clientComposites: map[string][]string{"account": {"view-profile", "manage-account"}},
		}
	}
	for _, name := range []string{"offline_access", "uma_authorization"} {
		if _, ok := r.roles[name]; !ok {
			r.roles[name] = &role{id: stableID(r.name, "role", name), name: name, containerID: r.id,
				description: "${role_" + name + "}"}
		}
	}
	for _, ce := range rx.Clients {
		c, err := clientFromExport(r, ce)
		if err != nil {
			return nil, err
		}
		r.addClient(c)
	}
	// Clients Keycloak creates in every realm when they are not in the export.
	r.ensureClient("account", false, false, []string{"manage-account", "view-profile", "manage-account-links", "view-applications", "view-consent", "manage-consent", "delete-account", "view-groups"})
	r.ensureClient("admin-cli", true, true, nil)
	r.ensureClient("broker", false, false, []string{"read-token"})
	r.ensureClient("security-admin-console", true, false, nil)
	r.ensureClient("account-console", true, false, nil)
	if r.name == MasterRealm {
		if _, ok := r.roles["admin"]; !ok {
			r.roles["admin"] = &role{id: stableID(r.name, "role", "admin"), name: "admin", containerID: r.id, description: "${role_admin}"}
		}
		if _, ok := r.roles["create-realm"]; !ok {
			r.roles["create-realm"] = &role{id: stableID(r.name, "role", "create-realm"), name: "create-realm", containerID: r.id, description: "${role_create-realm}"}
		}
		for _, name := range allRealms {
			c := r.ensureClient(name+"-realm", false, false, realmManagementRoles)
			c.bearerOnly = true
			c.name = name + " Realm"
		}
	} else {
		c := r.ensureClient("realm-management", false, false, realmManagementRoles)
		c.bearerOnly = true
		c.name = "${client_realm-management}"
	}
	for clientID, roles := range rx.Roles.Client {
		c := r.clientByClientID(clientID)
		if c == nil {
			return nil, fmt.Errorf("realm %s: roles for unknown client %q", r.name, clientID)
		}
		for _, re := range roles {
			c.roles[re.Name] = roleFromExport(r, re, c.clientID, c.id)
		}
	}
	for _, ue := range rx.Users {
		u, err := userFromExport(r, ue, nowMillis)
		if err != nil {
			return nil, err
		}
		r.users[u.id] = u
	}
	// Keycloak creates the service-account user of every client that has service accounts enabled.
	for _, c := range r.clients {
		if !c.serviceAccounts || r.serviceAccountUser(c.clientID) != nil {
			continue
		}
		u := &user{
			id: stableID(r.name, "user", "service-account-"+c.clientID), username: "service-account-" + c.clientID,
			enabled: true, created: nowMillis, serviceAccountClientID: c.clientID,
			realmRoles: []string{defaultRole}, clientRoles: map[string][]string{},
		}
		r.users[u.id] = u
	}
	return r, nil
}

func roleFromExport(r *realm, re roleExport, clientID, containerID string) *role {
	ro := &role{
		id: orDefault(re.ID, stableID(r.name, "role", clientID+"/"+re.Name)), name: re.Name,
		description: re.Description, clientRole: clientID != "", containerID: containerID,
	}
	if re.Composites != nil {
		ro.realmComposites = re.Composites.Realm
		ro.clientComposites = re.Composites.Client
	}
	return ro
}

func clientFromExport(r *realm, ce clientExport) (*client, error) {
	c := &client{
		id: orDefault(ce.ID, stableID(r.name, "client", ce.ClientID)), clientID: ce.ClientID,
		name: ce.Name, description: ce.Description, enabled: ce.Enabled == nil || *ce.Enabled,
		secret: ce.Secret, public: ce.PublicClient, bearerOnly: ce.BearerOnly,
		standardFlow: ce.StandardFlowEnabled == nil || *ce.StandardFlowEnabled,
		directGrants: ce.DirectAccessGrantsEnabled, serviceAccounts: ce.ServiceAccountsEnabled,
		fullScope: ce.FullScopeAllowed == nil || *ce.FullScopeAllowed, notBefore: ce.NotBefore,
		adminURL: ce.AdminURL, redirectURIs: ce.RedirectURIs, webOrigins: ce.WebOrigins,
		attributes: ce.Attributes, roles: map[string]*role{},
	}
	if c.attributes == nil {
		c.attributes = map[string]string{}
	}
	for _, me := range ce.ProtocolMappers {
		if me.Protocol != "" && me.Protocol != "openid-connect" {
			continue
		}
		m := &protocolMapper{
			id: orDefault(me.ID, stableID(r.name, "mapper", ce.ClientID, me.Name)), name: me.Name,
			mapperType: me.ProtocolMapper, consentRequired: me.ConsentRequired, config: me.Config,
		}
		if m.config == nil {
			m.config = map[string]string{}
		}
		if err := validateMapper(ce.ClientID, m); err != nil {
			return nil, fmt.Errorf("realm %s: %w", r.name, err)
		}
		c.mappers = append(c.mappers, m)
		if m.mapperType != mapperAudience {
			continue
		}
		aud := m.config[cfgAudience]
		if aud != "" && m.config[cfgAccessToken] != "false" {
			c.audiences = append(c.audiences, aud)
		}
	}
	if !c.public && !c.bearerOnly && c.secret == "" {
		c.secret = randomSecret()
	}
	return c, nil
}

func userFromExport(r *realm, ue userExport, nowMillis int64) (*user, error) {
	if ue.Username == "" {
		return nil, fmt.Errorf("realm %s: user without username", r.name)
	}
	u := &user{
		id: orDefault(ue.ID, stableID(r.name, "user", ue.Username)), username: strings.ToLower(ue.Username),
		email: strings.ToLower(ue.Email), firstName: ue.FirstName, lastName: ue.LastName,
		enabled: ue.Enabled, emailVerified: ue.EmailVerified, created: ue.CreatedTimestamp,
		serviceAccountClientID: ue.ServiceAccountClientID, attributes: ue.Attributes,
		requiredActions: ue.RequiredActions, realmRoles: ue.RealmRoles, clientRoles: ue.ClientRoles,
	}
	if u.created == 0 {
		u.created = nowMillis
	}
	if u.clientRoles == nil {
		u.clientRoles = map[string][]string{}
	}
	for _, name := range u.realmRoles {
		if _, ok := r.roles[name]; !ok {
			return nil, fmt.Errorf("realm %s: user %s: unknown realm role %q", r.name, u.username, name)
		}
	}
	for clientID, names := range u.clientRoles {
		c := r.clientByClientID(clientID)
		if c == nil {
			return nil, fmt.Errorf("realm %s: user %s: unknown client %q", r.name, u.username, clientID)
		}
		for _, name := range names {
			if _, ok := c.roles[name]; !ok {
				return nil, fmt.Errorf("realm %s: user %s: unknown role %q of client %q", r.name, u.username, name, clientID)
			}
		}
	}
	for _, cred := range ue.Credentials {
		switch cred.Type {
		case "password":
			u.password = cred.Value
		case "otp":
			c, err := otpFromExport(r.name, u.username, cred)
			if err != nil {
				return nil, err
			}
			u.otp = append(u.otp, c)
		}
	}
	return u, nil
}

// realmNames returns the sorted names of the exports.
func realmNames(rxs []*realmExport) []string {
	names := make([]string, 0, len(rxs))
	for _, rx := range rxs {
		names = append(names, rx.Realm)
	}
	sort.Strings(names)
	return names
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

func orInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
