package keycloak

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/Nerzal/gocloak/v13"

	"github.com/iru-responder/responder/activities"
)

// MasterRealm is Keycloak's administration realm: refused unless listed in
// IRU_KEYCLOAK_ALLOWED_REALMS, and every account in it is protected.
const MasterRealm = "master"

// realmManagement is the client whose roles administer a realm; in the
// master realm each realm has a "<realm>-realm" client instead.
const realmManagement = "realm-management"

// serviceAccountPrefix starts the username Keycloak gives a client's
// service-account user.
const serviceAccountPrefix = "service-account-"

// allowedRealms returns the realms the actions may act in.
func (c Config) allowedRealms() []string {
	if len(c.AllowedRealms) > 0 {
		return c.AllowedRealms
	}
	return []string{c.Realm}
}

// realmAllowed reports whether the actions may act in realm.
func (c Config) realmAllowed(realm string) bool { return slices.Contains(c.allowedRealms(), realm) }

// roleProtected reports whether holding realm role r makes an account protected.
func (c Config) roleProtected(r string) bool {
	for _, p := range c.ProtectedRoles {
		p = strings.TrimSpace(p)
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(r, prefix) {
				return true
			}
		} else if r == p {
			return true
		}
	}
	return false
}

// userListed reports whether IRU_KEYCLOAK_PROTECTED_USERS names the user.
func (c Config) userListed(realm, username string) bool {
	for _, e := range c.ProtectedUsers {
		e = strings.TrimSpace(e)
		if r, name, ok := strings.Cut(e, "/"); ok {
			if r == realm && strings.EqualFold(name, username) {
				return true
			}
		} else if strings.EqualFold(e, username) {
			return true
		}
	}
	return false
}

// grants are the role mappings of an account that make it protected or
// not: its effective realm roles (composites and groups included) and its
// direct client role mappings.
type grants struct {
	realmRoles []*gocloak.Role
	mappings   *gocloak.MappingsRepresentation
}

// readGrants reads the grants of user id (called who in errors) through
// the Admin API at the time of the action; the two reads are independent
// and go together.
func (a *Activities) readGrants(ctx context.Context, realm, id, who string) (grants, error) {
	var g grants
	var rolesErr, mapsErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		rolesErr = a.call(ctx, fmt.Sprintf("GET users/%s/role-mappings/realm/composite (roles of %s in realm %s)", id, who, realm), func(ctx context.Context, tok string) error {
			var err error
			g.realmRoles, err = a.gc.GetCompositeRealmRolesByUserID(ctx, tok, realm, id)
			return err
		})
	})
	wg.Go(func() {
		mapsErr = a.call(ctx, fmt.Sprintf("GET users/%s/role-mappings (client roles of %s in realm %s)", id, who, realm), func(ctx context.Context, tok string) error {
			var err error
			g.mappings, err = a.gc.GetRoleMappingByUserID(ctx, tok, realm, id)
			return err
		})
	})
	wg.Wait()
	if rolesErr != nil {
		return grants{}, rolesErr
	}
	if mapsErr != nil {
		return grants{}, mapsErr
	}
	return g, nil
}

// protection returns why u is a protected account (nil: it is not). The
// roles are read through the Admin API at the time of the action.
func (a *Activities) protection(ctx context.Context, realm string, u *gocloak.User) ([]string, error) {
	g, err := a.readGrants(ctx, realm, gocloak.PString(u.ID), userName(u))
	if err != nil {
		return nil, err
	}
	return a.protectedBy(realm, u, g), nil
}

// protectedBy returns why u, holding g, is a protected account (nil: it
// is not).
func (a *Activities) protectedBy(realm string, u *gocloak.User, g grants) []string {
	var why []string
	name := userName(u)
	if realm == MasterRealm {
		why = append(why, "is in the master realm")
	}
	if gocloak.PString(u.ServiceAccountClientID) != "" || strings.HasPrefix(strings.ToLower(name), serviceAccountPrefix) {
		why = append(why, "is a service account")
	}
	if a.cfg.userListed(realm, name) {
		why = append(why, "is listed in IRU_KEYCLOAK_PROTECTED_USERS")
	}
	var held []string
	for _, r := range g.realmRoles {
		if n := gocloak.PString(r.Name); a.cfg.roleProtected(n) {
			held = append(held, n)
		}
	}
	slices.Sort(held)
	for _, n := range slices.Compact(held) {
		why = append(why, "holds realm role "+n)
	}
	if maps := g.mappings; maps != nil {
		var clients []string
		for k, cm := range maps.ClientMappings {
			client := k
			if cm != nil && gocloak.PString(cm.Client) != "" {
				client = gocloak.PString(cm.Client)
			}
			if cm == nil || cm.Mappings == nil || len(*cm.Mappings) == 0 {
				continue
			}
			if client == realmManagement || strings.HasSuffix(client, "-realm") {
				clients = append(clients, client)
			}
		}
		slices.Sort(clients)
		for _, c := range clients {
			why = append(why, "holds "+c+" client roles")
		}
	}
	return why
}

// guard refuses an action against a protected account unless the step
// carries an override granted by the protected-account approval. The
// refusal is a final [activities.ErrTypeProtected] error whose details
// say which account and why; the incident workflow turns it into an
// approval step. A dry run is not refused: the returned note, for its
// plan, says that the real run will wait for that approval.
func (a *Activities) guard(ctx context.Context, action string, in activities.ActionInput, realm string, u *gocloak.User) (string, error) {
	why, err := a.protection(ctx, realm, u)
	if err != nil {
		return "", err
	}
	return a.judge(ctx, action, in, realm, u, why)
}

// judge is guard's decision on u, protected for the reasons why.
func (a *Activities) judge(ctx context.Context, action string, in activities.ActionInput, realm string, u *gocloak.User, why []string) (string, error) {
	if len(why) == 0 {
		return "", nil
	}
	name := userName(u)
	if in.Override.Grants(in.StepID) {
		logger(ctx).Warn("acting on a protected account with approval", "action", action, "realm", realm, "user", name, "step", in.StepID)
		return "", nil
	}
	msg := fmt.Sprintf("%s: account %s in realm %s is protected (%s): it needs the approval of %d %s",
		action, name, realm, strings.Join(why, ", "), activities.ProtectedQuorum, activities.ProtectedRole)
	if in.DryRun {
		return msg, nil
	}
	return "", activities.NewProtectedError(msg, activities.ProtectedRefusal{Realm: realm, UserID: gocloak.PString(u.ID), Username: name, Reasons: why})
}

// withNote prepends a guard's note to a dry run's plan.
func withNote(note string, res activities.ActionResult) activities.ActionResult {
	if note != "" {
		res.Plan = append([]string{note}, res.Plan...)
	}
	return res
}
