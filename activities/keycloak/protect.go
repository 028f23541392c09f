package keycloak

import (
	"context"
	"fmt"
	"slices"
	"strings"

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

// protection returns why u is a protected account (nil: it is not). The
// roles are read through the Admin API at the time of the action: the
// effective realm roles (composites and groups included) and the direct
// client role mappings.
func (a *Activities) protection(ctx context.Context, realm string, u *gocloak.User) ([]string, error) {
	var why []string
	name, id := userName(u), gocloak.PString(u.ID)
	if realm == MasterRealm {
		why = append(why, "is in the master realm")
	}
	if gocloak.PString(u.ServiceAccountClientID) != "" || strings.HasPrefix(strings.ToLower(name), serviceAccountPrefix) {
		why = append(why, "is a service account")
	}
	if a.cfg.userListed(realm, name) {
		why = append(why, "is listed in IRU_KEYCLOAK_PROTECTED_USERS")
	}
	var roles []*gocloak.Role
	err := a.call(ctx, fmt.Sprintf("GET users/%s/role-mappings/realm/composite (roles of %s in realm %s)", id, name, realm), func(ctx context.Context, tok string) error {
		var err error
		roles, err = a.gc.GetCompositeRealmRolesByUserID(ctx, tok, realm, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	var held []string
	for _, r := range roles {
		if n := gocloak.PString(r.Name); a.cfg.roleProtected(n) {
			held = append(held, n)
		}
	}
	slices.Sort(held)
	for _, n := range slices.Compact(held) {
		why = append(why, "holds realm role "+n)
	}
	var maps *gocloak.MappingsRepresentation
	err = a.call(ctx, fmt.Sprintf("GET users/%s/role-mappings (client roles of %s in realm %s)", id, name, realm), func(ctx context.Context, tok string) error {
		var err error
		maps, err = a.gc.GetRoleMappingByUserID(ctx, tok, realm, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if maps != nil {
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
	return why, nil
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
