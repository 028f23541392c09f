package keycloak

import (
	"crypto/rand"
	"encoding/base64"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
)

// realm is one simulated realm. Every field is guarded by Server.mu.
type realm struct {
	id, name, displayName string
	enabled               bool
	sslRequired           string
	accessTokenLifespan   int // seconds
	ssoIdle, ssoMax       int // seconds
	notBefore             int64
	editUsernameAllowed   bool
	eventsEnabled         bool
	adminEventsEnabled    bool
	adminEventsDetails    bool
	enabledEventTypes     []string // empty: Keycloak's save-by-default types
	passwordPolicy        string   // Keycloak's policy string, e.g. "length(12) and notUsername"; stored, not enforced

	roles    map[string]*role    // realm roles by name
	clients  map[string]*client  // by internal id (uuid)
	users    map[string]*user    // by id
	sessions map[string]*session // by id
	revoked  map[string]int64    // revoked access-token jti -> exp

	bruteForce      bruteForce
	failures        map[string]*loginFailure // by user id
	otp             otpPolicy
	usedCodes       map[string]time.Time // "<credential id>.<code>" -> when it may be forgotten
	flows           map[string]*authFlow // by alias
	authConfig      map[string]map[string]string
	directGrantFlow string
	browserFlow     string
	authSessions    map[string]*authSession // browser logins in progress, by tab id
	codes           map[string]*authCode    // issued authorization codes

	keys        []*signingKey // newest last; the last one signs
	events      []Event
	adminEvents []AdminEvent
}

type role struct {
	id, name, description string
	clientRole            bool
	containerID           string
	realmComposites       []string
	clientComposites      map[string][]string
}

type client struct {
	id, clientID, name, description string
	enabled                         bool
	secret                          string
	public, bearerOnly              bool
	standardFlow, directGrants      bool
	serviceAccounts, fullScope      bool
	notBefore                       int64
	adminURL                        string
	redirectURIs, webOrigins        []string
	attributes                      map[string]string
	audiences                       []string // from oidc-audience-mapper protocol mappers
	mappers                         []*protocolMapper
	roles                           map[string]*role
}

type user struct {
	id, username, email    string
	firstName, lastName    string
	enabled, emailVerified bool
	created                int64 // ms
	password               string
	otp                    []*otpCredential
	serviceAccountClientID string
	attributes             map[string][]string
	requiredActions        []string
	realmRoles             []string
	clientRoles            map[string][]string // clientId -> role names
	notBefore              int64
}

type session struct {
	id, userID string
	amr        []string          // authentication method references of the login (Keycloak's AMR)
	clients    map[string]string // client uuid -> clientId
	start      time.Time
	lastAccess time.Time
	ip         string
}

func (r *realm) addClient(c *client) { r.clients[c.id] = c }

func (r *realm) clientByClientID(clientID string) *client {
	for _, c := range r.clients {
		if c.clientID == clientID {
			return c
		}
	}
	return nil
}

// ensureClient returns the client with clientID, creating it (as Keycloak does for its built-in
// clients) when the export did not define it, and adds any missing roles.
func (r *realm) ensureClient(clientID string, public, directGrants bool, roles []string) *client {
	c := r.clientByClientID(clientID)
	if c == nil {
		c = &client{
			id: stableID(r.name, "client", clientID), clientID: clientID, name: "${client_" + clientID + "}",
			enabled: true, public: public, directGrants: directGrants, fullScope: true,
			attributes: map[string]string{}, roles: map[string]*role{},
		}
		if !public {
			c.secret = randomSecret()
		}
		r.addClient(c)
	}
	for _, name := range roles {
		if _, ok := c.roles[name]; !ok {
			c.roles[name] = &role{id: stableID(r.name, "role", clientID+"/"+name), name: name,
				clientRole: true, containerID: c.id, description: "${role_" + name + "}"}
		}
	}
	return c
}

func (r *realm) userByUsername(username string) *user {
	for _, u := range r.users {
		if u.username == username {
			return u
		}
	}
	return nil
}

func (r *realm) serviceAccountUser(clientID string) *user {
	for _, u := range r.users {
		if u.serviceAccountClientID == clientID {
			return u
		}
	}
	return nil
}

// effectiveRoles expands u's direct role mappings through composites. It returns the realm roles
// and the client roles keyed by clientId, each sorted.
func (r *realm) effectiveRoles(u *user) ([]string, map[string][]string) {
	realmSet := map[string]bool{}
	clientSet := map[string]map[string]bool{}
	var addClient func(clientID, name string)
	var addRealm func(name string)
	addRealm = func(name string) {
		if realmSet[name] {
			return
		}
		ro, ok := r.roles[name]
		if !ok {
			return
		}
		realmSet[name] = true
		for _, n := range ro.realmComposites {
			addRealm(n)
		}
		for cid, ns := range ro.clientComposites {
			for _, n := range ns {
				addClient(cid, n)
			}
		}
	}
	addClient = func(clientID, name string) {
		if clientSet[clientID][name] {
			return
		}
		c := r.clientByClientID(clientID)
		if c == nil {
			return
		}
		ro, ok := c.roles[name]
		if !ok {
			return
		}
		if clientSet[clientID] == nil {
			clientSet[clientID] = map[string]bool{}
		}
		clientSet[clientID][name] = true
		for _, n := range ro.realmComposites {
			addRealm(n)
		}
		for cid, ns := range ro.clientComposites {
			for _, n := range ns {
				addClient(cid, n)
			}
		}
	}
	for _, n := range u.realmRoles {
		addRealm(n)
	}
	for cid, ns := range u.clientRoles {
		for _, n := range ns {
			addClient(cid, n)
		}
	}
	realmRoles := slices.Sorted(maps.Keys(realmSet))
	clientRoles := map[string][]string{}
	for cid, set := range clientSet {
		clientRoles[cid] = slices.Sorted(maps.Keys(set))
	}
	return realmRoles, clientRoles
}

// sessionValid reports whether s is still alive at now (Keycloak's AuthenticationManager.isSessionValid).
func (r *realm) sessionValid(s *session, now time.Time) bool {
	if s == nil {
		return false
	}
	if now.After(s.lastAccess.Add(time.Duration(r.ssoIdle) * time.Second)) {
		return false
	}
	return !now.After(s.start.Add(time.Duration(r.ssoMax) * time.Second))
}

// expireSessions drops sessions that timed out, as Keycloak's session expiration task does.
func (r *realm) expireSessions(now time.Time) {
	for id, s := range r.sessions {
		if !r.sessionValid(s, now) {
			delete(r.sessions, id)
		}
	}
	for jti, exp := range r.revoked {
		if exp < now.Unix() {
			delete(r.revoked, jti)
		}
	}
	for k, ac := range r.codes {
		if now.After(ac.exp) {
			delete(r.codes, k)
		}
	}
	for k, as := range r.authSessions {
		if now.Sub(as.created) > 30*time.Minute {
			delete(r.authSessions, k)
		}
	}
	for k, exp := range r.usedCodes {
		if !now.Before(exp) {
			delete(r.usedCodes, k)
		}
	}
}

// stableID derives a deterministic UUID so built-in objects keep their ids across restarts.
func stableID(parts ...string) string {
	name := ""
	for _, p := range parts {
		name += p + "\x00"
	}
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("iru-lab-keycloak\x00"+name)).String()
}

// randomSecret returns a client secret shaped like Keycloak's (32 URL-safe characters).
func randomSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("keycloak: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
